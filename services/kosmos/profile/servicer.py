"""ProfileService over gRPC: proto <-> domain and request validation; no SQL here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    RESOURCE_ID,
    check_resource_id,
    check_shop_id,
    decode_page_token,
    encode_page_token,
    fits,
    page_size,
    parse_customer,
    parse_shop,
    shop_name,
)
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.common.validation import (
    attributes_json,
    check_attributes,
    check_count,
    check_lengths,
    check_not_both,
    checked_ids,
    plain_attributes,
)
from kosmos.profile._ecosystem_servicer import (
    EcosystemServicer,
    customer_to_proto,
    preferences_from_proto,
    price_range_from_proto,
    receipt_to_proto,
)
from kosmos.profile.domain import Profiles
from kosmos.profile.ecosystem import Ecosystem
from kosmos.store.records import (
    CUSTOMER_FIELDS,
    Customer,
    CustomerColumns,
    Exclusion,
    ExclusionKind,
    Shop,
)
from kosmos.v1 import common_pb2, profile_service_pb2, profile_service_pb2_grpc

MAX_EXCLUSIONS = 500
MAX_CUSTOMERS_BATCH = 1000
MAX_COLUMNS_BATCH = 10_000  # CustomerColumns: bulk loads, as ImportInteractions takes
UPDATABLE = CUSTOMER_FIELDS
BULK_UPDATABLE = ("attributes", "exclusions")


def shop_to_proto(shop: Shop) -> common_pb2.Shop:
    return common_pb2.Shop(
        name=shop_name(shop.shop_id),
        display_name=shop.display_name,
        create_time=to_timestamp(shop.create_time),
    )


def exclusions_from_proto(exclusions: Any, field: str) -> list[Exclusion]:
    check_count(len(exclusions), field, MAX_EXCLUSIONS)
    result = []
    for n, e in enumerate(exclusions):
        if e.kind == common_pb2.EXCLUSION_KIND_UNSPECIFIED:
            raise InvalidArgument(f"{field}[{n}].kind", "UNSPECIFIED_ENUM", "must be set")
        if e.kind not in ExclusionKind._value2member_map_:
            raise InvalidArgument(f"{field}[{n}].kind", "UNKNOWN_ENUM", f"unknown value {e.kind}")
        if not e.value:
            raise InvalidArgument(f"{field}[{n}].value", "MISSING_FIELD", "is required")
        expire = to_seconds(e.expire_time) if e.HasField("expire_time") else None
        result.append(Exclusion(ExclusionKind(e.kind), e.value, expire))
    return result


def customer_from_proto(message: Any, shop_id: str, field: str) -> Customer:
    """One profile of a CreateCustomers batch; raises InvalidArgument naming the field."""
    customer_shop, customer_id = parse_customer(message.name, f"{field}.name")
    if customer_shop != shop_id:
        raise InvalidArgument(f"{field}.name", "WRONG_SHOP", f"must be under shops/{shop_id}")
    return Customer(
        shop_id,
        customer_id,
        check_attributes(message.attributes, f"{field}.attributes"),
        tuple(exclusions_from_proto(message.exclusions, f"{field}.exclusions")),
    )


def customers_from_proto(messages: Any, shop_id: str) -> list[Customer]:
    """`customer_from_proto` for a whole batch, as fast as a bulk load needs: a plainly valid
    profile without exclusions is checked with a few comparisons; any other goes through
    `customer_from_proto`, which names the bad field. Refuses a customer named twice."""
    prefix = f"shops/{shop_id}/customers/"
    cut = len(prefix)
    match = RESOURCE_ID.fullmatch
    out = []
    seen: dict[str, int] = {}
    for n, m in enumerate(messages):
        name = m.name
        customer_id = name[cut:]
        attributes = plain_attributes(m.attributes)
        if (
            attributes is None
            or m.exclusions
            or not name.startswith(prefix)
            or match(customer_id) is None
        ):
            customer = customer_from_proto(m, shop_id, f"customers[{n}]")
        else:
            customer = Customer(shop_id, customer_id, attributes)
        if seen.setdefault(customer.customer_id, n) != n:
            raise InvalidArgument(
                f"customers[{n}].name",
                "DUPLICATE_CUSTOMER",
                f"repeats customers[{seen[customer.customer_id]}]",
            )
        out.append(customer)
    return out


def customer_columns_from_proto(columns: Any, shop_id: str) -> CustomerColumns:
    """`CustomerColumns` checked a column at a time, with the same rules and reasons as one
    `Customer` message each; a violation names the column and the entry
    (``columns.customer_ids[37]``)."""
    count = len(columns.customer_ids)
    check_count(count, "columns.customer_ids", MAX_COLUMNS_BATCH, minimum=1)
    check_lengths(columns, count, ("customer_ids",), ())
    customer_ids = checked_ids(
        columns.customer_ids, "columns.customer_ids", unique="DUPLICATE_CUSTOMER"
    )
    return CustomerColumns(
        shop_id, customer_ids, attributes_json(columns.attributes, count, "columns.attributes")
    )


class ProfileServicer(EcosystemServicer, profile_service_pb2_grpc.ProfileServiceServicer):
    def __init__(self, profiles: Profiles, ecosystem: Ecosystem | None = None) -> None:
        self.profiles = profiles
        self.ecosystem = ecosystem or Ecosystem(profiles.store)

    def CreateShop(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's method names)
        shop_id = check_shop_id(request.shop_id, "shop_id")
        if len(request.shop.display_name) > 200:
            raise InvalidArgument("shop.display_name", "TOO_LONG", "must be at most 200 characters")
        shop = self.profiles.create_shop(shop_id, request.shop.display_name)
        return profile_service_pb2.CreateShopResponse(shop=shop_to_proto(shop))

    def GetShop(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop = self.profiles.get_shop(parse_shop(request.name, "name"))
        return profile_service_pb2.GetShopResponse(shop=shop_to_proto(shop))

    def CreateCustomer(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        customer_id = check_resource_id(request.customer_id, "customer_id")
        attributes = check_attributes(request.customer.attributes, "customer.attributes")
        exclusions = exclusions_from_proto(request.customer.exclusions, "customer.exclusions")
        preferences = preferences_from_proto(request.customer.preferences, "customer.preferences")
        price_range = (
            price_range_from_proto(request.customer.price_range, "customer.price_range")
            if request.customer.HasField("price_range")
            else None
        )
        customer = self.profiles.create_customer(
            shop_id, customer_id, attributes, exclusions, preferences, price_range
        )
        return profile_service_pb2.CreateCustomerResponse(customer=customer_to_proto(customer))

    def CreateCustomers(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        if not request.HasField("columns"):
            check_count(len(request.customers), "customers", MAX_CUSTOMERS_BATCH, minimum=1)
        replace = list(request.update_mask.paths) or list(BULK_UPDATABLE)
        for n, path in enumerate(replace):
            if path not in BULK_UPDATABLE:
                raise InvalidArgument(
                    f"update_mask.paths[{n}]",
                    "NOT_UPDATABLE",
                    f"{path!r} is not one of {BULK_UPDATABLE}",
                )
        customers: Sequence[Customer]
        if request.HasField("columns"):
            check_not_both(request, "customers")
            customers = customer_columns_from_proto(request.columns, shop_id)
        else:
            customers = customers_from_proto(request.customers, shop_id)
        stored, created = self.profiles.upsert_customers(
            shop_id, customers, replace, echo=not request.count_only
        )
        if request.count_only:
            return profile_service_pb2.CreateCustomersResponse(created_count=created)
        return profile_service_pb2.CreateCustomersResponse(
            customers=[customer_to_proto(c) for c in stored], created_count=created
        )

    def GetCustomer(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.name, "name")
        customer = self.profiles.get_customer(shop_id, customer_id)
        consents = self.ecosystem.consents(shop_id, customer_id)
        return profile_service_pb2.GetCustomerResponse(
            customer=customer_to_proto(customer, consents)
        )

    def UpdateCustomer(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer.name, "customer.name")
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask", "MISSING_FIELD", f"name fields among {UPDATABLE}")
        for n, path in enumerate(paths):
            if path not in UPDATABLE:
                raise InvalidArgument(
                    f"update_mask.paths[{n}]",
                    "NOT_UPDATABLE",
                    f"{path!r} is not one of {UPDATABLE}",
                )
        attributes = (
            check_attributes(request.customer.attributes, "customer.attributes")
            if "attributes" in paths
            else None
        )
        exclusions = (
            exclusions_from_proto(request.customer.exclusions, "customer.exclusions")
            if "exclusions" in paths
            else None
        )
        preferences = (
            preferences_from_proto(request.customer.preferences, "customer.preferences")
            if "preferences" in paths
            else None
        )
        price_range = None
        if "price_range" in paths and request.customer.HasField("price_range"):
            price_range = price_range_from_proto(
                request.customer.price_range, "customer.price_range"
            )
        customer = self.profiles.update_customer(
            shop_id,
            customer_id,
            attributes,
            exclusions,
            preferences,
            price_range,
            clear_price_range="price_range" in paths and price_range is None,
        )
        consents = self.ecosystem.consents(shop_id, customer_id)
        return profile_service_pb2.UpdateCustomerResponse(
            customer=customer_to_proto(customer, consents)
        )

    def DeleteCustomer(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.name, "name")
        # Deleting is erasing (issue 11): NOT_FOUND when there was nothing, as before.
        receipt = self.ecosystem.erase(shop_id, customer_id)
        if not (receipt.erasure.profile_removed or receipt.erasure.interactions_removed):
            self.profiles.delete_customer(shop_id, customer_id)  # raises NotFound
        return profile_service_pb2.DeleteCustomerResponse(receipt=receipt_to_proto(receipt))

    def ListCustomers(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        after = str(cursor["after"]) if cursor else ""
        found = self.profiles.list_customers(shop_id, after, size + 1)
        messages = [customer_to_proto(c) for c in found[:size]]
        keep = fits(messages)
        token = ""
        if len(found) > keep:
            token = encode_page_token(request.parent, {"after": found[keep - 1].customer_id})
        return profile_service_pb2.ListCustomersResponse(
            customers=messages[:keep], next_page_token=token
        )
