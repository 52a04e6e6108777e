"""The column checks of bulk requests (`kosmos.common.validation`), against the plain
per-record reading they stand for."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kosmos.common.errors import InvalidArgument
from kosmos.common.validation import attributes_json, checked_ids
from kosmos.v1 import common_pb2

keys = st.text(min_size=1, max_size=8)
values = st.text(max_size=6)  # "" included: the record lacks the key


@given(st.dictionaries(keys, st.lists(values, min_size=3, max_size=3), max_size=5))
def test_attributes_json_is_each_records_dict_as_json_dumps_writes_it(columns):
    sent = [common_pb2.AttributeColumn(key=k, values=v) for k, v in columns.items()]
    got = attributes_json(sent, 3, "columns.attributes")
    for n, text in enumerate(got):
        expected = {k: v[n] for k, v in columns.items() if v[n]}
        assert json.loads(text) == expected
        assert text == json.dumps(expected)  # the stores' own form, byte for byte


def test_dense_and_sparse_columns_agree():
    dense = [common_pb2.AttributeColumn(key='é"k', values=["a\n", "☃"])]
    sparse = [*dense, common_pb2.AttributeColumn(key="z", values=["", "1"])]
    assert attributes_json(dense, 2, "f") == [json.dumps({'é"k': "a\n"}), json.dumps({'é"k': "☃"})]
    assert attributes_json(sparse, 2, "f") == [
        json.dumps({'é"k': "a\n"}),
        json.dumps({'é"k': "☃", "z": "1"}),
    ]
    assert attributes_json([], 2, "f") == ["{}", "{}"]


def test_checked_ids_names_the_first_bad_and_the_repeated_entry():
    assert checked_ids(["a", "b"], "columns.item_ids", unique="DUPLICATE_ITEM") == ["a", "b"]
    assert checked_ids(["a", "a"], "columns.item_ids") == ["a", "a"]  # repeats allowed
    with pytest.raises(InvalidArgument) as caught:
        checked_ids(["a", "b", "a", "b"], "columns.item_ids", unique="DUPLICATE_ITEM")
    assert (caught.value.violations[0].field, caught.value.reason) == (
        "columns.item_ids[2]",
        "DUPLICATE_ITEM",
    )
    with pytest.raises(InvalidArgument) as caught:
        checked_ids(["ok", "", "no way"], "columns.customer_ids")
    assert caught.value.violations[0].field == "columns.customer_ids[1]"
