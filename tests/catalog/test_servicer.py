"""CatalogService over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from kosmos.client import NotFoundError
from kosmos.v1 import catalog_service_pb2 as pb
from kosmos.v1 import catalog_service_pb2_grpc, common_pb2
from tests.helpers import assert_code, assert_invalid, item


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
