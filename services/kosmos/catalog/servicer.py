"""CatalogService over gRPC: proto <-> domain and request validation."""

from __future__ import annotations

import math
from typing import Any

from kosmos.catalog.domain import Catalog
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    decode_page_token,
    encode_page_token,
    fits,
    item_name,
    page_size,
    parse_item,
    parse_shop,
)
from kosmos.common.timestamps import to_timestamp
from kosmos.common.validation import check_attributes, check_count
from kosmos.store.records import Item
from kosmos.v1 import catalog_service_pb2, catalog_service_pb2_grpc, common_pb2

MAX_BATCH = 1000
MAX_TEXT = 512


def item_to_proto(item: Item) -> common_pb2.Item:
    return common_pb2.Item(
        name=item_name(item.shop_id, item.item_id),
        title=item.title,
        category=item.category,
        brand=item.brand,
        price=item.price,
        available=item.available,
        out_of_stock=not item.available,
        attributes=item.attributes,
        update_time=to_timestamp(item.update_time),
    )


def item_from_proto(message: Any, shop_id: str, field: str) -> Item:
    item_shop, item_id = parse_item(message.name, f"{field}.name")
    if item_shop != shop_id:
        raise InvalidArgument(f"{field}.name", "WRONG_SHOP", f"must be under shops/{shop_id}")
    for text in ("title", "category", "brand"):
        if len(getattr(message, text)) > MAX_TEXT:
            raise InvalidArgument(
                f"{field}.{text}", "TOO_LONG", f"must be at most {MAX_TEXT} characters"
            )
    if not math.isfinite(message.price) or message.price < 0:
        raise InvalidArgument(f"{field}.price", "INVALID_PRICE", "must be a finite number >= 0")
    return Item(
        shop_id=shop_id,
        item_id=item_id,
        title=message.title,
        category=message.category,
        brand=message.brand,
        price=message.price,
        # `available` is deprecated and ignored: proto3 sends no `false`, so an item upserted
        # without it looked unavailable and was never offered (issue 7). `out_of_stock`'s zero
        # value is the safe reading.
        available=not message.out_of_stock,
        attributes=check_attributes(message.attributes, f"{field}.attributes"),
    )


class CatalogServicer(catalog_service_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def UpsertItems(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's method names)
        shop_id = parse_shop(request.parent, "parent")
        check_count(len(request.items), "items", MAX_BATCH, minimum=1)
        items = [item_from_proto(m, shop_id, f"items[{n}]") for n, m in enumerate(request.items)]
        seen: dict[str, int] = {}
        for n, item in enumerate(items):
            if item.item_id in seen:
                raise InvalidArgument(
                    f"items[{n}].name", "DUPLICATE_ITEM", f"repeats items[{seen[item.item_id]}]"
                )
            seen[item.item_id] = n
        stored = self.catalog.upsert(shop_id, items)
        return catalog_service_pb2.UpsertItemsResponse(items=[item_to_proto(i) for i in stored])

    def GetItem(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, item_id = parse_item(request.name, "name")
        return catalog_service_pb2.GetItemResponse(
            item=item_to_proto(self.catalog.get(shop_id, item_id))
        )

    def ListItems(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        found = self.catalog.list(shop_id, str(cursor["after"]) if cursor else "", size + 1)
        messages = [item_to_proto(i) for i in found[:size]]
        keep = fits(messages)
        token = ""
        if len(found) > keep:
            token = encode_page_token(request.parent, {"after": found[keep - 1].item_id})
        return catalog_service_pb2.ListItemsResponse(items=messages[:keep], next_page_token=token)
