"""The request limits' planned check (`kosmos.common.limits.check_limits`): it names the same
field as a walk of every field would, in nested, repeated, map and self-containing types."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from kosmos.common.errors import InvalidArgument
from kosmos.common.limits import MAX_STRING, check_limits
from kosmos.v1 import catalog_service_pb2, common_pb2, feedback_service_pb2


def violation(message) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        check_limits(message)
    return caught.value.violations[0].field, caught.value.reason


def events(n: int) -> list[common_pb2.Interaction]:
    return [
        common_pb2.Interaction(customer="shops/a/customers/c", item_id=f"i{k}", type=1)
        for k in range(n)
    ]


def test_a_long_string_deep_in_a_big_batch_is_named_by_its_path():
    batch = events(10_000)
    batch[9_876].recommendation_id = "r" * 129
    request = feedback_service_pb2.ImportInteractionsRequest(
        parent="shops/a", request_id="x", interactions=batch
    )
    assert violation(request) == ("interactions[9876].recommendation_id", "TOO_LONG")
    batch[9_876].recommendation_id = "r" * 128
    check_limits(
        feedback_service_pb2.ImportInteractionsRequest(
            parent="shops/a", request_id="x", interactions=batch
        )
    )


def test_list_lengths_and_entries_of_repeated_strings():
    request = feedback_service_pb2.ImportInteractionsRequest(
        parent="shops/a", request_id="x", interactions=events(10_001)
    )
    assert violation(request) == ("interactions", "TOO_MANY_ENTRIES")
    shown = feedback_service_pb2.Impression(
        customer="shops/a/customers/c", recommendation_id="r", item_ids=["a", "b" * 129]
    )
    assert violation(shown) == ("item_ids[1]", "TOO_LONG")
    shown = feedback_service_pb2.Impression(item_ids=[f"i{k}" for k in range(101)])
    assert violation(shown) == ("item_ids", "TOO_MANY_ENTRIES")


def test_map_keys_values_and_sizes():
    entry = common_pb2.Item(name="shops/a/items/i")
    entry.attributes["k" * 257] = "v"
    request = catalog_service_pb2.UpsertItemsRequest(parent="shops/a", items=[entry])
    assert violation(request) == ("items[0].attributes", "TOO_LONG")
    entry = common_pb2.Item(name="shops/a/items/i")
    entry.attributes["k"] = "v" * 4097
    request = catalog_service_pb2.UpsertItemsRequest(parent="shops/a", items=[entry])
    assert violation(request) == ("items[0].attributes['k']", "TOO_LONG")
    entry = common_pb2.Item(name="shops/a/items/i")
    entry.attributes.update({f"k{n}": "v" for n in range(65)})
    request = catalog_service_pb2.UpsertItemsRequest(parent="shops/a", items=[entry])
    assert violation(request) == ("items[0].attributes", "TOO_MANY_ENTRIES")


def test_a_type_that_contains_itself_is_still_checked():
    inner = struct_pb2.Struct()
    inner.update({"deep": "x" * (MAX_STRING + 1)})
    assert violation(inner) == ("fields['deep'].string_value", "TOO_LONG")
    inner.update({"deep": "x"})
    check_limits(inner)
