"""Trending and new arrivals: what is rising now, and what is new, tilted to the customer.

**Trending.** For each item, ``recent`` counts its positive interactions in the
``recent_days`` before ``now`` (the query's, else the fit's), and ``baseline`` those in the
``baseline_days`` before that (or as much of them as the data covers), scaled to the recent
window's length. An item trends when
``(recent + prior) / (baseline + prior) > 1``; its score is that ratio times ``ln(1 + recent)``,
so a jump from 1 to 3 counts less than one from 100 to 300. Counts are taken at request time
from the fitted interaction times, once per distinct ``now`` (to the minute; a few are cached).

**New arrivals.** An item's arrival time is its ``first_seen``, ``create_time`` or
``created`` item feature (seconds since the epoch or ISO 8601; see ``time_features``), else the
time of its first interaction. Catalog items with neither are left out: nothing says they are
new. The score halves every ``half_life_days`` of age at ``now``; items older than
``max_age_days`` or arriving after ``now`` are left out.

Both lift items of the customer's categories (feature ``category_feature``) by
``1 + category_boost × share``, the share of the customer's history in that category (history
at fit time plus ``recent_interactions``).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    DAY,
    Floats,
    History,
    Ints,
    catalog,
    categories,
    category_codes,
    category_share,
    excluded,
    item_time,
    number,
    positive,
    recent_rows,
    settings_of,
    top,
)

CACHED_NOWS = 8


@dataclass(frozen=True, slots=True)
class _Model:
    item_ids: tuple[str, ...]
    index: dict[str, int]
    codes: Ints  # per item: category code, 0 unknown
    n_categories: int
    history: History
    rows: Ints  # every positive interaction's item row, by time
    times: Floats  # and its time, ascending
    arrival: Floats  # per item: arrival time, NaN when unknown
    now: float


class _Scenario:
    """What trending and new arrivals share: fit, category tilt, exclusions, save/load."""

    name = ""
    defaults: Mapping[str, str] = {}
    capabilities = Capabilities(cold_start=True, partial_fit=False, explain=False)

    def __init__(self, settings: Mapping[str, str]) -> None:
        self._configure(settings)
        self._model: _Model | None = None
        self._cache: OrderedDict[float, Floats] = OrderedDict()
        self._lock = threading.Lock()

    def _configure(self, settings: Mapping[str, str]) -> None:
        values = settings_of(self.name, settings, self.defaults)
        self.category_feature = values["category_feature"]
        self.category_boost = number(self.name, values, "category_boost")
        self.settings = dict(values)
        self._read(values)

    def _read(self, values: Mapping[str, str]) -> None:
        """Reads the subclass's own settings."""

    def fit(self, data: TrainingData) -> None:
        item_ids = catalog(data)
        index = {item: n for n, item in enumerate(item_ids)}
        codes, table = category_codes(
            categories(item_ids, data.item_features, self.category_feature)
        )
        liked = positive(data.interactions)
        rows = np.fromiter((index[i.item_id] for i in liked), np.int64, len(liked))
        times = np.fromiter((i.time for i in liked), np.float64, len(liked))
        order = np.argsort(times, kind="stable")
        rows, times = rows[order], times[order]
        arrival = np.full(len(item_ids), np.nan)
        first = np.full(len(item_ids), np.inf)
        np.minimum.at(first, rows, times)
        arrival[np.isfinite(first)] = first[np.isfinite(first)]
        for n, item in enumerate(item_ids):
            own = item_time(data.item_features.get(item, {}), self.time_features())
            if own is not None:
                arrival[n] = own
        now = data.now or max((i.time for i in data.interactions), default=0.0)
        self._model = _Model(
            tuple(item_ids),
            index,
            codes,
            len(table),
            History.build(liked, index, len(item_ids)),
            rows,
            times,
            arrival,
            now,
        )
        self._cache = OrderedDict()

    def time_features(self) -> Sequence[str]:
        return ()

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        raise Unsupported("partial_fit", self.name)

    def _require(self) -> _Model:
        if self._model is None:
            raise NotFitted(self.name)
        return self._model

    def base(self, model: _Model, now: float) -> Floats:
        """Per item, the customer-independent score at ``now`` (NaN or ≤ 0: not offered)."""
        raise NotImplementedError

    def _base_at(self, model: _Model, now: float) -> Floats:
        key = math.floor(now / 60.0)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        scores = self.base(model, now)
        with self._lock:
            self._cache[key] = scores
            while len(self._cache) > CACHED_NOWS:
                self._cache.popitem(last=False)
        return scores

    def tilt(self, model: _Model, query: RecommendQuery) -> Floats:
        """Per item: 1 + boost × the customer's share of history in its category."""
        rows, counts, _ = model.history.items(query.customer_id)
        recent, _ = recent_rows(query, model.index, after=model.now)
        all_rows = np.concatenate([rows, recent])
        weights = np.concatenate([counts, np.ones(recent.size)])
        share = category_share(all_rows, weights, model.codes, model.n_categories)
        return 1.0 + self.category_boost * share[model.codes]

    def reason(self, tilted: bool) -> tuple[str, str]:
        raise NotImplementedError

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        base = self._base_at(model, query.now or model.now)
        offered = np.nan_to_num(base, nan=0.0) > 0
        tilt = self.tilt(model, query)
        scores = np.where(offered, base * tilt, 0.0)
        exclude = excluded(query, model.history, model.index)
        result = []
        for n in top(scores, query.k, exclude, keep=offered):
            reason, kind = self.reason(bool(tilt[n] > 1.0))
            result.append(Scored(model.item_ids[n], float(scores[n]), reason, kind=kind))
        return result

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        """The item's category's top items by this scenario, at the fit's ``now``."""
        model = self._require()
        n = model.index.get(query.item_id)
        if n is None or model.codes[n] == 0:
            return []
        base = np.nan_to_num(self._base_at(model, model.now), nan=0.0)
        keep = (model.codes == model.codes[n]) & (base > 0)
        exclude = {model.index[i] for i in query.exclude_item_ids if i in model.index} | {n}
        reason, kind = self.reason(True)
        return [
            Scored(model.item_ids[m], float(base[m]), reason, kind=kind)
            for m in top(base, query.k, exclude, keep=keep)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", self.name)

    def save(self, directory: Path) -> None:
        model = self._require()
        model.history.save(directory, "history")
        save_arrays(
            directory / f"{self.name}.arrays",
            {
                "codes": model.codes,
                "rows": model.rows,
                "times": model.times,
                "arrival": model.arrival,
            },
        )
        (directory / f"{self.name}.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "settings": self.settings,
                    "item_ids": model.item_ids,
                    "n_categories": model.n_categories,
                    "now": model.now,
                }
            )
        )

    def load(self, directory: Path) -> None:
        meta = json.loads((directory / f"{self.name}.json").read_text())
        if meta.get("format") != 1:
            raise ValueError(f"unknown {self.name} model format {meta.get('format')!r}")
        self._configure(meta["settings"])
        item_ids = tuple(meta["item_ids"])
        arrays = load_arrays_or_npz(
            directory / f"{self.name}.arrays", directory / f"{self.name}.npz"
        )
        self._model = _Model(
            item_ids,
            {item: n for n, item in enumerate(item_ids)},
            arrays["codes"],
            int(meta["n_categories"]),
            History.load(directory, "history"),
            arrays["rows"],
            arrays["times"],
            arrays["arrival"],
            float(meta["now"]),
        )
        self._cache = OrderedDict()


class TrendingRecommender(_Scenario):
    """Items whose recent rate rises above their baseline (see the module doc)."""

    name = "trending"
    defaults = {
        "recent_days": "7",
        "baseline_days": "28",
        "prior": "2",
        "category_feature": "category",
        "category_boost": "1.0",
    }

    def _read(self, values: Mapping[str, str]) -> None:
        self.recent = number(self.name, values, "recent_days", 1e-6) * DAY
        self.baseline = number(self.name, values, "baseline_days", 1e-6) * DAY
        self.prior = number(self.name, values, "prior", 1e-6)

    def base(self, model: _Model, now: float) -> Floats:
        n = len(model.item_ids)
        if model.times.size == 0:
            return np.zeros(n)
        # Windows end on their right edge: (now - recent, now] and the baseline before it.
        lo, mid, hi = np.searchsorted(
            model.times, [now - self.recent - self.baseline, now - self.recent, now], side="right"
        )
        recent = np.bincount(model.rows[mid:hi], minlength=n).astype(np.float64)
        # A baseline that reaches back before the shop's first interaction is only as long as
        # the data it covers; with none at all, every item with recent interactions is rising.
        start = max(now - self.recent - self.baseline, float(model.times[0]))
        span = (now - self.recent) - start
        scale = self.recent / span if span > 0 else 0.0
        baseline = np.bincount(model.rows[lo:mid], minlength=n) * scale
        ratio = (recent + self.prior) / (baseline + self.prior)
        return np.where(ratio > 1.0, ratio * np.log1p(recent), 0.0)

    def reason(self, tilted: bool) -> tuple[str, str]:
        return ("Trending in a category you like" if tilted else "Trending now"), "trending"


class NewArrivalsRecommender(_Scenario):
    """The newest items in the catalog (see the module doc)."""

    name = "new_arrivals"
    defaults = {
        "half_life_days": "14",
        "max_age_days": "90",
        "time_features": "first_seen,create_time,created",
        "category_feature": "category",
        "category_boost": "2.0",
    }

    def _read(self, values: Mapping[str, str]) -> None:
        self.half_life = number(self.name, values, "half_life_days", 1e-6) * DAY
        self.max_age = number(self.name, values, "max_age_days", 1e-6) * DAY
        self.features = tuple(f.strip() for f in values["time_features"].split(",") if f.strip())

    def time_features(self) -> Sequence[str]:
        return self.features

    def base(self, model: _Model, now: float) -> Floats:
        age = now - model.arrival
        fresh = np.power(0.5, np.nan_to_num(age, nan=np.inf) / self.half_life)
        return np.where((age >= 0) & (age <= self.max_age), fresh, 0.0)

    def reason(self, tilted: bool) -> tuple[str, str]:
        if tilted:
            return "New in a category you like", "new_for_you"
        return "Just arrived", "new_arrival"


def create_trending(settings: Mapping[str, str]) -> TrendingRecommender:
    """Entry point ``trending``."""
    return TrendingRecommender(settings)


def create_new_arrivals(settings: Mapping[str, str]) -> NewArrivalsRecommender:
    """Entry point ``new_arrivals``."""
    return NewArrivalsRecommender(settings)
