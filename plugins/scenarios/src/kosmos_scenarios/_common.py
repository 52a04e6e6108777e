"""What every scenario recommender shares: id maps, per-customer history, settings, top-k."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData
from kosmos.plugin.arrays import load_arrays_or_npz, save_arrays

DAY = 86400.0

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def settings_of(
    plugin: str, settings: Mapping[str, str], defaults: Mapping[str, str]
) -> dict[str, str]:
    """The plugin's settings over its defaults; an unknown name raises ValueError."""
    unknown = set(settings) - set(defaults)
    if unknown:
        raise ValueError(f"{plugin}: unknown settings {sorted(unknown)}; known: {sorted(defaults)}")
    return {**defaults, **settings}


def number(plugin: str, values: Mapping[str, str], name: str, minimum: float = 0.0) -> float:
    """A numeric setting, at least ``minimum``; raises ValueError naming it."""
    try:
        value = float(values[name])
    except ValueError:
        raise ValueError(f"{plugin}: {name} must be a number, not {values[name]!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{plugin}: {name} must be at least {minimum}, not {values[name]!r}")
    return value


def catalog(data: TrainingData) -> list[str]:
    """The catalog, then any item only the interactions name, in first-seen order."""
    return list(dict.fromkeys([*data.item_ids, *(i.item_id for i in data.interactions)]))


def categories(
    item_ids: Sequence[str], features: Mapping[str, Mapping[str, str]], feature: str
) -> list[str]:
    """Each item's category ("" when unknown)."""
    return [features.get(i, {}).get(feature, "") for i in item_ids]


def item_time(features: Mapping[str, str], names: Sequence[str]) -> float | None:
    """An item's own time from its features: seconds since the epoch, or an ISO 8601 date."""
    for name in names:
        text = features.get(name, "").strip()
        if not text:
            continue
        try:
            return float(text)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # a date without a zone is read as UTC
        return when.timestamp()
    return None


def positive(interactions: Iterable[Interaction]) -> list[Interaction]:
    """Interactions that say the customer wanted the item (dismissals weigh 0)."""
    return [i for i in interactions if i.weight > 0 and i.type is not InteractionType.DISMISS]


@dataclass(frozen=True, slots=True)
class History:
    """Per customer: the items they interacted with, how often and when last (CSR rows).

    Row ``n`` of ``counts`` and ``last`` holds customer ``customer_ids[n]``'s items; both share
    one sparsity pattern.
    """

    customer_ids: tuple[str, ...]
    index: dict[str, int]
    counts: sparse.csr_matrix
    last: sparse.csr_matrix

    @classmethod
    def build(
        cls, interactions: Sequence[Interaction], item_index: Mapping[str, int], n_items: int
    ) -> History:
        customer_ids = tuple(dict.fromkeys(i.customer_id for i in interactions))
        index = {c: n for n, c in enumerate(customer_ids)}
        rows = np.fromiter(
            (index[i.customer_id] for i in interactions), np.int64, len(interactions)
        )
        cols = np.fromiter(
            (item_index[i.item_id] for i in interactions), np.int64, len(interactions)
        )
        times = np.fromiter((i.time for i in interactions), np.float64, len(interactions))
        shape = (len(customer_ids), n_items)
        counts = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=shape)
        counts.sum_duplicates()
        # The newest time per pair: sort by pair then time, keep each pair's last row.
        key = rows * n_items + cols
        order = np.lexsort((times, key))
        last_of = np.flatnonzero(np.r_[key[order][1:] != key[order][:-1], True])
        pick = order[last_of]
        last = sparse.csr_matrix((times[pick], (rows[pick], cols[pick])), shape=shape)
        last.sort_indices()
        counts.sort_indices()
        return cls(customer_ids, index, counts, last)

    def items(self, customer_id: str) -> tuple[Ints, Floats, Floats]:
        """The customer's item rows, interaction counts and last times (empty when unknown)."""
        n = self.index.get(customer_id)
        if n is None:
            empty = np.zeros(0)
            return np.zeros(0, np.int64), empty, empty
        lo, hi = self.counts.indptr[n], self.counts.indptr[n + 1]
        return (
            self.counts.indices[lo:hi].astype(np.int64),
            self.counts.data[lo:hi],
            self.last.data[lo:hi],
        )

    def save(self, directory: Path, name: str) -> None:
        """Writes the customers (JSON) and the rows as ``{name}.arrays/*.npy``, which `load`
        maps read-only (`kosmos.plugin.arrays`: the serving processes share one copy)."""
        (directory / f"{name}_customers.json").write_text(json.dumps(list(self.customer_ids)))
        save_arrays(
            directory / f"{name}.arrays",
            {
                "indptr": self.counts.indptr,
                "indices": self.counts.indices,
                "counts": self.counts.data,
                "last": self.last.data,
                "shape": np.array(self.counts.shape),
            },
        )

    @classmethod
    def load(cls, directory: Path, name: str) -> History:
        """What `save` wrote (or, from an earlier version, ``{name}.npz``)."""
        customer_ids = tuple(json.loads((directory / f"{name}_customers.json").read_text()))
        z = load_arrays_or_npz(directory / f"{name}.arrays", directory / f"{name}.npz")
        shape = tuple(int(x) for x in z["shape"])
        counts = sparse.csr_matrix((z["counts"], z["indices"], z["indptr"]), shape=shape)
        last = sparse.csr_matrix((z["last"], z["indices"], z["indptr"]), shape=shape)
        return cls(customer_ids, {c: n for n, c in enumerate(customer_ids)}, counts, last)


def excluded(query: RecommendQuery, history: History, item_index: Mapping[str, int]) -> set[int]:
    """Item rows the query rules out: its exclusions and, with ``filter_already_seen``, what the
    customer interacted with at fit time or in ``recent_interactions``."""
    out = {item_index[i] for i in query.exclude_item_ids if i in item_index}
    if query.filter_already_seen:
        out.update(int(n) for n in history.items(query.customer_id)[0])
        out.update(
            item_index[i.item_id] for i in query.recent_interactions if i.item_id in item_index
        )
    return out


def top(
    scores: Floats, k: int, exclude: set[int], keep: npt.NDArray[np.bool_] | None = None
) -> list[int]:
    """The best ``k`` rows by score, ties by row, leaving out ``exclude`` and rows not ``keep``."""
    candidates = np.arange(scores.size) if keep is None else np.flatnonzero(keep)
    want = min(k + len(exclude), candidates.size)
    if want <= 0 or k <= 0:
        return []
    if want < candidates.size:
        part = np.argpartition(-scores[candidates], want - 1)
        # Every row tied with the last one kept stays in, so that ties are broken by row below
        # and the top k is the prefix of the top 2k (stable pages, issue 13).
        bound = scores[candidates[part[want - 1]]]
        candidates = candidates[scores[candidates] >= bound]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [int(n) for n in order if int(n) not in exclude][:k]


def category_share(
    rows: Ints,
    weights: Floats,
    codes: Ints,
    n_categories: int,
) -> Floats:
    """The share of a customer's history (item rows, weights) per category code; code 0 is
    "unknown" and never counts."""
    share = np.zeros(n_categories)
    if rows.size:
        np.add.at(share, codes[rows], weights)
    share[0] = 0.0
    total = share.sum()
    return share / total if total > 0 else share


def category_codes(names: Sequence[str]) -> tuple[Ints, dict[str, int]]:
    """Category names → codes, "" (unknown) as 0."""
    table: dict[str, int] = {"": 0}
    codes = np.array([table.setdefault(c, len(table)) for c in names], dtype=np.int64)
    return codes, table


def recent_rows(
    query: RecommendQuery, item_index: Mapping[str, int], after: float = -math.inf
) -> tuple[Ints, Floats]:
    """Rows and times of the query's positive recent interactions newer than ``after``."""
    rows = [
        (item_index[i.item_id], i.time)
        for i in positive(query.recent_interactions)
        if i.item_id in item_index and i.time > after
    ]
    return np.array([r for r, _ in rows], np.int64), np.array([t for _, t in rows], np.float64)
