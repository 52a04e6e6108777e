"""The features the ranker learns from, per (customer, candidate), and the shop statistics
behind them. Every feature is a number; a missing one is NaN, which LightGBM treats as missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from kosmos_scenarios import History

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData
from kosmos.plugin.arrays import load_arrays_or_npz, save_arrays

DAY = 86400.0
RECENT_DAYS = 30.0

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

ITEM_FEATURES = (
    "item_popularity",  # ln of the item's share of positive interactions (+1 smoothed)
    "item_popularity_30d",  # the same over the 30 days before the fit's now
    "item_days_since_last",  # days since anyone last interacted with the item
    "item_age_days",  # days since its first interaction
)
CUSTOMER_FEATURES = (
    "times_bought",  # the customer's interactions with the item (fit time and recent)
    "days_since_bought",  # days since their latest one; NaN when never
    "history_size",  # ln(1 + the customer's interactions)
    "category_share",  # share of their history in the item's category
    "price_ratio",  # item price over the median price of their items; NaN when unknown
)


def price_of(features: Mapping[str, str]) -> float:
    """The item's ``price`` feature; else the middle of its ``price_band`` octave (band 3 is
    £1-£2, each band up doubles it, as `kosmos evaluate`'s Online Retail features say); NaN."""
    for name, read in (("price", float), ("price_band", lambda v: 1.5 * 2.0 ** (float(v) - 3))):
        text = features.get(name, "").strip()
        if text:
            try:
                value = read(text)
            except ValueError:
                continue
            if math.isfinite(value) and value > 0:
                return value
    return math.nan


def feature_names(sources: Sequence[str]) -> list[str]:
    """Column names, in order: per source its rank and score, then the rest.

    A source's score is scaled within its answer (its best 1, its last 0): a factor model's raw
    scores change scale from one fit to the next, and the ranker is trained on one fit of its
    sources and serves from another."""
    per_source = [f"{s}_{what}" for s in sources for what in ("rank", "score")]
    return [*per_source, "sources", *ITEM_FEATURES, *CUSTOMER_FEATURES]


@dataclass(frozen=True, slots=True)
class Stats:
    """What the features read about the shop: item statistics and each customer's history."""

    item_ids: tuple[str, ...]
    index: dict[str, int]
    popularity: Floats
    popularity_30d: Floats
    first: Floats  # per item, NaN when never touched
    last: Floats
    price: Floats  # per item, NaN when unknown
    codes: Ints  # per item category code; 0 unknown
    n_categories: int
    history: History
    usual_price: Floats  # per customer row; NaN when unknown
    now: float

    @classmethod
    def build(cls, data: TrainingData, category_feature: str = "category") -> Stats:
        item_ids = list(dict.fromkeys([*data.item_ids, *(i.item_id for i in data.interactions)]))
        index = {item: n for n, item in enumerate(item_ids)}
        liked = [
            i for i in data.interactions if i.weight > 0 and i.type is not InteractionType.DISMISS
        ]
        now = data.now or max((i.time for i in data.interactions), default=0.0)
        rows = np.fromiter((index[i.item_id] for i in liked), np.int64, len(liked))
        times = np.fromiter((i.time for i in liked), np.float64, len(liked))
        n = len(item_ids)
        # Shares, not counts: the ranker trains on part of the data and serves on all of it.
        counts = np.bincount(rows, minlength=n).astype(np.float64)
        popularity = np.log((counts + 1.0) / (counts.sum() + 1.0))
        recent = np.bincount(rows[times >= now - RECENT_DAYS * DAY], minlength=n).astype(float)
        popularity_30d = np.log((recent + 1.0) / (recent.sum() + 1.0))
        first = np.full(n, np.inf)
        last = np.full(n, -np.inf)
        np.minimum.at(first, rows, times)
        np.maximum.at(last, rows, times)
        first[~np.isfinite(first)] = np.nan
        last[~np.isfinite(last)] = np.nan
        price = np.array([price_of(data.item_features.get(i, {})) for i in item_ids])
        table: dict[str, int] = {"": 0}
        codes = np.array(
            [
                table.setdefault(
                    data.item_features.get(i, {}).get(category_feature, ""), len(table)
                )
                for i in item_ids
            ],
            dtype=np.int64,
        )
        history = History.build(liked, index, n)
        usual = np.full(len(history.customer_ids), np.nan)
        for c, customer in enumerate(history.customer_ids):
            owned = price[history.items(customer)[0]]
            owned = owned[np.isfinite(owned)]
            if owned.size:
                usual[c] = float(np.median(owned))
        return cls(
            tuple(item_ids),
            index,
            popularity,
            popularity_30d,
            first,
            last,
            price,
            codes,
            len(table),
            history,
            usual,
            now,
        )

    def customer(self, query: RecommendQuery) -> tuple[Ints, Floats, Floats, Floats, float, float]:
        """The customer's items (rows ascending, counts, last times), category shares, history
        size and usual price, counting ``recent_interactions`` newer than the fit."""
        rows, counts, last = self.history.items(query.customer_id)  # CSR: rows ascending
        later = [
            (r, i.time)
            for i in query.recent_interactions
            if i.time > self.now and i.weight > 0 and (r := self.index.get(i.item_id)) is not None
        ]
        if later:
            merged = {
                int(r): [float(n), float(t)] for r, n, t in zip(rows, counts, last, strict=True)
            }
            for r, t in later:
                entry = merged.setdefault(r, [0.0, -math.inf])
                entry[0] += 1.0
                entry[1] = max(entry[1], t)
            rows = np.array(sorted(merged), dtype=np.int64)
            counts = np.array([merged[int(r)][0] for r in rows])
            last = np.array([merged[int(r)][1] for r in rows])
        share = np.bincount(self.codes[rows], weights=counts, minlength=self.n_categories)
        share[0] = 0.0
        total = share.sum()
        if total > 0:
            share /= total
        c = self.history.index.get(query.customer_id)
        usual = float(self.usual_price[c]) if c is not None else math.nan
        return rows, counts, last, share, math.log1p(float(counts.sum())), usual

    def rows(
        self,
        query: RecommendQuery,
        candidates: Sequence[int],
        per_source: Sequence[Mapping[int, tuple[int, float]]],
        k: int,
    ) -> Floats:
        """The feature matrix for ``candidates`` (item rows); ``per_source[s]`` maps an item
        row to its (rank, score) in source ``s``'s answer, ranks from 1."""
        now = query.now or self.now
        owned, owned_counts, owned_last, share, size, usual = self.customer(query)
        items = np.asarray(candidates, dtype=np.int64)
        n = items.size
        columns: list[Floats] = []
        proposing = np.zeros(n)
        order = np.argsort(items, kind="stable")
        for answer in per_source:
            score = np.full(n, np.nan)
            rank = np.full(n, float(k + 1))  # the sentinel: ranked below anything it gave
            if answer:
                keys = np.fromiter(answer, np.int64, len(answer))
                hits = np.array(list(answer.values()), dtype=np.float64)
                at = order[np.searchsorted(items[order], keys)]  # every key is a candidate
                rank[at], score[at] = hits[:, 0], hits[:, 1]
                low, high = float(hits[:, 1].min()), float(hits[:, 1].max())
                score = (
                    (score - low) / (high - low)
                    if high > low
                    else np.where(np.isfinite(score), 1.0, np.nan)
                )
            proposing += np.isfinite(score)
            columns += [rank, score]
        bought = np.zeros(n)
        when = np.full(n, np.nan)
        if owned.size:
            at = np.minimum(np.searchsorted(owned, items), owned.size - 1)
            mine = owned[at] == items
            bought[mine] = owned_counts[at[mine]]
            when[mine] = owned_last[at[mine]]
        with np.errstate(invalid="ignore", divide="ignore"):
            price_ratio = self.price[items] / usual if math.isfinite(usual) else np.full(n, np.nan)
        columns += [
            proposing,
            self.popularity[items],
            self.popularity_30d[items],
            (now - self.last[items]) / DAY,
            (now - self.first[items]) / DAY,
            bought,
            (now - when) / DAY,
            np.full(n, size),
            share[self.codes[items]],
            price_ratio,
        ]
        return np.column_stack(columns) if n else np.zeros((0, len(columns)))

    def save(self, directory: Path) -> None:
        self.history.save(directory, "history")
        save_arrays(
            directory / "stats.arrays",
            {
                "popularity": self.popularity,
                "popularity_30d": self.popularity_30d,
                "first": self.first,
                "last": self.last,
                "price": self.price,
                "codes": self.codes,
                "usual_price": self.usual_price,
            },
        )
        (directory / "stats.json").write_text(
            json.dumps(
                {"item_ids": self.item_ids, "n_categories": self.n_categories, "now": self.now}
            )
        )

    @classmethod
    def load(cls, directory: Path) -> Stats:
        meta = json.loads((directory / "stats.json").read_text())
        a = load_arrays_or_npz(directory / "stats.arrays", directory / "stats.npz")
        item_ids = tuple(meta["item_ids"])
        return cls(
            item_ids,
            {item: n for n, item in enumerate(item_ids)},
            a["popularity"],
            a["popularity_30d"],
            a["first"],
            a["last"],
            a["price"],
            a["codes"],
            int(meta["n_categories"]),
            History.load(directory, "history"),
            a["usual_price"],
            float(meta["now"]),
        )


def positives(interactions: Sequence[Interaction]) -> list[Interaction]:
    return [i for i in interactions if i.weight > 0 and i.type is not InteractionType.DISMISS]
