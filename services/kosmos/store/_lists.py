"""The row of a kept recommendation list (`RecommendationList`), as both stores hold it.

The offers go in one text column as a compact JSON array of `kosmos.recommendation.pages`
documents. Every first page keeps one list of up to 50 offers, so the encoding is on the
request path (the write-behind thread's, but in the same process and under the same GIL):
orjson writes such a list in 4 µs where the standard library's encoder took 59 µs, and
reads it back in a third of the time (``tools/bench_json.py``; issue 12). Both write RFC
8259 JSON, so lists kept before read the same.

orjson writes a score that is not finite (NaN, infinity) as ``null``; the standard encoder
wrote ``NaN``, which is not JSON. `kosmos.recommendation.pages.from_document` reads either
back as NaN.
"""

from __future__ import annotations

from typing import Any

import orjson

from kosmos.store.records import RecommendationList


def list_row(r: RecommendationList) -> tuple[Any, ...]:
    """The columns of ``recommendation_lists``, in the order both stores insert them."""
    return (
        r.shop_id,
        r.recommendation_id,
        r.customer_id,
        r.placement,
        r.experiment_id,
        r.variant_id,
        orjson.dumps(r.offers, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        r.create_time,
        r.expire_time,
    )


def read_list(row: tuple[Any, ...]) -> RecommendationList:
    """A row of `list_row`'s columns (its offers as kept text), as a record."""
    return RecommendationList(
        shop_id=row[0],
        recommendation_id=row[1],
        customer_id=row[2],
        placement=row[3],
        experiment_id=row[4],
        variant_id=row[5],
        offers=tuple(_loads(row[6])),
        create_time=row[7],
        expire_time=row[8],
    )


def _plain(value: Any) -> Any:
    """What orjson does not write itself: a subclass of float, int or str (a plugin's own
    score type, say) as the plain value, as the standard encoder wrote it."""
    for plain in (float, int, str):
        if isinstance(value, plain):
            return plain(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # A list kept by an earlier release with a NaN score (``NaN`` is not JSON): the
        # standard library reads it, as it wrote it.
        import json  # noqa: PLC0415 (only for such a list)

        return json.loads(text)
