"""CatalogService over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from kosmos.client import NotFoundError
from kosmos.v1 import catalog_service_pb2 as pb
from kosmos.v1 import catalog_service_pb2_grpc, common_pb2
from tests.helpers import assert_code, assert_invalid, item, status_of


@pytest.fixture
def stub(kosmos):
    return catalog_service_pb2_grpc.CatalogServiceStub(kosmos.channel)


def test_upsert_get_list(client, stub):
    client.create_shop("acme")
    client.upsert_items("acme", [item("acme", f"i{n}", price=n) for n in range(5)])
    client.upsert_items("acme", [item("acme", "i2", category="Garden", available=False)])
    got = client.get_item("acme", "i2")
    assert (got.category, got.available) == ("Garden", False)
    page = stub.ListItems(pb.ListItemsRequest(parent="shops/acme", page_size=2))
    names = [i.name for i in page.items]
    while page.next_page_token:
        page = stub.ListItems(
            pb.ListItemsRequest(parent="shops/acme", page_size=2, page_token=page.next_page_token)
        )
        names += [i.name for i in page.items]
    assert names == [f"shops/acme/items/i{n}" for n in range(5)]


def test_unknown_item_and_shop(client):
    client.create_shop("acme")
    with pytest.raises(NotFoundError) as caught:
        client.get_item("acme", "ghost")
    assert caught.value.reason == "ITEM_NOT_FOUND"
    with pytest.raises(NotFoundError) as caught:
        client.upsert_items("nope", [item("nope", "x")])
    assert caught.value.reason == "SHOP_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("UpsertItems", pb.UpsertItemsRequest(parent="shops/acme"), "items"),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(parent="shops/acme", items=[common_pb2.Item()]),
            "items[0].name",
        ),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(parent="shops/acme", items=[item("other", "x")]),
            "items[0].name",
        ),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(parent="shops/acme", items=[item("acme", "x", price=-1)]),
            "items[0].price",
        ),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(
                parent="shops/acme", items=[item("acme", "x", price=float("nan"))]
            ),
            "items[0].price",
        ),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(
                parent="shops/acme", items=[item("acme", "x"), item("acme", "x")]
            ),
            "items[1].name",
        ),
        (
            "UpsertItems",
            pb.UpsertItemsRequest(
                parent="shops/acme", items=[item("acme", f"i{n}") for n in range(1001)]
            ),
            "items",
        ),
        ("UpsertItems", pb.UpsertItemsRequest(items=[item("acme", "x")]), "parent"),
        ("GetItem", pb.GetItemRequest(name="shops/acme/items/"), "name"),
        ("ListItems", pb.ListItemsRequest(parent="shops/acme", page_size=-5), "page_size"),
        ("ListItems", pb.ListItemsRequest(parent="shops/acme", page_token="!!"), "page_token"),
    ],
)
def test_every_rpc_rejects_bad_input(stub, method, request_, field):
    assert_invalid(getattr(stub, method), request_, field)


def test_list_items_of_unknown_shop(stub):
    assert_code(
        stub.ListItems,
        pb.ListItemsRequest(parent="shops/nope"),
        grpc.StatusCode.NOT_FOUND,
        "SHOP_NOT_FOUND",
    )


def _attribute(key, values):
    return common_pb2.AttributeColumn(key=key, values=values)


def test_item_columns_store_what_item_messages_would(client, stub):
    """The same catalog sent as `ItemColumns` to one shop and as `Item` messages to another
    reads back the same, field for field (attributes a record lacks included)."""
    for shop in ("msgs", "cols"):
        client.create_shop(shop)
    messages = [
        item("msgs", "a", title="Tea", price=2.5),
        item("msgs", "b", category="Toys", brand="", available=False, price=0.0),
        item("msgs", "c", title="Kite", category="", price=30.0),
    ]
    messages[0].attributes.update({"band": "low", "colour": "red"})
    messages[2].attributes["band"] = "high"
    stub.UpsertItems(pb.UpsertItemsRequest(parent="shops/msgs", items=messages))
    stub.UpsertItems(
        pb.UpsertItemsRequest(
            parent="shops/cols",
            columns=pb.ItemColumns(
                item_ids=["a", "b", "c"],
                titles=[m.title for m in messages],
                categories=[m.category for m in messages],
                brands=[m.brand for m in messages],
                prices=[m.price for m in messages],
                out_of_stock=[m.out_of_stock for m in messages],
                attributes=[
                    _attribute("band", ["low", "", "high"]),
                    _attribute("colour", ["red", "", ""]),
                ],
            ),
            count_only=True,
        )
    )

    def read(shop):
        found = stub.ListItems(pb.ListItemsRequest(parent=f"shops/{shop}")).items
        return [
            (
                i.name.rsplit("/", 1)[1],
                i.title,
                i.category,
                i.brand,
                i.price,
                i.out_of_stock,
                dict(i.attributes),
            )
            for i in found
        ]

    assert read("cols") == read("msgs")
    assert read("cols")[1][5] is True and read("cols")[0][6] == {"band": "low", "colour": "red"}
    # Optional columns left empty: defaults for every item, as for fields left unset.
    stub.UpsertItems(
        pb.UpsertItemsRequest(parent="shops/cols", columns=pb.ItemColumns(item_ids=["d"]))
    )
    d = client.get_item("cols", "d")
    assert (d.title, d.price, d.out_of_stock, dict(d.attributes)) == ("", 0.0, False, {})
    # An echo, when asked for, is the items as stored.
    echoed = stub.UpsertItems(
        pb.UpsertItemsRequest(
            parent="shops/cols", columns=pb.ItemColumns(item_ids=["e"], prices=[4.0])
        )
    )
    assert [(i.name, i.price) for i in echoed.items] == [("shops/cols/items/e", 4.0)]


def _columns_request(**columns):
    base = {"item_ids": ["a", "b"]}
    return pb.UpsertItemsRequest(parent="shops/acme", columns=pb.ItemColumns(**{**base, **columns}))


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (
            pb.UpsertItemsRequest(parent="shops/acme", columns=pb.ItemColumns()),
            "columns.item_ids",
            "MISSING_FIELD",
        ),
        (_columns_request(item_ids=["a", "b c"]), "columns.item_ids[1]", "INVALID_ID"),
        (_columns_request(item_ids=["a", "b", "a"]), "columns.item_ids[2]", "DUPLICATE_ITEM"),
        (_columns_request(titles=["x"]), "columns.titles", "LENGTH_MISMATCH"),
        (_columns_request(brands=["", "x" * 513]), "columns.brands[1]", "TOO_LONG"),
        (_columns_request(prices=[1.0, -2.0]), "columns.prices[1]", "INVALID_PRICE"),
        (_columns_request(prices=[float("nan"), 1.0]), "columns.prices[0]", "INVALID_PRICE"),
        (_columns_request(out_of_stock=[True]), "columns.out_of_stock", "LENGTH_MISMATCH"),
        (
            _columns_request(attributes=[_attribute("k", ["1"])]),
            "columns.attributes[0].values",
            "LENGTH_MISMATCH",
        ),
        (
            _columns_request(attributes=[_attribute("k", ["1", "2"]), _attribute("k", ["", ""])]),
            "columns.attributes[1].key",
            "DUPLICATE_ATTRIBUTE",
        ),
        (
            _columns_request(attributes=[_attribute("", ["1", "2"])]),
            "columns.attributes[0].key",
            "INVALID_ATTRIBUTE_KEY",
        ),
        (
            _columns_request(attributes=[_attribute("k", ["1", "v" * 1025])]),
            "columns.attributes[0].values[1]",
            "TOO_LONG",  # the size limits, before the servicer's own check
        ),
        (
            _columns_request(attributes=[_attribute(f"k{n}", ["", ""]) for n in range(65)]),
            "columns.attributes",
            "TOO_MANY_ATTRIBUTES",
        ),
        (
            pb.UpsertItemsRequest(
                parent="shops/acme",
                items=[item("acme", "x")],
                columns=pb.ItemColumns(item_ids=["y"]),
            ),
            "columns",
            "CONFLICTING_FIELDS",
        ),
        (
            _columns_request(item_ids=[f"i{n}" for n in range(10_001)]),
            "columns.item_ids",
            "TOO_MANY_ENTRIES",
        ),
    ],
)
def test_item_columns_name_the_column_and_entry_at_fault(client, stub, request_, field, reason):
    client.create_shop("acme")
    with pytest.raises(grpc.RpcError) as caught:
        stub.UpsertItems(request_, timeout=5)
    code, got_reason, fields = status_of(caught.value)
    assert (code, got_reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason), caught.value.details()
    assert field in fields, fields
    listed = stub.ListItems(pb.ListItemsRequest(parent="shops/acme")).items
    assert list(listed) == []  # nothing of a refused batch is stored


def test_ten_thousand_items_as_columns_in_one_call(client, stub):
    client.create_shop("acme")
    ids = [f"sku-{n:05d}" for n in range(10_000)]
    stub.UpsertItems(
        pb.UpsertItemsRequest(
            parent="shops/acme",
            columns=pb.ItemColumns(item_ids=ids, attributes=[_attribute("n", ids)]),
            count_only=True,
        )
    )
    assert dict(client.get_item("acme", "sku-09999").attributes) == {"n": "sku-09999"}
