"""Stable pages: one ranked list behind each recommendation id (issue 13).

The first page of a Recommend ranks one list of up to the shop's list length of offers
(`LIST_LENGTH` unless the shop or ``KOSMOS_LIST_LENGTH`` says otherwise), whatever the page
size, and keeps it in the store for `LIST_TTL_SECONDS` under its recommendation id
(`Store.put_recommendation_list`, written behind the first page: the Recommend does not wait
for the write). Every later page (its token names the id and an offset) is
a slice of that same list, read back from the store by whichever replica serves it. So pages
never repeat an offer and together are the one list; clicks between pages change the next
*list*, not the pages of this one; and since the list does not depend on the page size, top-k
is prefix-stable (the first 10 of a page of 20 are the page of 10). SimilarItems keeps its
lists the same way.

Variety holds in every window, not only the first page: `vary` places the offers one by one,
each time the best one whose category has fewer than ``max_per_category`` offers among the
previous ``VARIETY_WINDOW - 1``; only when no other category has offers left does a category
exceed its share. Any page of up to `VARIETY_WINDOW` offers, at any offset, so keeps the cap.

Plain Python; imports no grpc.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from kosmos.common.config import DEFAULT_LIST_LENGTH

LIST_LENGTH = DEFAULT_LIST_LENGTH
"""Offers ranked behind one recommendation id by default (pages beyond it are empty): five
pages of 10. Ranking more costs every first page (about 2 ms more for 100 on the 2-core
machine; 20 instead of 50 cost about 30% less in the domain, issue 12), so a shop may keep
fewer (``list_length`` in its settings, ``KOSMOS_LIST_LENGTH`` for the cluster)."""
LIST_MARGIN = 20
"""Candidates the chain is asked for beyond the list's length, for the filters to drop: the
same for every page size up to the list's length, so that the list is too (the query already
excludes what the customer has, dismissed or excluded, so few are dropped; when more are, the
chain is asked again for more: `kosmos.recommendation.domain.REFILL_FACTOR`). Each one costs
every Recommend (each is scored, filtered and worded: issue 12 cut 30 to 20; more
than 20 of the 70 dropped, out of stock say, costs a second, larger ask). A first page
larger than the list's length ranks a list of its own size."""
LIST_TTL_SECONDS = 24 * 3600
"""How long the list behind a recommendation id is kept; an older page token is refused
(INVALID_ARGUMENT, ``PAGE_TOKEN_EXPIRED``)."""
VARIETY_WINDOW = 10
"""The window the per-category cap holds in: any this many consecutive offers."""


class _HasCategory(Protocol):
    @property
    def item(self) -> Any: ...


T = TypeVar("T", bound=_HasCategory)


def vary(offers: list[T], limit: int, max_per_category: int) -> list[T]:
    """Up to ``limit`` of ``offers`` (best first), reordered as little as it takes for no
    window of `VARIETY_WINDOW` to hold more than ``max_per_category`` of one category while
    other categories have offers left."""
    pending = list(offers)
    if max_per_category <= 0 or not pending:
        return pending[:limit]
    categories = [o.item.category for o in pending]
    chosen: list[T] = []
    window: deque[str] = deque(maxlen=max(VARIETY_WINDOW - 1, 0))
    counts: dict[str, int] = {}
    while pending and len(chosen) < limit:
        pick = 0
        for n, category in enumerate(categories):
            if not category or counts.get(category, 0) < max_per_category:
                pick = n
                break
        else:
            pick = 0  # only capped categories are left: the best of them
        offer = pending.pop(pick)
        category = categories.pop(pick)
        if window.maxlen and len(window) == window.maxlen:
            gone = window.popleft()
            counts[gone] -= 1
        window.append(category)
        counts[category] = counts.get(category, 0) + 1
        chosen.append(offer)
    return chosen


def to_document(offer: Any) -> tuple[Any, ...]:
    """An offer as the store keeps it in a list (`RecommendationList.offers`), compact:
    ``[item id, score, reason, recommender, kind, evidence, rule id]`` (a tuple here, a JSON
    array in the store)."""
    return (
        offer.item.item_id,
        offer.score,
        offer.reason,
        offer.recommender,
        offer.kind,
        offer.evidence,
        offer.rule_id,
    )


def item_of(d: Sequence[Any]) -> str:
    return str(d[0])


def from_document(d: Sequence[Any]) -> dict[str, Any]:
    """The keyword arguments of a domain ``Offer`` (less ``item``) from `to_document`. A
    score kept as ``null`` was not finite (`kosmos.store._lists`)."""
    return {
        "score": math.nan if d[1] is None else float(d[1]),
        "reason": str(d[2]),
        "recommender": str(d[3]),
        "kind": str(d[4]),
        "evidence": tuple(d[5]),
        "rule_id": str(d[6]),
    }
