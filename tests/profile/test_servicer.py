"""ProfileService over real gRPC: behaviour and every RPC's bad input."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kosmos.client import AlreadyExistsError, InvalidArgumentError, NotFoundError
from kosmos.v1 import common_pb2, profile_service_pb2_grpc
from kosmos.v1 import profile_service_pb2 as pb
from tests.helpers import assert_code, assert_invalid


@pytest.fixture
def stub(kosmos):
    return profile_service_pb2_grpc.ProfileServiceStub(kosmos.channel)


def test_customer_lifecycle(client):
    client.create_shop("acme", "Acme Ltd")
    assert client.get_shop("acme").display_name == "Acme Ltd"
    created = client.create_customer("acme", "alice", {"country": "UK"}, [("brand", "Evil")])
    assert created.name == "shops/acme/customers/alice"
    assert created.exclusions[0].kind == common_pb2.EXCLUSION_KIND_BRAND
    assert created.create_time.seconds > 0

    updated = client.update_customer("acme", "alice", attributes={"country": "FR"})
    assert dict(updated.attributes) == {"country": "FR"}
    assert [e.value for e in updated.exclusions] == ["Evil"]  # not in the mask: kept
    updated = client.update_customer("acme", "alice", exclusions=[("category", "Toys")])
    assert [(e.kind, e.value) for e in updated.exclusions] == [
        (common_pb2.EXCLUSION_KIND_CATEGORY, "Toys")
    ]
    assert client.get_customer("acme", "alice").attributes["country"] == "FR"

    client.delete_customer("acme", "alice")
    with pytest.raises(NotFoundError) as caught:
        client.get_customer("acme", "alice")
    assert caught.value.reason == "CUSTOMER_NOT_FOUND"


def test_list_customers_paginates(client):
    client.create_shop("acme")
    for n in range(7):
        client.create_customer("acme", f"c{n}")
    assert [c.name.rsplit("/", 1)[1] for c in client.list_customers("acme", page_size=3)] == [
        f"c{n}" for n in range(7)
    ]


def test_shops_do_not_see_each_other(client):
    client.create_shop("one")
    client.create_shop("two")
    client.create_customer("one", "alice")
    with pytest.raises(NotFoundError):
        client.get_customer("two", "alice")
    assert list(client.list_customers("two")) == []


def test_already_exists(client):
    client.create_shop("acme")
    with pytest.raises(AlreadyExistsError) as caught:
        client.create_shop("acme")
    assert caught.value.reason == "SHOP_EXISTS"
    client.create_customer("acme", "alice")
    with pytest.raises(AlreadyExistsError):
        client.create_customer("acme", "alice")


def test_unknown_shop_is_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.create_customer("nowhere", "alice")
    assert caught.value.reason == "SHOP_NOT_FOUND"
    with pytest.raises(NotFoundError) as caught:
        client.get_customer("nowhere", "alice")
    assert caught.value.reason == "SHOP_NOT_FOUND"


def test_bad_input_names_the_field(client):
    with pytest.raises(InvalidArgumentError) as caught:
        client.create_shop("Not A Shop!")
    assert [v.field for v in caught.value.field_violations] == ["shop_id"]


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("CreateShop", pb.CreateShopRequest(), "shop_id"),
        ("CreateShop", pb.CreateShopRequest(shop_id="9lives"), "shop_id"),
        (
            "CreateShop",
            pb.CreateShopRequest(shop_id="ok", shop=common_pb2.Shop(display_name="x" * 201)),
            "shop.display_name",
        ),
        ("GetShop", pb.GetShopRequest(name="acme"), "name"),
        ("GetShop", pb.GetShopRequest(), "name"),
        ("CreateCustomer", pb.CreateCustomerRequest(parent="shops/acme"), "customer_id"),
        ("CreateCustomer", pb.CreateCustomerRequest(parent="acme", customer_id="a"), "parent"),
        (
            "CreateCustomer",
            pb.CreateCustomerRequest(parent="shops/acme", customer_id="a b"),
            "customer_id",
        ),
        (
            "CreateCustomer",
            pb.CreateCustomerRequest(
                parent="shops/acme",
                customer_id="a",
                customer=common_pb2.Customer(exclusions=[common_pb2.Exclusion(value="x")]),
            ),
            "customer.exclusions[0].kind",
        ),
        (
            "CreateCustomer",
            pb.CreateCustomerRequest(
                parent="shops/acme",
                customer_id="a",
                customer=common_pb2.Customer(
                    exclusions=[common_pb2.Exclusion(kind=common_pb2.EXCLUSION_KIND_BRAND)]
                ),
            ),
            "customer.exclusions[0].value",
        ),
        (
            "CreateCustomer",
            pb.CreateCustomerRequest(
                parent="shops/acme",
                customer_id="a",
                customer=common_pb2.Customer(attributes={"k": "v" * 2000}),
            ),
            "customer.attributes['k']",
        ),
        ("GetCustomer", pb.GetCustomerRequest(name="shops/acme/customers"), "name"),
        ("GetCustomer", pb.GetCustomerRequest(name="shops/acme/items/x"), "name"),
        (
            "UpdateCustomer",
            pb.UpdateCustomerRequest(customer=common_pb2.Customer(name="shops/acme/customers/a")),
            "update_mask",
        ),
        (
            "UpdateCustomer",
            pb.UpdateCustomerRequest(
                customer=common_pb2.Customer(name="shops/acme/customers/a"),
                update_mask=field_mask_pb2.FieldMask(paths=["create_time"]),
            ),
            "update_mask.paths[0]",
        ),
        (
            "UpdateCustomer",
            pb.UpdateCustomerRequest(update_mask=field_mask_pb2.FieldMask(paths=["attributes"])),
            "customer.name",
        ),
        ("DeleteCustomer", pb.DeleteCustomerRequest(name=""), "name"),
        ("ListCustomers", pb.ListCustomersRequest(parent="shops/acme", page_size=-1), "page_size"),
        (
            "ListCustomers",
            pb.ListCustomersRequest(parent="shops/acme", page_token="garbage"),
            "page_token",
        ),
    ],
)
def test_every_rpc_rejects_bad_input(stub, method, request_, field):
    assert_invalid(getattr(stub, method), request_, field)


def test_page_token_of_another_shop_is_rejected(client, stub):
    for shop in ("one", "two"):
        client.create_shop(shop)
        for n in range(3):
            client.create_customer(shop, f"c{n}")
    first = stub.ListCustomers(pb.ListCustomersRequest(parent="shops/one", page_size=1))
    assert first.next_page_token
    assert_invalid(
        stub.ListCustomers,
        pb.ListCustomersRequest(parent="shops/two", page_token=first.next_page_token),
        "page_token",
    )


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("GetShop", pb.GetShopRequest(name="shops/nope")),
        ("GetCustomer", pb.GetCustomerRequest(name="shops/nope/customers/a")),
        ("DeleteCustomer", pb.DeleteCustomerRequest(name="shops/nope/customers/a")),
        ("ListCustomers", pb.ListCustomersRequest(parent="shops/nope")),
        (
            "UpdateCustomer",
            pb.UpdateCustomerRequest(
                customer=common_pb2.Customer(name="shops/nope/customers/a"),
                update_mask=field_mask_pb2.FieldMask(paths=["attributes"]),
            ),
        ),
    ],
)
def test_every_rpc_says_not_found(stub, method, request_):
    assert_code(getattr(stub, method), request_, grpc.StatusCode.NOT_FOUND, "SHOP_NOT_FOUND")
