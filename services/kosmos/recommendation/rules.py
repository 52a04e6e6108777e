"""Merchant rules: what a shop wants shown, hidden, lifted, sunk or pinned (issue 13).

A shop's rule set is a versioned document (`MerchantRulesService`, validated on write by
`kosmos.shopconfig.rules_servicer`). Serving reads it through `kosmos.shopconfig.documents`,
cached by revision, so a change counts from the next request on every replica.

The rules act on the candidates the chain gathered, before the customer's own choices: a pin
becomes one more candidate, which the customer's exclusions (and dismissals, stock, the cart)
still drop, so no rule can break a customer exclusion. Order: filters and exclusions, then
boosts (a rank divided by the product of the factors that match), then pins; after variety,
`place_pins` puts each surviving pinned offer back at its slot.

Plain Python; imports no grpc.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kosmos.plugin import Scored
from kosmos.plugin.routing import Candidate
from kosmos.store.records import Item

FILTER, EXCLUDE, BOOST, PIN = "filter", "exclude", "boost", "pin"
ACTIONS = (FILTER, EXCLUDE, BOOST, PIN)
PROMOTED = "promoted"
PROMOTED_REASON = "Featured by the shop"
RULES_RECOMMENDER = "rules"
"""The recommender a pinned offer names when no recommender had found it."""


@dataclass(frozen=True, slots=True)
class Match:
    """Which items a rule selects: every field set must hold; a list matches any entry."""

    item_ids: tuple[str, ...] = ()
    categories: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    min_price: float | None = None
    max_price: float | None = None

    def __call__(self, item: Item) -> bool:
        if self.item_ids and item.item_id not in self.item_ids:
            return False
        if self.categories and item.category not in self.categories:
            return False
        if self.brands and item.brand not in self.brands:
            return False
        if self.min_price is not None and item.price < self.min_price:
            return False
        if self.max_price is not None and item.price > self.max_price:
            return False
        return all(item.attributes.get(k) == v for k, v in self.attributes.items())

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> Match:
        return cls(
            item_ids=tuple(d.get("item_ids") or ()),
            categories=frozenset(d.get("categories") or ()),
            brands=frozenset(d.get("brands") or ()),
            attributes=dict(d.get("attributes") or {}),
            min_price=d.get("min_price"),
            max_price=d.get("max_price"),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One merchant rule, as stored (see ``kosmos.v1.MerchantRule``)."""

    rule_id: str
    action: str
    match: Match = Match()
    placements: frozenset[str] = frozenset()
    start_time: float | None = None
    end_time: float | None = None
    factor: float = 1.0
    slot: int = 1
    disabled: bool = False

    def applies(self, placement: str, now: float) -> bool:
        if self.disabled or (self.placements and placement not in self.placements):
            return False
        if self.start_time is not None and now < self.start_time:
            return False
        return self.end_time is None or now < self.end_time

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> Rule:
        return cls(
            rule_id=d["rule_id"],
            action=d["action"],
            match=Match.from_document(d.get("match") or {}),
            placements=frozenset(d.get("placements") or ()),
            start_time=d.get("start_time"),
            end_time=d.get("end_time"),
            factor=float(d.get("factor") or 1.0),
            slot=int(d.get("slot") or 1),
            disabled=bool(d.get("disabled")),
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A shop's rules (plus a variant's, for a customer in an experiment)."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RuleSet:
        return cls(tuple(Rule.from_document(r) for r in document.get("rules") or ()))

    def __add__(self, other: RuleSet) -> RuleSet:
        return RuleSet(self.rules + other.rules)

    def active(self, placement: str, now: float) -> RuleSet:
        return RuleSet(tuple(r for r in self.rules if r.applies(placement, now)))


@dataclass(frozen=True, slots=True)
class Applied:
    """Candidates after the rules, and the slot (0-based) each pinned item asks for."""

    candidates: list[Candidate]
    pins: dict[str, tuple[int, str]]  # item id -> (slot, rule id)


def apply(rules: RuleSet, candidates: Sequence[Candidate], items: Mapping[str, Item]) -> Applied:
    """Applies ``rules`` (already the active ones) to the chain's candidates against the
    request's catalog snapshot ``items``. The customer's own choices come after this."""
    if not rules.rules:
        return Applied(list(candidates), {})
    filters = [r.match for r in rules.rules if r.action == FILTER]
    excludes = [r.match for r in rules.rules if r.action == EXCLUDE]
    boosts = [r for r in rules.rules if r.action == BOOST]
    kept: list[Candidate] = []
    for c in candidates:
        item = items.get(c.scored.item_id)
        if item is None:
            continue
        if any(not m(item) for m in filters) or any(m(item) for m in excludes):
            continue
        kept.append(c)
    if boosts:
        ranked = []
        for rank, c in enumerate(kept):
            item = items[c.scored.item_id]
            factor = 1.0
            for b in boosts:
                if b.match(item):
                    factor *= b.factor
            ranked.append(((rank + 1) / factor, rank, c))
        ranked.sort(key=lambda t: (t[0], t[1]))
        kept = [c for _, _, c in ranked]
    pins: dict[str, tuple[int, str]] = {}
    top = kept[0].scored.score if kept else 1.0
    for r in rules.rules:
        if r.action != PIN:
            continue
        for n, item_id in enumerate(r.match.item_ids):
            if item_id in pins or item_id not in items:
                continue
            pins[item_id] = (r.slot - 1 + n, r.rule_id)
    if pins:
        found = {c.scored.item_id: c for c in kept}
        pinned = []
        for item_id in sorted(pins, key=lambda i: pins[i][0]):
            was = found.pop(item_id, None)
            scored = Scored(
                item_id, was.scored.score if was else top, PROMOTED_REASON, kind=PROMOTED
            )
            pinned.append(Candidate(scored, was.recommender if was else RULES_RECOMMENDER))
        # Pinned first, so the filters that follow (the customer's) see them before the rest.
        kept = pinned + [c for c in kept if c.scored.item_id in found]
    return Applied(kept, pins)


def place_pins(offers: list[Any], pins: Mapping[str, tuple[int, str]]) -> list[Any]:
    """Moves each pinned offer that survived the filters to its slot (or the end of a shorter
    list); the others keep their order. ``offers`` have an ``item.item_id``."""
    if not pins:
        return offers
    pinned = [o for o in offers if o.item.item_id in pins]
    rest = [o for o in offers if o.item.item_id not in pins]
    for offer in sorted(pinned, key=lambda o: pins[o.item.item_id][0]):
        rest.insert(min(pins[offer.item.item_id][0], len(rest)), offer)
    return rest
