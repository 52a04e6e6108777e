"""A shop's merchant rules and experiments for serving, cached by revision (issue 13).

Both are versioned documents in the store (kinds ``rules`` and ``experiments``). `for_shop`
costs one indexed read (the current revision of each kind); a document is parsed again only
when its revision changed, so a rule or experiment change counts from the next request on
every replica, like `ShopConfig`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from kosmos.experiments.domain import KIND as EXPERIMENTS
from kosmos.experiments.domain import Experiment, parse
from kosmos.recommendation.rules import RuleSet
from kosmos.store import Store

RULES = "rules"
"""The document kind merchant rules are stored under."""


@dataclass(frozen=True, slots=True)
class ShopDocuments:
    rules_revision: int = 0
    experiments_revision: int = 0
    rules: RuleSet = RuleSet()
    experiments: tuple[Experiment, ...] = ()


class DocumentCache:
    """Per-shop rules and experiments, parsed once per revision."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, ShopDocuments] = {}
        self._lock = threading.Lock()

    def for_shop(self, shop_id: str, revisions: Mapping[str, int] | None = None) -> ShopDocuments:
        """The shop's documents at ``revisions`` (kind → revision), when the caller read them
        already (`kosmos.store.ShopRevisions`); else at the store's current ones."""
        if revisions is None:
            revisions = self.store.document_revisions(shop_id)
        rules_rev, exp_rev = revisions.get(RULES, 0), revisions.get(EXPERIMENTS, 0)
        cached = self._cache.get(shop_id, ShopDocuments())
        if (cached.rules_revision, cached.experiments_revision) == (rules_rev, exp_rev):
            return cached
        rules, experiments = cached.rules, cached.experiments
        if rules_rev != cached.rules_revision:
            stored = self.store.get_document(shop_id, RULES, rules_rev) if rules_rev else None
            rules = RuleSet.from_document(stored.document) if stored else RuleSet()
        if exp_rev != cached.experiments_revision:
            stored = self.store.get_document(shop_id, EXPERIMENTS, exp_rev) if exp_rev else None
            experiments = parse(stored.document) if stored else ()
        fresh = ShopDocuments(rules_rev, exp_rev, rules, experiments)
        with self._lock:
            self._cache[shop_id] = fresh
        return fresh
