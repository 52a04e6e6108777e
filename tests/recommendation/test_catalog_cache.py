"""The in-memory catalog catches up with only what changed, copy on write (issue 8)."""

from __future__ import annotations

import pytest

from kosmos.common.errors import NotFound
from kosmos.recommendation.catalog_cache import CatalogCache
from kosmos.store.records import Item, Shop


def test_a_write_reaches_the_next_read_and_old_snapshots_stay_whole(store):
    store.create_shop(Shop("acme"))
    store.upsert_items([Item("acme", f"i{n}", title=f"t{n}") for n in range(50)])
    cache = CatalogCache(store)
    before = cache.items("acme")
    assert len(before) == 50 and cache.items("acme") is before  # unchanged: no reload
    store.upsert_items([Item("acme", "i7", title="new"), Item("acme", "i99")])
    after = cache.items("acme")
    assert after["i7"].title == "new" and "i99" in after and len(after) == 51
    assert before["i7"].title == "t7" and "i99" not in before  # a reader's snapshot never moves
    with pytest.raises(NotFound):
        cache.items("nope")
