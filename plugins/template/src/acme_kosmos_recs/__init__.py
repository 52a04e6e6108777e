"""A template Kosmos recommender: popular items in the customer's favourite categories.

Copy this package, rename ``acme``, and replace the model. What it shows:

- the factory the entry point names (`create`), validating its settings;
- a model built whole in `fit` and swapped in with one assignment, so ``recommend`` (called from
  many threads) never sees half a model;
- `NotFitted` before ``fit``, `Unsupported` outside the capabilities;
- exclusions, ``filter_already_seen`` (at fit time and in the request), ``partial_fit``;
- `save` / `load` in a plain file format.

Scoring: each item scores ``share + popularity_weight * popularity``, where ``share`` is the
part of the customer's interactions that fell in the item's category (from the fit and from the
request's recent interactions) and ``popularity`` is the item's interaction weight relative to the
most popular item. A customer with no history gets plain popularity.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kosmos.plugin import (
    Capabilities,
    Contribution,
    ExplainQuery,
    Interaction,
    NotFitted,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
    Unsupported,
)

__all__ = ["NAME", "FavouriteCategory", "create"]

NAME = "acme_example"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class _Model:
    catalog: tuple[str, ...]  # every item, catalog order first: ties keep this order
    category: dict[str, str]  # item → category ("" when unknown)
    popularity: dict[str, float]  # item → summed interaction weight
    tastes: dict[str, dict[str, float]]  # customer → category → summed weight
    seen: dict[str, frozenset[str]]  # customer → items they interacted with


def _add(
    interactions: Iterable[Interaction],
    catalog: dict[str, None],
    category: Mapping[str, str],
    popularity: dict[str, float],
    tastes: dict[str, dict[str, float]],
    seen: dict[str, set[str]],
) -> None:
    for i in interactions:
        catalog.setdefault(i.item_id)
        seen.setdefault(i.customer_id, set()).add(i.item_id)
        weight = max(i.weight, 0.0)  # dismissals weigh 0: seen, but no taste
        popularity[i.item_id] = popularity.get(i.item_id, 0.0) + weight
        cat = category.get(i.item_id, "")
        if cat and weight:
            taste = tastes.setdefault(i.customer_id, {})
            taste[cat] = taste.get(cat, 0.0) + weight


class FavouriteCategory:
    """Popular items in the categories a customer interacts with most.

    Args:
        popularity_weight: How much overall popularity counts next to the customer's taste
            (0 ranks only by category share; ties then keep the catalog order).
    """

    capabilities = Capabilities(cold_start=False, partial_fit=True, explain=False)

    def __init__(self, popularity_weight: float = 0.5) -> None:
        if popularity_weight < 0:
            raise ValueError("popularity_weight must not be negative")
        self.popularity_weight = popularity_weight
        self._model: _Model | None = None
        self._lock = threading.Lock()  # one partial_fit at a time; readers never wait

    def _require(self) -> _Model:
        model = self._model
        if model is None:
            raise NotFitted(NAME)
        return model

    def fit(self, data: TrainingData) -> None:
        catalog = dict.fromkeys(data.item_ids)
        category = {item: f.get("category", "") for item, f in data.item_features.items()}
        popularity: dict[str, float] = {}
        tastes: dict[str, dict[str, float]] = {}
        seen: dict[str, set[str]] = {}
        _add(data.interactions, catalog, category, popularity, tastes, seen)
        self._model = _Model(
            tuple(catalog),
            category,
            popularity,
            tastes,
            {c: frozenset(items) for c, items in seen.items()},
        )

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        with self._lock:
            model = self._require()
            catalog = dict.fromkeys(model.catalog)
            popularity = dict(model.popularity)
            tastes = {c: dict(t) for c, t in model.tastes.items()}
            seen = {c: set(items) for c, items in model.seen.items()}
            _add(interactions, catalog, model.category, popularity, tastes, seen)
            self._model = _Model(
                tuple(catalog),
                model.category,
                popularity,
                tastes,
                {c: frozenset(items) for c, items in seen.items()},
            )

    def _ranked(
        self, model: _Model, shares: Mapping[str, float], items: Iterable[str], k: int
    ) -> list[tuple[str, float]]:
        top = max(model.popularity.values(), default=0.0) or 1.0
        scored = [
            (
                item,
                shares.get(model.category.get(item, ""), 0.0)
                + self.popularity_weight * model.popularity.get(item, 0.0) / top,
            )
            for item in items
        ]
        # A stable sort: equal scores keep the catalog order, so answers are reproducible.
        return sorted(scored, key=lambda pair: -pair[1])[:k]

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        banned = set(query.exclude_item_ids)
        if query.filter_already_seen:
            banned |= model.seen.get(query.customer_id, frozenset())
            banned |= {i.item_id for i in query.recent_interactions}
        taste = dict(model.tastes.get(query.customer_id, {}))
        for i in query.recent_interactions:  # a click a second ago counts already
            cat = model.category.get(i.item_id, "")
            if cat and i.weight > 0:
                taste[cat] = taste.get(cat, 0.0) + i.weight
        total = sum(taste.values())
        shares = {cat: weight / total for cat, weight in taste.items()} if total else {}
        candidates = (item for item in model.catalog if item not in banned)
        return [
            Scored(
                item,
                score,
                f"Popular in {model.category[item]}, a favourite of yours"
                if shares.get(model.category.get(item, ""))
                else "Popular with shoppers right now",
            )
            for item, score in self._ranked(model, shares, candidates, query.k)
        ]

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        model = self._require()
        cat = model.category.get(query.item_id, "")
        if not cat:
            return []
        banned = set(query.exclude_item_ids) | {query.item_id}
        same = (i for i in model.catalog if model.category.get(i) == cat and i not in banned)
        return [
            Scored(item, score, f"Popular in {cat}")
            for item, score in self._ranked(model, {}, same, query.k)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", NAME)

    def save(self, directory: Path) -> None:
        model = self._require()
        payload = {
            "format": FORMAT,
            "popularity_weight": self.popularity_weight,
            "catalog": model.catalog,
            "category": model.category,
            "popularity": model.popularity,
            "tastes": model.tastes,
            "seen": {c: sorted(items) for c, items in model.seen.items()},
        }
        (directory / "acme_example.json").write_text(json.dumps(payload))

    def load(self, directory: Path) -> None:
        payload = json.loads((directory / "acme_example.json").read_text())
        if payload.get("format") != FORMAT:
            raise ValueError(f"unknown {NAME} model format {payload.get('format')!r}")
        self.popularity_weight = float(payload["popularity_weight"])
        self._model = _Model(
            tuple(payload["catalog"]),
            payload["category"],
            payload["popularity"],
            payload["tastes"],
            {c: frozenset(items) for c, items in payload["seen"].items()},
        )


def create(settings: Mapping[str, str]) -> FavouriteCategory:
    """Entry point ``acme_example``; settings come from ``KOSMOS_PLUGIN__ACME_EXAMPLE__*``."""
    known = {"popularity_weight"}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"{NAME}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    return FavouriteCategory(popularity_weight=float(settings.get("popularity_weight", 0.5)))
