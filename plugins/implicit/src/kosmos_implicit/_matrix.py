"""The customer × item matrix every model here fits on, with its id maps.

Rows are customers with at least one positive interaction, columns the catalog (every
``TrainingData.item_ids`` plus any item seen in an interaction). A cell sums the interactions'
``weight``; weights <= 0 (dismissals) are left out, since implicit reads a stored value as
confidence that the customer likes the item.

Each row remembers the newest interaction time it contains (``folded_until``). A request's
``recent_interactions`` newer than that are not in the model yet: those are the ones a request
folds in, and the ones that a ``partial_fit`` moves into the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from kosmos.plugin import Interaction, TrainingData

Int32s = npt.NDArray[np.int32]
Float32s = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Matrix:
    """Immutable: updates build a new one, so readers never see a half-made change."""

    customer_ids: tuple[str, ...]
    customers: dict[str, int]
    item_ids: tuple[str, ...]
    items: dict[str, int]
    user_items: sp.csr_matrix  # float32, canonical (sorted indices, no duplicates)
    folded_until: npt.NDArray[np.float64]  # per row: the newest interaction time it contains

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @classmethod
    def build(cls, data: TrainingData) -> Matrix:
        item_ids = list(dict.fromkeys([*data.item_ids, *(i.item_id for i in data.interactions)]))
        items = {item: n for n, item in enumerate(item_ids)}
        customers: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        weights: list[float] = []
        for i in data.interactions:
            if i.weight > 0:
                rows.append(customers.setdefault(i.customer_id, len(customers)))
                cols.append(items[i.item_id])
                weights.append(i.weight)
        # Every interaction up to the newest one is in the fitted rows, dismissals included.
        until = max((i.time for i in data.interactions), default=-np.inf)
        user_items = _csr(rows, cols, weights, (len(customers), len(item_ids)))
        return cls(
            tuple(customers),
            customers,
            tuple(item_ids),
            items,
            user_items,
            np.full(len(customers), until, dtype=np.float64),
        )

    def row(self, r: int) -> tuple[Int32s, Float32s]:
        """Row ``r``'s item columns and weights (views into the matrix, not copies)."""
        start, end = self.user_items.indptr[r], self.user_items.indptr[r + 1]
        return self.user_items.indices[start:end], self.user_items.data[start:end]

    def scan(
        self, r: int | None, recent: Sequence[Interaction], touched: list[int] | None = None
    ) -> dict[int, float]:
        """The positive interactions in ``recent`` that row ``r`` does not contain yet.

        Returns column → summed weight. ``touched``, when given, receives the columns that
        ``filter_already_seen`` must add to the row's own: every item of a new interaction and
        of an old one with no weight (a dismissal is never in the row); an old positive one is
        in the row already. Items unseen at fit time have no column and are skipped.
        """
        until = float(self.folded_until[r]) if r is not None else -np.inf
        items = self.items
        new: dict[int, float] = {}
        for i in recent:
            if i.time <= until and (touched is None or i.weight > 0):
                continue  # in the row already: this is the common case, so it goes first
            col = items.get(i.item_id)
            if col is None:
                continue
            if touched is not None:
                touched.append(col)
            if i.time > until and i.weight > 0:
                new[col] = new.get(col, 0.0) + i.weight
        return new

    def merged(self, r: int | None, new: Mapping[int, float]) -> tuple[Int32s, Float32s]:
        """Row ``r`` (none for an unknown customer) plus ``new``: columns (unique) and weights.

        Plain numpy: this runs on the request path whenever a customer has new interactions.
        """
        new_cols = np.fromiter(new.keys(), dtype=np.int32, count=len(new))
        new_weights = np.fromiter(new.values(), dtype=np.float32, count=len(new))
        if r is None:
            return new_cols, new_weights
        cols, weights = self.row(r)
        if cols.size == 0:
            return new_cols, new_weights
        at = np.minimum(np.searchsorted(cols, new_cols), cols.size - 1)
        known = cols[at] == new_cols  # row columns are sorted and unique
        weights = weights.copy()
        weights[at[known]] += new_weights[known]
        fresh = ~known
        return (
            np.concatenate([cols, new_cols[fresh]]),
            np.concatenate([weights, new_weights[fresh]]),
        )

    def merged_csr(self, r: int | None, new: Mapping[int, float]) -> sp.csr_matrix:
        """`merged` as a one-row CSR matrix, for implicit."""
        cols, weights = self.merged(r, new)
        indptr = np.array([0, cols.size], dtype=np.int32)
        return sp.csr_matrix((weights, cols, indptr), shape=(1, self.n_items))

    def updated(self, interactions: Iterable[Interaction]) -> tuple[Matrix, Int32s]:
        """This matrix with ``interactions`` added, and the rows that changed (sorted).

        New customers get new rows at the end; items unseen at fit time are ignored, since
        the models have no column for them until the next full fit.
        """
        customers = dict(self.customers)
        customer_ids = list(self.customer_ids)
        rows: list[int] = []
        cols: list[int] = []
        weights: list[float] = []
        times: list[float] = []
        for i in interactions:
            col = self.items.get(i.item_id)
            if i.weight <= 0 or col is None:
                continue
            r = customers.get(i.customer_id)
            if r is None:
                r = customers[i.customer_id] = len(customer_ids)
                customer_ids.append(i.customer_id)
            rows.append(r)
            cols.append(col)
            weights.append(i.weight)
            times.append(i.time)
        n_rows = len(customer_ids)
        old = self.user_items
        # Pad the old matrix with empty rows for the new customers (indptr repeats its end).
        indptr = np.concatenate(
            [old.indptr, np.full(n_rows - old.shape[0], old.indptr[-1], dtype=old.indptr.dtype)]
        )
        padded = sp.csr_matrix((old.data, old.indices, indptr), shape=(n_rows, self.n_items))
        delta = _csr(rows, cols, weights, (n_rows, self.n_items))
        user_items = _canonical(padded + delta)
        folded_until = np.concatenate(
            [self.folded_until, np.full(n_rows - old.shape[0], -np.inf, dtype=np.float64)]
        )
        np.maximum.at(folded_until, np.asarray(rows, dtype=np.intp), np.asarray(times))
        changed = np.unique(np.asarray(rows, dtype=np.int32))
        matrix = Matrix(
            tuple(customer_ids), customers, self.item_ids, self.items, user_items, folded_until
        )
        return matrix, changed

    # -- persistence -----------------------------------------------------------------------

    def ids(self) -> dict[str, Any]:
        """The id maps, for JSON."""
        return {"customer_ids": list(self.customer_ids), "item_ids": list(self.item_ids)}

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The numeric state, for ``np.savez``."""
        m = self.user_items
        return {
            "user_items_data": m.data,
            "user_items_indices": m.indices,
            "user_items_indptr": m.indptr,
            "folded_until": self.folded_until,
        }

    @classmethod
    def restore(cls, ids: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> Matrix:
        customer_ids = tuple(str(c) for c in ids["customer_ids"])
        item_ids = tuple(str(i) for i in ids["item_ids"])
        user_items = sp.csr_matrix(
            (
                arrays["user_items_data"].astype(np.float32, copy=False),
                arrays["user_items_indices"].astype(np.int32, copy=False),
                arrays["user_items_indptr"].astype(np.int32, copy=False),
            ),
            shape=(len(customer_ids), len(item_ids)),
        )
        folded_until = arrays["folded_until"].astype(np.float64, copy=False)
        if folded_until.shape != (len(customer_ids),):
            raise ValueError("saved model is inconsistent: folded_until does not match customers")
        return cls(
            customer_ids,
            {c: n for n, c in enumerate(customer_ids)},
            item_ids,
            {i: n for n, i in enumerate(item_ids)},
            user_items,
            folded_until,
        )


def _csr(
    rows: Sequence[int] | Int32s,
    cols: Sequence[int] | Int32s,
    weights: Sequence[float] | Float32s,
    shape: tuple[int, int],
) -> sp.csr_matrix:
    """A canonical float32 CSR matrix; duplicate cells are summed."""
    coo = sp.coo_matrix(
        (
            np.asarray(weights, dtype=np.float32),
            (np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32)),
        ),
        shape=shape,
    )
    return _canonical(coo.tocsr())


def _canonical(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.sum_duplicates()  # also sorts the indices
    m.eliminate_zeros()
    if m.indices.dtype != np.int32 or m.indptr.dtype != np.int32:
        m.indices = m.indices.astype(np.int32)
        m.indptr = m.indptr.astype(np.int32)
    return m
