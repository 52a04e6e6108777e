"""Buy again: the customer's own items, ranked by where each stands in its repurchase cycle.

For every (customer, item) the customer bought, the score is

    repeat_rate(item) × (1 + ln count) × timing(elapsed / cycle)

- ``repeat_rate``: the share of the item's buyers who bought it on two or more occasions,
  smoothed toward the shop's share (``smoothing`` pseudo-buyers), so a staple outranks a one-off.
- ``count``: how many times this customer bought it.
- ``cycle``: the customer's own median interval between purchases of the item when they bought
  it at least twice; otherwise the item's median interval over all its repeat buyers, scaled by
  the customer's own pace (their median gap between shopping days against the shop's median
  customer, clipped to 1/4..4); otherwise the shop's median interval; otherwise
  ``default_cycle_days``.
- ``elapsed``: time from the customer's last purchase of the item to the query's ``now`` (the
  fit's ``now`` when the query has none).
- ``timing(t)``: rises to 1 as the cycle comes round (``t·e^(1-t)``), then decays slowly for
  overdue items (``e^(-(t-1)/overdue_decay)``), never below 0.05 so history still orders them.

Purchases after the fit that arrive in ``recent_interactions`` count at once. When nothing of the
customer's own is left (a new customer, or ``filter_already_seen``), it answers with the shop's
staples (repeat rate × ln buyers) unless ``fallback`` is ``false``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kosmos.plugin import (
    Capabilities,
    Contribution,
    ExplainQuery,
    Interaction,
    InteractionType,
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
    catalog,
    excluded,
    number,
    positive,
    settings_of,
    top,
)

NAME = "buy_again"
KIND = "buy_again"
FLOOR = 0.05

DEFAULTS = {
    "types": "purchase",
    "smoothing": "5",
    "default_cycle_days": "30",
    "overdue_decay": "2",
    "fallback": "true",
}


@dataclass(frozen=True, slots=True)
class _Model:
    item_ids: tuple[str, ...]
    index: dict[str, int]
    history: History  # purchases: counts and last times
    own_cycle: Floats  # per nonzero of history (same pattern), seconds; 0 when bought once
    item_cycle: Floats  # per item, seconds; 0 when no repeat buyer
    repeat_rate: Floats  # per item, smoothed
    staples: Floats  # per item: repeat_rate × ln(1 + buyers), for the fallback
    pace: Floats  # per customer row, clipped multiplier of item cycles
    shop_cycle: float
    now: float


def _median_gaps(times: Sequence[float]) -> list[float]:
    distinct = sorted(set(times))
    return [b - a for a, b in zip(distinct, distinct[1:], strict=False)]


class BuyAgainRecommender:
    """Ranks the items a customer bought by their repurchase cycle (see the module doc)."""

    capabilities = Capabilities(cold_start=False, partial_fit=False, explain=False)

    def __init__(self, settings: Mapping[str, str]) -> None:
        self._configure(settings)
        self._model: _Model | None = None

    def _configure(self, settings: Mapping[str, str]) -> None:
        values = settings_of(NAME, settings, DEFAULTS)
        names = [t.strip().upper() for t in values["types"].split(",") if t.strip()]
        try:
            self.types = frozenset(InteractionType[n] for n in names)
        except KeyError as error:
            raise ValueError(f"{NAME}: types: unknown interaction type {error}") from None
        if not self.types:
            raise ValueError(f"{NAME}: types must name at least one interaction type")
        self.smoothing = number(NAME, values, "smoothing")
        self.default_cycle = number(NAME, values, "default_cycle_days", 1e-6) * DAY
        self.overdue_decay = number(NAME, values, "overdue_decay", 1e-6)
        if values["fallback"].lower() not in ("true", "false"):
            raise ValueError(f"{NAME}: fallback must be true or false")
        self.fallback = values["fallback"].lower() == "true"
        self.settings = dict(values)

    def _purchases(self, interactions: Sequence[Interaction]) -> list[Interaction]:
        chosen = [i for i in positive(interactions) if i.type in self.types]
        # A shop without purchases (ratings only) still has a history to repeat from.
        return chosen or positive(interactions)

    def fit(self, data: TrainingData) -> None:
        item_ids = catalog(data)
        index = {item: n for n, item in enumerate(item_ids)}
        bought = self._purchases(data.interactions)
        history = History.build(bought, index, len(item_ids))
        times: dict[tuple[int, int], list[float]] = {}
        days: dict[int, set[float]] = {}
        for i in bought:
            c = history.index[i.customer_id]
            times.setdefault((c, index[i.item_id]), []).append(i.time)
            days.setdefault(c, set()).add(math.floor(i.time / DAY))
        n_items = len(item_ids)
        buyers = np.zeros(n_items)
        repeaters = np.zeros(n_items)
        gaps: dict[int, list[float]] = {}
        own: dict[tuple[int, int], float] = {}
        for (c, n), when in times.items():
            buyers[n] += 1
            between = _median_gaps(when)
            if between:
                repeaters[n] += 1
                gaps.setdefault(n, []).extend(between)
                own[(c, n)] = float(np.median(between))
        pooled = [g for values in gaps.values() for g in values]
        shop_cycle = float(np.median(pooled)) if pooled else self.default_cycle
        item_cycle = np.zeros(n_items)
        for n, values in gaps.items():
            item_cycle[n] = float(np.median(values))
        prior = repeaters.sum() / buyers.sum() if buyers.sum() > 0 else 0.0
        repeat_rate = (repeaters + self.smoothing * prior) / (buyers + self.smoothing)
        repeat_rate[buyers == 0] = prior
        staples = (repeat_rate + 1e-3) * np.log1p(buyers)  # ties by buyers
        # The customer's pace: median gap between shopping days against the shop's median.
        paces = np.ones(len(history.customer_ids))
        per_customer = {
            c: float(np.median(np.diff(sorted(d)))) for c, d in days.items() if len(d) > 1
        }
        if per_customer:
            typical = float(np.median(list(per_customer.values())))
            for c, gap in per_customer.items():
                paces[c] = float(np.clip(gap / typical, 0.25, 4.0)) if typical > 0 else 1.0
        own_cycle = np.zeros(history.counts.nnz)
        coo_rows = np.repeat(np.arange(history.counts.shape[0]), np.diff(history.counts.indptr))
        for n, (c, item) in enumerate(
            zip(coo_rows.tolist(), history.counts.indices.tolist(), strict=True)
        ):
            own_cycle[n] = own.get((c, item), 0.0)
        now = data.now or max((i.time for i in data.interactions), default=0.0)
        self._model = _Model(
            tuple(item_ids),
            index,
            history,
            own_cycle,
            item_cycle,
            repeat_rate,
            staples,
            paces,
            shop_cycle,
            now,
        )

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        # Purchases after the fit count through `recent_interactions` at request time.
        raise Unsupported("partial_fit", NAME)

    def _require(self) -> _Model:
        if self._model is None:
            raise NotFitted(NAME)
        return self._model

    def timing(self, t: Floats) -> Floats:
        """How due an item is at ``t`` = elapsed / cycle: 1 at the cycle, ≥ ``FLOOR``."""
        t = np.maximum(t, 0.0)
        rising = t * np.exp(1.0 - t)
        overdue = np.exp(-(t - 1.0) / self.overdue_decay)
        return FLOOR + (1.0 - FLOOR) * np.where(t <= 1.0, rising, overdue)

    def own_scores(self, model: _Model, query: RecommendQuery) -> tuple[np.ndarray, Floats]:
        """The customer's items (rows) and their buy-again scores, before exclusions."""
        now = query.now or model.now
        rows, counts, last = model.history.items(query.customer_id)
        c = model.history.index.get(query.customer_id)
        if c is not None:
            lo, hi = model.history.counts.indptr[c], model.history.counts.indptr[c + 1]
            own = model.own_cycle[lo:hi]
            pace = model.pace[c]
        else:
            own, pace = np.zeros(0), 1.0
        merged: dict[int, list[float]] = {
            int(r): [float(n), float(t), float(o)]
            for r, n, t, o in zip(rows, counts, last, own, strict=True)
        }
        for i in self._purchases(query.recent_interactions):
            n = model.index.get(i.item_id)
            if n is None or i.time <= model.now:  # fit-time purchases are already counted
                continue
            entry = merged.setdefault(n, [0.0, i.time, 0.0])
            entry[0] += 1
            entry[1] = max(entry[1], i.time)
        if not merged:
            return np.zeros(0, np.int64), np.zeros(0)
        items = np.fromiter(merged, np.int64, len(merged))
        values = np.array(list(merged.values()))
        count, when, own_cycle = values[:, 0], values[:, 1], values[:, 2]
        item_cycle = np.where(
            model.item_cycle[items] > 0, model.item_cycle[items] * pace, model.shop_cycle
        )
        cycle = np.maximum(np.where(own_cycle > 0, own_cycle, item_cycle), 60.0)
        elapsed = now - when
        score = model.repeat_rate[items] * (1.0 + np.log(count)) * self.timing(elapsed / cycle)
        return items, score

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        exclude = excluded(query, model.history, model.index)
        items, score = self.own_scores(model, query)
        keep = [n for n in range(items.size) if int(items[n]) not in exclude]
        if keep:
            order = sorted(keep, key=lambda n: (-score[n], int(items[n])))[: query.k]
            return [
                Scored(
                    model.item_ids[int(items[n])],
                    float(score[n]),
                    "Time to stock up again?",
                    kind=KIND,
                )
                for n in order
            ]
        if not self.fallback:
            return []
        exclude.update(int(n) for n in items)
        return [
            Scored(model.item_ids[n], float(model.staples[n]), "Shoppers buy this again and again")
            for n in top(model.staples, query.k, exclude)
        ]

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        """Items the buyers of ``query.item_id`` bought most often."""
        model = self._require()
        n = model.index.get(query.item_id)
        if n is None:
            return []
        counts = model.history.counts
        buyers = counts[:, n].nonzero()[0]
        if buyers.size == 0:
            return []
        together = np.asarray(counts[buyers].sum(axis=0)).ravel()
        exclude = {model.index[i] for i in query.exclude_item_ids if i in model.index} | {n}
        return [
            Scored(model.item_ids[m], float(together[m]), kind=KIND)
            for m in top(together, query.k, exclude, keep=together > 0)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", NAME)

    def save(self, directory: Path) -> None:
        model = self._require()
        model.history.save(directory, "purchases")
        save_arrays(
            directory / "buy_again.arrays",
            {
                "own_cycle": model.own_cycle,
                "item_cycle": model.item_cycle,
                "repeat_rate": model.repeat_rate,
                "staples": model.staples,
                "pace": model.pace,
            },
        )
        (directory / "buy_again.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "settings": self.settings,
                    "item_ids": model.item_ids,
                    "shop_cycle": model.shop_cycle,
                    "now": model.now,
                }
            )
        )

    def load(self, directory: Path) -> None:
        meta = json.loads((directory / "buy_again.json").read_text())
        if meta.get("format") != 1:
            raise ValueError(f"unknown {NAME} model format {meta.get('format')!r}")
        self._configure(meta["settings"])
        item_ids = tuple(meta["item_ids"])
        arrays = load_arrays_or_npz(directory / "buy_again.arrays", directory / "buy_again.npz")
        self._model = _Model(
            item_ids,
            {item: n for n, item in enumerate(item_ids)},
            History.load(directory, "purchases"),
            arrays["own_cycle"],
            arrays["item_cycle"],
            arrays["repeat_rate"],
            arrays["staples"],
            arrays["pace"],
            float(meta["shop_cycle"]),
            float(meta["now"]),
        )


def create_buy_again(settings: Mapping[str, str]) -> BuyAgainRecommender:
    """Entry point ``buy_again``."""
    return BuyAgainRecommender(settings)
