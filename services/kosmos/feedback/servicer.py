"""FeedbackService over gRPC: proto <-> domain and request validation."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from kosmos.common import signing
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    RESOURCE_ID,
    check_resource_id,
    customer_name,
    decode_page_token,
    encode_page_token,
    interaction_name,
    page_size,
    parse_customer,
    parse_shop,
)
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.common.validation import check_lengths, check_not_both, checked_ids, non_negative
from kosmos.feedback.domain import Feedback
from kosmos.store.records import Impression, Interaction, InteractionColumns, InteractionType
from kosmos.v1 import common_pb2, feedback_service_pb2, feedback_service_pb2_grpc

MAX_BATCH = 1000
# ImportInteractions answers with a count, so a batch can be larger: fewer round trips and
# fewer transactions (each one is a disk sync) for a history back-fill.
MAX_IMPORT_BATCH = 10_000
MAX_REQUEST_ID = 128
# Clocks drift: an event up to this far in the future is accepted as "now".
CLOCK_SKEW_SECONDS = 300.0
MAX_RATING = 5.0
MAX_CONTEXT_TEXT = 64
MAX_IMPRESSIONS = 100
MAX_IMPRESSION_ITEMS = 100


def interaction_to_proto(i: Interaction) -> common_pb2.Interaction:
    return common_pb2.Interaction(
        name=interaction_name(i.shop_id, i.customer_id, i.seq),
        customer=customer_name(i.shop_id, i.customer_id),
        item_id=i.item_id,
        type=common_pb2.InteractionType.ValueType(i.type),
        value=i.value,
        event_time=to_timestamp(i.event_time),
        recommendation_id=i.recommendation_id,
        channel=i.channel,
        device=i.device,
    )


def interaction_from_proto(message: Any, shop_id: str, field: str, now: float) -> Interaction:
    customer_shop, customer_id = parse_customer(message.customer, f"{field}.customer")
    if customer_shop != shop_id:
        raise InvalidArgument(f"{field}.customer", "WRONG_SHOP", f"must be under shops/{shop_id}")
    item_id = check_resource_id(message.item_id, f"{field}.item_id")
    if message.type == common_pb2.INTERACTION_TYPE_UNSPECIFIED:
        raise InvalidArgument(f"{field}.type", "UNSPECIFIED_ENUM", "must be set")
    if message.type not in InteractionType._value2member_map_:
        raise InvalidArgument(f"{field}.type", "UNKNOWN_ENUM", f"unknown value {message.type}")
    kind = InteractionType(message.type)
    value = message.value
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(f"{field}.value", "INVALID_VALUE", "must be a finite number >= 0")
    if kind is InteractionType.RATING and value > MAX_RATING:
        raise InvalidArgument(
            f"{field}.value", "INVALID_RATING", f"ratings go from 0 to {MAX_RATING:g}"
        )
    event_time = now
    if message.HasField("event_time"):
        event_time = to_seconds(message.event_time)
        if event_time > now + CLOCK_SKEW_SECONDS:
            raise InvalidArgument(
                f"{field}.event_time", "FUTURE_EVENT_TIME", "must not be in the future"
            )
        if event_time <= 0:
            raise InvalidArgument(f"{field}.event_time", "INVALID_EVENT_TIME", "must be after 1970")
    if len(message.recommendation_id) > MAX_REQUEST_ID:
        raise InvalidArgument(
            f"{field}.recommendation_id", "TOO_LONG", f"must be at most {MAX_REQUEST_ID} characters"
        )
    for text in ("channel", "device"):
        if len(getattr(message, text)) > MAX_CONTEXT_TEXT:
            raise InvalidArgument(
                f"{field}.{text}", "TOO_LONG", f"must be at most {MAX_CONTEXT_TEXT} characters"
            )
    return Interaction(
        shop_id,
        customer_id,
        item_id,
        kind,
        event_time,
        value,
        message.recommendation_id,
        channel=message.channel,
        device=message.device,
    )


_KINDS = {t.value: t for t in InteractionType}


def interactions_from_proto(messages: Any, shop_id: str, now: float) -> list[Interaction]:
    """`interaction_from_proto` for a whole batch, as fast as history imports need.

    A history names the same customers and items again and again: each name is checked once
    per batch. A message that is not plainly valid goes through `interaction_from_proto`,
    which names the bad field.
    """
    prefix = f"shops/{shop_id}/customers/"
    cut = len(prefix)
    match = RESOURCE_ID.fullmatch
    customers: dict[str, str] = {}  # resource name → customer id ("" when not plainly valid)
    items: dict[str, bool] = {}  # item id → plainly valid
    latest = now + CLOCK_SKEW_SECONDS
    out = []
    for n, m in enumerate(messages):
        name, item_id = m.customer, m.item_id
        customer_id = customers.get(name)
        if customer_id is None:
            customer_id = name[cut:]
            if not name.startswith(prefix) or match(customer_id) is None:
                customer_id = ""
            customers[name] = customer_id
        item_ok = items.get(item_id)
        if item_ok is None:
            item_ok = items[item_id] = match(item_id) is not None
        kind = _KINDS.get(m.type)
        value = m.value
        event_time = now
        if m.HasField("event_time"):
            ts = m.event_time
            event_time = ts.seconds + ts.nanos / 1e9
        if (
            not customer_id
            or not item_ok
            or kind is None
            or not 0.0 <= value <= (MAX_RATING if kind is InteractionType.RATING else math.inf)
            or not 0.0 < event_time <= latest
            or len(m.recommendation_id) > MAX_REQUEST_ID
            or len(m.channel) > MAX_CONTEXT_TEXT
            or len(m.device) > MAX_CONTEXT_TEXT
        ):
            out.append(interaction_from_proto(m, shop_id, f"interactions[{n}]", now))
            continue
        out.append(
            Interaction(
                shop_id,
                customer_id,
                item_id,
                kind,
                event_time,
                value,
                m.recommendation_id,
                channel=m.channel,
                device=m.device,
            )
        )
    return out


class FeedbackServicer(feedback_service_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, feedback: Feedback) -> None:
        self.feedback = feedback

    def RecordInteractions(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        shop_id, request_id, request_hash, interactions = _batch(request, MAX_BATCH)
        stored = self.feedback.record(shop_id, request_id, request_hash, interactions)
        # A replay answers with what is still stored: an undone dismissal or an erased
        # customer's events (issue 11) are gone, and the rest no longer line up by index.
        aligned = len(stored) == len(request.interactions)
        return feedback_service_pb2.RecordInteractionsResponse(
            interactions=[interaction_to_proto(i) for i in stored],
            unattributed_indexes=[
                n
                for n, (sent, kept) in enumerate(zip(request.interactions, stored, strict=True))
                if sent.recommendation_id and not kept.recommendation_id
            ]
            if aligned
            else [],
        )

    def ImportInteractions(self, request: Any, context: Any) -> Any:  # noqa: N802
        interactions: Sequence[Interaction]
        if request.HasField("columns"):
            shop_id, request_id, request_hash, interactions = _column_batch(request)
        else:
            shop_id, request_id, request_hash, interactions = _batch(request, MAX_IMPORT_BATCH)
        count, replayed = self.feedback.import_history(
            shop_id, request_id, request_hash, interactions
        )
        return feedback_service_pb2.ImportInteractionsResponse(
            imported_count=count, replayed=replayed
        )

    def RecordImpressions(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        if not request.impressions:
            raise InvalidArgument("impressions", "MISSING_FIELD", "needs at least one impression")
        if len(request.impressions) > MAX_IMPRESSIONS:
            raise InvalidArgument(
                "impressions", "TOO_MANY_ENTRIES", f"takes at most {MAX_IMPRESSIONS}"
            )
        now = time.time()
        rows: list[Impression] = []
        for n, m in enumerate(request.impressions):
            field = f"impressions[{n}]"
            customer_shop, customer_id = parse_customer(m.customer, f"{field}.customer")
            if customer_shop != shop_id:
                raise InvalidArgument(
                    f"{field}.customer", "WRONG_SHOP", f"must be under shops/{shop_id}"
                )
            if not m.recommendation_id:
                raise InvalidArgument(f"{field}.recommendation_id", "MISSING_FIELD", "is required")
            if not signing.recommendation_id_valid(shop_id, m.recommendation_id, now):
                raise InvalidArgument(
                    f"{field}.recommendation_id",
                    "UNKNOWN_RECOMMENDATION",
                    "is not a recommendation id this shop was served in the last 7 days",
                )
            if not m.item_ids:
                raise InvalidArgument(f"{field}.item_ids", "MISSING_FIELD", "needs an item id")
            if len(m.item_ids) > MAX_IMPRESSION_ITEMS:
                raise InvalidArgument(
                    f"{field}.item_ids", "TOO_MANY_ENTRIES", f"takes at most {MAX_IMPRESSION_ITEMS}"
                )
            event_time = now
            if m.HasField("event_time"):
                event_time = to_seconds(m.event_time)
                if event_time > now + CLOCK_SKEW_SECONDS:
                    raise InvalidArgument(
                        f"{field}.event_time", "FUTURE_EVENT_TIME", "must not be in the future"
                    )
                if event_time <= 0:
                    raise InvalidArgument(
                        f"{field}.event_time", "INVALID_EVENT_TIME", "must be after 1970"
                    )
            for k, item_id in enumerate(m.item_ids):
                check_resource_id(item_id, f"{field}.item_ids[{k}]")
                rows.append(
                    Impression(shop_id, customer_id, m.recommendation_id, item_id, event_time)
                )
        count = self.feedback.record_impressions(shop_id, rows)
        return feedback_service_pb2.RecordImpressionsResponse(recorded_count=count)

    def ListInteractions(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        before = int(cursor["before"]) if cursor else None
        found = self.feedback.list(shop_id, customer_id, before, size + 1)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = encode_page_token(request.parent, {"before": found[-1].seq})
        return feedback_service_pb2.ListInteractionsResponse(
            interactions=[interaction_to_proto(i) for i in found], next_page_token=token
        )


def _shop_and_request_id(request: Any) -> tuple[str, str]:
    shop_id = parse_shop(request.parent, "parent")
    request_id = request.request_id
    if not request_id:
        raise InvalidArgument("request_id", "MISSING_FIELD", "is required (a UUID per request)")
    if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
        raise InvalidArgument(
            "request_id",
            "INVALID_REQUEST_ID",
            f"must be 1-{MAX_REQUEST_ID} printable characters",
        )
    return shop_id, request_id


_TYPE_CODES = np.array(sorted(t.value for t in InteractionType))
_RATING = int(InteractionType.RATING)


def _first(bad: Any) -> int:
    """The index of the first true entry of a boolean array."""
    return int(np.argmax(bad))


def columns_from_proto(columns: Any, shop_id: str, now: float) -> InteractionColumns:
    """`InteractionColumns` checked a column at a time (numpy for the numbers, each distinct id
    once), with the same rules and reasons as one `Interaction` message each; a violation
    names the column and the entry (``columns.values[37]``)."""
    count = len(columns.customer_ids)
    if not count:
        raise InvalidArgument(
            "columns.customer_ids", "MISSING_FIELD", "needs at least one interaction"
        )
    if count > MAX_IMPORT_BATCH:
        raise InvalidArgument(
            "columns.customer_ids", "TOO_MANY_ENTRIES", f"takes at most {MAX_IMPORT_BATCH}"
        )
    check_lengths(
        columns,
        count,
        ("customer_ids", "item_ids", "types"),
        ("values", "event_times", "recommendation_ids"),
    )
    customer_ids = checked_ids(columns.customer_ids, "columns.customer_ids")
    item_ids = checked_ids(columns.item_ids, "columns.item_ids")
    types = np.array(columns.types, dtype=np.int64)
    unknown = ~np.isin(types, _TYPE_CODES)
    if unknown.any():
        n = _first(unknown)
        field = f"columns.types[{n}]"
        if types[n] == common_pb2.INTERACTION_TYPE_UNSPECIFIED:
            raise InvalidArgument(field, "UNSPECIFIED_ENUM", "must be set")
        raise InvalidArgument(field, "UNKNOWN_ENUM", f"unknown value {types[n]}")
    values = non_negative(columns.values, count, "columns.values", "INVALID_VALUE")
    with np.errstate(invalid="ignore"):
        too_high = (types == _RATING) & (values > MAX_RATING)
        if too_high.any():
            raise InvalidArgument(
                f"columns.values[{_first(too_high)}]",
                "INVALID_RATING",
                f"ratings go from 0 to {MAX_RATING:g}",
            )
        times = np.zeros(count)
        if columns.event_times:
            times = np.array(columns.event_times, dtype=np.float64)
        times[times == 0] = now  # proto3's unset: now, as for an Interaction message
        future = times > now + CLOCK_SKEW_SECONDS
        invalid = ~(times > 0)  # NaN too
        if future.any() or invalid.any():
            n = _first(future | invalid)
            if future[n]:
                raise InvalidArgument(
                    f"columns.event_times[{n}]", "FUTURE_EVENT_TIME", "must not be in the future"
                )
            raise InvalidArgument(
                f"columns.event_times[{n}]", "INVALID_EVENT_TIME", "must be after 1970"
            )
    recommendation_ids = list(columns.recommendation_ids) or [""] * count
    served = {}
    for r in set(recommendation_ids):
        if len(r) > MAX_REQUEST_ID:
            n = recommendation_ids.index(r)
            raise InvalidArgument(
                f"columns.recommendation_ids[{n}]",
                "TOO_LONG",
                f"must be at most {MAX_REQUEST_ID} characters",
            )
        # Only an id this shop was served keeps its attribution (as in `_batch`).
        served[r] = r if not r or signing.recommendation_id_valid(shop_id, r, now) else ""
    if any(r != kept for r, kept in served.items()):
        recommendation_ids = [served[r] for r in recommendation_ids]
    return InteractionColumns(
        shop_id,
        customer_ids,
        item_ids,
        types.tolist(),
        values.tolist(),
        times.tolist(),
        recommendation_ids,
    )


def _column_batch(request: Any) -> tuple[str, str, str, InteractionColumns]:
    """Validates an ImportInteractions request that sends ``columns``."""
    shop_id, request_id = _shop_and_request_id(request)
    check_not_both(request, "interactions")
    columns = columns_from_proto(request.columns, shop_id, time.time())
    request_hash = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    return shop_id, request_id, request_hash, columns


def _batch(request: Any, maximum: int) -> tuple[str, str, str, list[Interaction]]:
    """Validates a RecordInteractions or ImportInteractions request: shop, request id, hash and
    the interactions as domain records."""
    shop_id, request_id = _shop_and_request_id(request)
    if not request.interactions:
        raise InvalidArgument("interactions", "MISSING_FIELD", "needs at least one interaction")
    if len(request.interactions) > maximum:
        raise InvalidArgument("interactions", "TOO_MANY_ENTRIES", f"takes at most {maximum}")
    now = time.time()
    interactions = interactions_from_proto(request.interactions, shop_id, now)
    # The hash of the request as sent (before defaults are filled in) tells a retry from a
    # different request reusing the same id.
    request_hash = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    # Only an id this shop was served keeps its attribution; anything else (another shop's id,
    # an expired or made-up one) is stored without it, and the answer says so.
    interactions = [
        i
        if not i.recommendation_id
        or signing.recommendation_id_valid(shop_id, i.recommendation_id, now)
        else dataclasses.replace(i, recommendation_id="")
        for i in interactions
    ]
    return shop_id, request_id, request_hash, interactions
