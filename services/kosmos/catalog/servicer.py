"""CatalogService over gRPC: proto <-> domain and request validation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kosmos.catalog.domain import Catalog
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    RESOURCE_ID,
    decode_page_token,
    encode_page_token,
    fits,
    item_name,
    page_size,
    parse_item,
    parse_shop,
)
from kosmos.common.timestamps import to_timestamp
from kosmos.common.validation import (
    attributes_json,
    check_attributes,
    check_count,
    check_lengths,
    check_not_both,
    check_texts,
    checked_ids,
    non_negative,
    plain_attributes,
)
from kosmos.store.records import Item, ItemColumns
from kosmos.v1 import catalog_service_pb2, catalog_service_pb2_grpc, common_pb2

MAX_BATCH = 1000
MAX_COLUMNS_BATCH = 10_000  # ItemColumns: bulk loads, as ImportInteractions takes
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


def items_from_proto(messages: Any, shop_id: str) -> list[Item]:
    """`item_from_proto` for a whole batch, as fast as a catalog load needs: a plainly valid
    item is checked with a few comparisons; any other goes through `item_from_proto`, which
    names the bad field. Refuses an item named twice."""
    prefix = f"shops/{shop_id}/items/"
    cut = len(prefix)
    match = RESOURCE_ID.fullmatch
    out = []
    seen: dict[str, int] = {}
    for n, m in enumerate(messages):
        name, title, category, brand, price = m.name, m.title, m.category, m.brand, m.price
        item_id = name[cut:]
        attributes = plain_attributes(m.attributes)
        if (
            attributes is None
            or not name.startswith(prefix)
            or match(item_id) is None
            or len(title) > MAX_TEXT
            or len(category) > MAX_TEXT
            or len(brand) > MAX_TEXT
            or not 0.0 <= price < math.inf
        ):
            item = item_from_proto(m, shop_id, f"items[{n}]")
        else:
            item = Item(
                shop_id, item_id, title, category, brand, price, not m.out_of_stock, attributes
            )
        if seen.setdefault(item.item_id, n) != n:
            raise InvalidArgument(
                f"items[{n}].name", "DUPLICATE_ITEM", f"repeats items[{seen[item.item_id]}]"
            )
        out.append(item)
    return out


def columns_from_proto(columns: Any, shop_id: str) -> ItemColumns:
    """`ItemColumns` checked a column at a time, with the same rules and reasons as one `Item`
    message each (`item_from_proto`); a violation names the column and the entry
    (``columns.prices[37]``)."""
    count = len(columns.item_ids)
    check_count(count, "columns.item_ids", MAX_COLUMNS_BATCH, minimum=1)
    check_lengths(
        columns,
        count,
        ("item_ids",),
        ("titles", "categories", "brands", "prices", "out_of_stock"),
    )
    item_ids = checked_ids(columns.item_ids, "columns.item_ids", unique="DUPLICATE_ITEM")
    titles, categories, brands = (
        check_texts(getattr(columns, name), f"columns.{name}", MAX_TEXT) or [""] * count
        for name in ("titles", "categories", "brands")
    )
    prices = non_negative(columns.prices, count, "columns.prices", "INVALID_PRICE")
    out_of_stock = columns.out_of_stock
    available = [not o for o in out_of_stock] if out_of_stock else [True] * count
    return ItemColumns(
        shop_id,
        item_ids,
        titles,
        categories,
        brands,
        prices.tolist(),
        available,
        attributes_json(columns.attributes, count, "columns.attributes"),
    )


class CatalogServicer(catalog_service_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def UpsertItems(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's method names)
        shop_id = parse_shop(request.parent, "parent")
        if request.HasField("columns"):
            check_not_both(request, "items")
            items: Sequence[Item] = columns_from_proto(request.columns, shop_id)
        else:
            check_count(len(request.items), "items", MAX_BATCH, minimum=1)
            items = items_from_proto(request.items, shop_id)
        stored = self.catalog.upsert(shop_id, items)
        if request.count_only:
            return catalog_service_pb2.UpsertItemsResponse()
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
