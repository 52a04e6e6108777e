"""Bought together: items that share baskets with the items in view.

A basket is one customer's positive interactions with no gap longer than ``window_hours``
(an invoice, a session, a day's shopping), at most ``max_basket`` distinct items. Two items'
association is the number of baskets holding both over ``sqrt(baskets(x) · baskets(y))`` (the
cosine of their basket vectors), keeping each item's ``neighbours`` strongest partners.

A query is seeded by ``seed_item_ids`` (the product page's item, then the cart; weights 1, 1/2,
1/3...), or else by the customer's latest interactions (``recent_interactions``, or their history
at fit time; weights decaying by ``recency_decay`` per step). Seeds are never offered back, and
only items associated with a seed are: no association, no answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

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
from kosmos.plugin.arrays import load_arrays_or_npz, save_arrays
from kosmos_scenarios._common import (
    Floats,
    History,
    Ints,
    catalog,
    excluded,
    number,
    positive,
    settings_of,
    top,
)

NAME = "bought_together"
KIND = "bought_together"

DEFAULTS = {
    "window_hours": "24",
    "max_basket": "100",
    "neighbours": "100",
    "seeds": "25",
    "recency_decay": "0.85",
}


@dataclass(frozen=True, slots=True)
class _Model:
    item_ids: tuple[str, ...]
    index: dict[str, int]
    association: sparse.csr_matrix  # item × item, zero diagonal, top neighbours per row
    history: History
    now: float


def baskets(
    interactions: Sequence[Interaction], index: Mapping[str, int], window: float, cap: int
) -> sparse.csr_matrix:
    """Basket × item incidence (1 where the basket holds the item)."""
    rows = positive(interactions)
    rows.sort(key=lambda i: (i.customer_id, i.time))
    basket_of: list[int] = []
    items: list[int] = []
    basket, previous, size = -1, None, 0
    held: set[int] = set()
    for i in rows:
        if (
            previous is None
            or i.customer_id != previous.customer_id
            or i.time - previous.time > window
        ):
            basket, size, held = basket + 1, 0, set()
        previous = i
        n = index[i.item_id]
        if n in held or size >= cap:
            continue
        held.add(n)
        size += 1
        basket_of.append(basket)
        items.append(n)
    return sparse.csr_matrix(
        (np.ones(len(items)), (basket_of, items)), shape=(basket + 1, len(index))
    )


def associations(incidence: sparse.csr_matrix, neighbours: int) -> sparse.csr_matrix:
    """Cosine of item basket vectors, diagonal dropped, ``neighbours`` largest per row."""
    counts = np.asarray(incidence.sum(axis=0)).ravel()
    together = (incidence.T @ incidence).tocsr()
    together.setdiag(0)
    together.eliminate_zeros()
    norm = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    scaled = sparse.diags(norm) @ together @ sparse.diags(norm)
    scaled = sparse.csr_matrix(scaled)
    rows, cols, vals = [], [], []
    for n in range(scaled.shape[0]):
        lo, hi = scaled.indptr[n], scaled.indptr[n + 1]
        if hi == lo:
            continue
        data, idx = scaled.data[lo:hi], scaled.indices[lo:hi]
        if hi - lo > neighbours:
            keep = np.lexsort((idx, -data))[:neighbours]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(idx.size, n))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sparse.csr_matrix(scaled.shape)
    out = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=scaled.shape
    )
    out.sort_indices()
    return out


class BoughtTogetherRecommender:
    """Co-basket associations seeded by the items in view (see the module doc)."""

    capabilities = Capabilities(cold_start=False, partial_fit=False, explain=True)

    def __init__(self, settings: Mapping[str, str]) -> None:
        self._configure(settings)
        self._model: _Model | None = None

    def _configure(self, settings: Mapping[str, str]) -> None:
        values = settings_of(NAME, settings, DEFAULTS)
        self.window = number(NAME, values, "window_hours") * 3600.0
        self.max_basket = int(number(NAME, values, "max_basket", 2))
        self.neighbours = int(number(NAME, values, "neighbours", 1))
        self.seeds = int(number(NAME, values, "seeds", 1))
        self.recency_decay = number(NAME, values, "recency_decay", 1e-6)
        if self.recency_decay > 1:
            raise ValueError(f"{NAME}: recency_decay must be at most 1")
        self.settings = dict(values)

    def fit(self, data: TrainingData) -> None:
        item_ids = catalog(data)
        index = {item: n for n, item in enumerate(item_ids)}
        incidence = baskets(data.interactions, index, self.window, self.max_basket)
        history = History.build(positive(data.interactions), index, len(item_ids))
        now = data.now or max((i.time for i in data.interactions), default=0.0)
        self._model = _Model(
            tuple(item_ids), index, associations(incidence, self.neighbours), history, now
        )

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        # New interactions seed the next request through `recent_interactions`.
        raise Unsupported("partial_fit", NAME)

    def _require(self) -> _Model:
        if self._model is None:
            raise NotFitted(NAME)
        return self._model

    def seed_weights(self, model: _Model, query: RecommendQuery) -> tuple[Ints, Floats]:
        """The seed item rows and their weights, strongest first."""
        seeds = [model.index[i] for i in query.seed_item_ids if i in model.index]
        if seeds:
            rows = list(dict.fromkeys(seeds))[: self.seeds]
            return np.array(rows, np.int64), 1.0 / np.arange(1, len(rows) + 1)
        recent = [
            model.index[i.item_id]
            for i in positive(query.recent_interactions)
            if i.item_id in model.index
        ]
        if not recent:
            items, _, last = model.history.items(query.customer_id)
            recent = [int(items[n]) for n in np.argsort(-last, kind="stable")]
        rows = list(dict.fromkeys(recent))[: self.seeds]
        return np.array(rows, np.int64), self.recency_decay ** np.arange(len(rows), dtype=float)

    def _scores(self, model: _Model, seeds: Ints, weights: Floats) -> Floats:
        if seeds.size == 0:
            return np.zeros(len(model.item_ids))
        return np.asarray(model.association[seeds].T @ weights).ravel()

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        seeds, weights = self.seed_weights(model, query)
        scores = self._scores(model, seeds, weights)
        exclude = excluded(query, model.history, model.index) | {int(s) for s in seeds}
        picked = top(scores, query.k, exclude, keep=scores > 0)
        result = []
        for n in picked:
            because = ""
            if query.reasons:
                column = model.association[seeds, n].toarray().ravel() * weights
                because = model.item_ids[int(seeds[int(np.argmax(column))])]
            result.append(
                Scored(
                    model.item_ids[n],
                    float(scores[n]),
                    "Often bought together",
                    because_item_id=because,
                    kind=KIND,
                )
            )
        return result

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        model = self._require()
        n = model.index.get(query.item_id)
        if n is None:
            return []
        row = model.association[n].toarray().ravel()
        exclude = {model.index[i] for i in query.exclude_item_ids if i in model.index} | {n}
        return [
            Scored(model.item_ids[m], float(row[m]), "Often bought together", kind=KIND)
            for m in top(row, query.k, exclude, keep=row > 0)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        """How much each of the customer's latest items adds to ``query.item_id``'s score."""
        model = self._require()
        n = model.index.get(query.item_id)
        if n is None:
            return []
        seeds, weights = self.seed_weights(
            model,
            RecommendQuery(
                customer_id=query.customer_id,
                k=1,
                recent_interactions=query.recent_interactions,
            ),
        )
        if seeds.size == 0:
            return []
        parts = model.association[seeds, n].toarray().ravel() * weights
        order = np.lexsort((seeds, -parts))
        return [
            Contribution(model.item_ids[int(seeds[m])], float(parts[m]))
            for m in order
            if parts[m] > 0
        ]

    def save(self, directory: Path) -> None:
        model = self._require()
        model.history.save(directory, "history")
        a = model.association
        save_arrays(
            directory / "association.arrays",
            {"indptr": a.indptr, "indices": a.indices, "data": a.data, "shape": np.array(a.shape)},
        )
        (directory / "bought_together.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "settings": self.settings,
                    "item_ids": model.item_ids,
                    "now": model.now,
                }
            )
        )

    def load(self, directory: Path) -> None:
        meta = json.loads((directory / "bought_together.json").read_text())
        if meta.get("format") != 1:
            raise ValueError(f"unknown {NAME} model format {meta.get('format')!r}")
        self._configure(meta["settings"])
        item_ids = tuple(meta["item_ids"])
        z = load_arrays_or_npz(directory / "association.arrays", directory / "association.npz")
        shape = tuple(int(x) for x in z["shape"])
        association = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        self._model = _Model(
            item_ids,
            {item: n for n, item in enumerate(item_ids)},
            association,
            History.load(directory, "history"),
            float(meta["now"]),
        )


def create_bought_together(settings: Mapping[str, str]) -> BoughtTogetherRecommender:
    """Entry point ``bought_together``."""
    return BoughtTogetherRecommender(settings)
