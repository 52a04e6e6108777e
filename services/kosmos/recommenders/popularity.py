"""Popularity, recency-weighted per shop: works with no model at all and is the last fallback.

Each interaction adds its weight, halved every ``half_life_days``. A customer's recent
interactions tilt the ranking toward the categories they have been browsing, so even this
recommender answers the very next request differently after a click. Interactions that name
their channel (``Interaction.channel``) also count per channel, and a request from a channel
(``RecommendQuery.context["channel"]``) with at least `MIN_CHANNEL_EVENTS` of them blends that
channel's popularity in by ``channel_weight``: what sells in the app leads in the app.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

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
from kosmos.plugin.arrays import load_arrays, save_arrays

NAME = "popularity"
SEEN_OFFSETS = "popularity-seen-offsets"
SEEN_ITEMS = "popularity-seen-items"
MIN_CHANNEL_EVENTS = 20
"""Interactions a channel needs before its own popularity counts."""


@dataclass(frozen=True, slots=True)
class _Model:
    item_ids: tuple[str, ...]
    index: dict[str, int]
    scores: npt.NDArray[np.float64]  # recency-weighted popularity, normalised to max 1
    raw: npt.NDArray[np.float64]  # un-normalised, so partial_fit can add to it
    categories: tuple[str, ...]  # per item; "" when unknown
    category_codes: npt.NDArray[np.int64]  # per item, index into category_names
    category_names: dict[str, int]
    seen: _Seen  # customer → items they interacted with (at fit time, and partial fits since)
    now: float
    channel_raw: dict[str, npt.NDArray[np.float64]]  # per channel, like raw
    channel_scores: dict[str, npt.NDArray[np.float64]]  # channels with enough events, max 1
    channel_events: dict[str, int]
    # "" (no channel blend) and each channel in channel_scores → its ranking, made at fit.
    rankings: dict[str, _Ranking]


@dataclass(frozen=True, slots=True)
class _Ranking:
    """Precomputed at fit (issue 12): every item by score, best first, ties by catalog order,
    and the same per category. A request reads the heads of these instead of scoring and
    partitioning the whole catalog, so its cost no longer grows with the catalog."""

    scores: npt.NDArray[np.float64]
    order: npt.NDArray[np.int64]
    by_category: dict[int, npt.NDArray[np.int64]]

    @classmethod
    def of(
        cls, scores: npt.NDArray[np.float64], codes: npt.NDArray[np.int64], n_codes: int
    ) -> _Ranking:
        order = np.lexsort((np.arange(scores.size), -scores)).astype(np.int64)
        grouped = order[np.argsort(codes[order], kind="stable")]  # by category, order kept
        bounds = np.searchsorted(codes[grouped], np.arange(n_codes + 1))
        return cls(scores, order, {c: grouped[bounds[c] : bounds[c + 1]] for c in range(n_codes)})


@dataclass(frozen=True, slots=True)
class _Seen:
    """The items each customer interacted with at fit time, as arrays (issue 12): customer
    ``c``'s item indices are ``items[offsets[rows[c]] : offsets[rows[c] + 1]]``. A dict of
    frozensets held about 800 bytes a customer of 20 events (770 MiB at a million, built
    again by every serving process that loaded the JSON); these arrays hold the indices in 4
    bytes each and are memory-mapped from the saved version, one copy for every process.
    ``since`` holds what `PopularityRecommender.partial_fit` added after the fit, per customer
    (item indices too): the arrays never change."""

    rows: dict[str, int]
    offsets: npt.NDArray[np.int64]
    items: npt.NDArray[np.int32]
    since: dict[str, frozenset[int]]

    @classmethod
    def of(
        cls,
        customers: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        customer_ids: Sequence[str],
        n_items: int,
    ) -> _Seen:
        """From one (customer row, item index) pair per interaction; ``customer_ids[row]``
        names each row."""
        # Sorted and deduplicated by hand: np.unique (numpy 2's hashing path) made a fit of a
        # million customers' 22M events take 22 s instead of 10 (tools/bench_popularity.py).
        width = max(n_items, 1)
        pairs = np.sort(customers * width + items)
        if pairs.size:
            distinct = np.empty(pairs.size, dtype=bool)
            distinct[0] = True
            np.not_equal(pairs[1:], pairs[:-1], out=distinct[1:])
            pairs = pairs[distinct]
        offsets = np.zeros(len(customer_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pairs // width, minlength=len(customer_ids)), out=offsets[1:])
        rows = {c: n for n, c in enumerate(customer_ids)}
        return cls(rows, offsets, (pairs % width).astype(np.int32), {})

    @classmethod
    def loaded(
        cls,
        customer_ids: Sequence[str],
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int32],
    ) -> _Seen:
        """The arrays of a saved version, their shapes checked against its customers: a
        version that does not fit is refused at load (ValueError), not at a request. (The
        item indices are not scanned: that would read the whole map at start-up.)"""
        if (
            offsets.ndim != 1
            or offsets.size != len(customer_ids) + 1
            or offsets[0] != 0
            or offsets[-1] != items.size
            or items.ndim != 1
        ):
            raise ValueError("popularity: the saved who-saw-what arrays do not fit the model")
        # Plain views of the maps (still the file's pages): a slice of an np.memmap runs its
        # Python __array_finalize__, which cost a filtered answer a third more
        # (tools/bench_popularity.py).
        rows = {c: n for n, c in enumerate(customer_ids)}
        return cls(rows, offsets.view(np.ndarray), items.view(np.ndarray), {})

    @classmethod
    def from_sets(cls, seen: Mapping[str, Sequence[int]]) -> _Seen:
        customer_ids = list(seen)
        rows = np.repeat(
            np.arange(len(customer_ids), dtype=np.int64), [len(v) for v in seen.values()]
        )
        items = np.fromiter((n for v in seen.values() for n in v), dtype=np.int64, count=rows.size)
        n_items = int(items.max()) + 1 if items.size else 1
        return cls.of(rows, items, customer_ids, n_items)

    def get(self, customer_id: str) -> Sequence[int]:
        """The customer's item indices (empty for a customer unseen at fit time)."""
        row = self.rows.get(customer_id)
        fitted: Sequence[int] = (
            () if row is None else self.items[self.offsets[row] : self.offsets[row + 1]].tolist()
        )
        added = self.since.get(customer_id)
        return fitted if added is None else [*fitted, *added]

    def adding(self, added: Mapping[str, Collection[int]]) -> _Seen:
        """A copy with ``added`` (customer → item indices) too; the arrays are shared."""
        since = dict(self.since)
        for customer_id, items in added.items():
            since[customer_id] = since.get(customer_id, frozenset()) | frozenset(items)
        return _Seen(self.rows, self.offsets, self.items, since)

    def merged(self) -> _Seen:
        """The same, with what partial fits added folded into the arrays."""
        if not self.since:
            return self
        customers = [*self.rows, *(c for c in self.since if c not in self.rows)]
        return _Seen.from_sets({c: self.get(c) for c in customers})  # `of` drops repeats


class PopularityRecommender:
    """Recency-weighted popularity with a category tilt from the customer's recent interactions.

    Settings:
        half_life_days: Days after which an interaction counts half (default 14).
        category_boost: How strongly recent categories lift their items (default 2.0; 0 turns
            the tilt off).
        channel_weight: The share of the request channel's own popularity in the score,
            0 to 1 (default 0.5; 0 ignores channels).
    """

    capabilities = Capabilities(cold_start=True, partial_fit=True, explain=False)

    def __init__(
        self, half_life_days: float = 14.0, category_boost: float = 2.0, channel_weight: float = 0.5
    ) -> None:
        if half_life_days <= 0:
            raise ValueError("half_life_days must be positive")
        if category_boost < 0:
            raise ValueError("category_boost must not be negative")
        if not 0.0 <= channel_weight <= 1.0:
            raise ValueError("channel_weight must be 0 to 1")
        self.half_life_seconds = half_life_days * 86400.0
        self.category_boost = category_boost
        self.channel_weight = channel_weight
        self._model: _Model | None = None
        self._lock = threading.Lock()

    def _decay(self, times: npt.NDArray[np.float64], now: float) -> npt.NDArray[np.float64]:
        age = np.maximum(now - times, 0.0)
        return np.power(0.5, age / self.half_life_seconds)

    def _build(
        self,
        item_ids: Sequence[str],
        raw: npt.NDArray[np.float64],
        categories: Sequence[str],
        seen: _Seen,
        now: float,
        channel_raw: dict[str, npt.NDArray[np.float64]] | None = None,
        channel_events: dict[str, int] | None = None,
    ) -> _Model:
        top = raw.max() if raw.size else 0.0
        scores = raw / top if top > 0 else raw.copy()
        channel_raw = channel_raw or {}
        channel_events = channel_events or {}
        channel_scores = {}
        for channel, values in channel_raw.items():
            peak = values.max() if values.size else 0.0
            if channel_events.get(channel, 0) >= MIN_CHANNEL_EVENTS and peak > 0:
                channel_scores[channel] = values / peak
        names: dict[str, int] = {}
        codes = np.array([names.setdefault(c, len(names)) for c in categories], dtype=np.int64)
        rankings = {"": _Ranking.of(scores, codes, len(names))}
        if self.channel_weight > 0:
            w = self.channel_weight
            for channel, own in channel_scores.items():
                rankings[channel] = _Ranking.of((1.0 - w) * scores + w * own, codes, len(names))
        return _Model(
            tuple(item_ids),
            {i: n for n, i in enumerate(item_ids)},
            scores,
            raw,
            tuple(categories),
            codes,
            names,
            seen,
            now,
            channel_raw,
            channel_scores,
            channel_events,
            rankings,
        )

    def fit(self, data: TrainingData) -> None:
        item_ids = list(dict.fromkeys([*data.item_ids, *(i.item_id for i in data.interactions)]))
        index = {item: n for n, item in enumerate(item_ids)}
        now = data.now or max((i.time for i in data.interactions), default=0.0)
        raw = np.zeros(len(item_ids))
        rows = np.zeros(0, dtype=np.int64)  # each interaction's item index
        if data.interactions:
            rows = np.fromiter((index[i.item_id] for i in data.interactions), dtype=np.int64)
            weights = np.fromiter((i.weight for i in data.interactions), dtype=np.float64)
            times = np.fromiter((i.time for i in data.interactions), dtype=np.float64)
            added = np.maximum(weights, 0.0) * self._decay(times, now)
            np.add.at(raw, rows, added)
        channel_raw: dict[str, npt.NDArray[np.float64]] = {}
        channel_events: dict[str, int] = {}
        for n, i in enumerate(data.interactions):
            if i.channel:
                values = channel_raw.get(i.channel)
                if values is None:
                    values = channel_raw[i.channel] = np.zeros(len(item_ids))
                values[rows[n]] += added[n]
                channel_events[i.channel] = channel_events.get(i.channel, 0) + 1
        categories = [data.item_features.get(i, {}).get("category", "") for i in item_ids]
        customers: dict[str, int] = {}
        owner = np.fromiter(
            (customers.setdefault(i.customer_id, len(customers)) for i in data.interactions),
            dtype=np.int64,
            count=len(data.interactions),
        )
        seen = _Seen.of(owner, rows, list(customers), len(item_ids))
        self._model = self._build(item_ids, raw, categories, seen, now, channel_raw, channel_events)

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        with self._lock:
            model = self._require()
            item_ids = list(model.item_ids)
            categories = list(model.categories)
            index = dict(model.index)
            for i in interactions:
                if i.item_id not in index:
                    index[i.item_id] = len(item_ids)
                    item_ids.append(i.item_id)
                    categories.append("")
            raw = np.zeros(len(item_ids))
            raw[: model.raw.size] = model.raw
            now = max([model.now, *(i.time for i in interactions)])
            raw *= self._decay(np.array([model.now]), now)[0]  # age the old counts to `now`
            touched: dict[str, set[int]] = {}  # customer → items, for `_Seen.adding`
            aged = self._decay(np.array([model.now]), now)[0]
            channel_raw = {}
            for channel, old in model.channel_raw.items():
                grown = np.zeros(len(item_ids))
                grown[: old.size] = old * aged
                channel_raw[channel] = grown
            channel_events = dict(model.channel_events)
            for i in interactions:
                added = max(i.weight, 0.0) * self._decay(np.array([i.time]), now)[0]
                raw[index[i.item_id]] += added
                touched.setdefault(i.customer_id, set()).add(index[i.item_id])
                if i.channel:
                    values = channel_raw.setdefault(i.channel, np.zeros(len(item_ids)))
                    values[index[i.item_id]] += added
                    channel_events[i.channel] = channel_events.get(i.channel, 0) + 1
            self._model = self._build(
                item_ids,
                raw,
                categories,
                model.seen.adding(touched),
                now,
                channel_raw,
                channel_events,
            )

    def _require(self) -> _Model:
        if self._model is None:
            raise NotFitted(NAME)
        return self._model

    @staticmethod
    def _head(model: _Model, order: npt.NDArray[np.int64], k: int, exclude: set[str]) -> list[int]:
        """The first ``k`` items of a precomputed ``order`` not in ``exclude``: only the first
        ``k + len(exclude)`` entries can qualify, whatever the catalog's size."""
        head = order[: k + len(exclude)].tolist()
        return [n for n in head if model.item_ids[n] not in exclude][:k]

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        exclude = set(query.exclude_item_ids)
        if query.filter_already_seen:
            exclude.update(i.item_id for i in query.recent_interactions)
            exclude.update(model.item_ids[n] for n in model.seen.get(query.customer_id))
        affinity: dict[str, float] = {}
        for i in query.recent_interactions:
            n = model.index.get(i.item_id)
            if n is not None and model.categories[n] and i.weight > 0:
                affinity[model.categories[n]] = affinity.get(model.categories[n], 0.0) + i.weight
        channel = query.context.get("channel", "")
        ranking = model.rankings.get(channel) if channel else None
        if ranking is None:  # no channel, or one without enough events of its own
            ranking = model.rankings[""]
        # The best k by the tilted score are among the best k of the whole catalog and the best
        # k of each tilted category (a category's tilt is one factor for all its items), so the
        # heads of the precomputed orders hold the answer; the full-catalog sort gives the same.
        picked = self._head(model, ranking.order, query.k, exclude)
        boost = np.ones(len(model.category_names) + 1)
        if affinity and self.category_boost > 0:
            total = sum(affinity.values())
            for category, weight in affinity.items():
                code = model.category_names[category]
                boost[code] = 1.0 + self.category_boost * weight / total
                picked += self._head(model, ranking.by_category[code], query.k, exclude)
        # Score and order the picked heads in numpy: one gather per array, not one scalar
        # read per item (issue 12). Ties keep catalog order, as the full sort does.
        rows = np.fromiter(dict.fromkeys(picked), dtype=np.int64)  # distinct, cheaper than unique
        tilted = ranking.scores[rows] * boost[model.category_codes[rows]]
        top = np.lexsort((rows, -tilted))[: query.k]
        result = []
        for n, score in zip(rows[top].tolist(), tilted[top].tolist(), strict=True):
            category = model.categories[n]
            if category in affinity:
                reason = f"Popular in {category}, which you've been browsing"
            elif score > 0:
                reason = "Popular with shoppers right now"
            else:
                reason = "New to discover"
            # Positional: a keyword argument costs a frozen dataclass a third more to build.
            result.append(Scored(model.item_ids[n], score, reason, "", "popular"))
        return result

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        model = self._require()
        n = model.index.get(query.item_id)
        if n is None or not model.categories[n]:
            return []
        category = model.categories[n]
        same = model.rankings[""].by_category[model.category_names[category]]
        exclude = set(query.exclude_item_ids) | {query.item_id}
        return [
            Scored(model.item_ids[m], float(model.scores[m]), f"Popular in {category}")
            for m in self._head(model, same, query.k, exclude)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", NAME)

    def save(self, directory: Path) -> None:
        model = self._require()
        seen = model.seen.merged()
        payload = {
            "format": 3,
            "half_life_seconds": self.half_life_seconds,
            "category_boost": self.category_boost,
            "channel_weight": self.channel_weight,
            "channel_raw": {c: v.tolist() for c, v in model.channel_raw.items()},
            "channel_events": model.channel_events,
            "item_ids": model.item_ids,
            "raw": model.raw.tolist(),
            "categories": model.categories,
            # Format 3: who saw what as arrays beside this file (`_Seen`), one row per id here.
            "seen_customers": list(seen.rows),
            "now": model.now,
        }
        save_arrays(directory, {SEEN_OFFSETS: seen.offsets, SEEN_ITEMS: seen.items})
        (directory / "popularity.json").write_text(json.dumps(payload))

    def load(self, directory: Path) -> None:
        payload = json.loads((directory / "popularity.json").read_text())
        version = payload.get("format")
        if version not in (1, 2, 3):  # 1: before channels; 2: who saw what in the JSON
            raise ValueError(f"unknown popularity model format {version!r}")
        if version == 3:
            arrays = load_arrays(directory, (SEEN_OFFSETS, SEEN_ITEMS))
            seen = _Seen.loaded(
                payload["seen_customers"],
                arrays[SEEN_OFFSETS],
                arrays[SEEN_ITEMS],
            )
        else:
            index = {item: n for n, item in enumerate(payload["item_ids"])}
            seen = _Seen.from_sets(
                {c: [index[i] for i in items] for c, items in payload["seen"].items()}
            )
        self.half_life_seconds = float(payload["half_life_seconds"])
        self.category_boost = float(payload["category_boost"])
        self.channel_weight = float(payload.get("channel_weight", self.channel_weight))
        self._model = self._build(
            payload["item_ids"],
            np.array(payload["raw"], dtype=np.float64),
            payload["categories"],
            seen,
            float(payload["now"]),
            {
                c: np.array(v, dtype=np.float64)
                for c, v in (payload.get("channel_raw") or {}).items()
            },
            {c: int(n) for c, n in (payload.get("channel_events") or {}).items()},
        )


def create(settings: Mapping[str, str]) -> PopularityRecommender:
    """Entry point ``popularity``: builds the recommender from its settings."""
    known = {"half_life_days", "category_boost", "channel_weight"}
    unknown = set(settings) - known
    if unknown:
        raise ValueError(f"popularity: unknown settings {sorted(unknown)}; known: {sorted(known)}")
    return PopularityRecommender(
        half_life_days=float(settings.get("half_life_days", 14.0)),
        category_boost=float(settings.get("category_boost", 2.0)),
        channel_weight=float(settings.get("channel_weight", 0.5)),
    )
