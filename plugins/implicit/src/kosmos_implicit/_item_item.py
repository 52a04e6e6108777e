"""Item-item nearest neighbours over implicit: cosine or BM25 similarity, K neighbours per item.

The similarity matrix is fitted once; a customer's scores are computed at request time from
their row (fitted interactions plus any newer ``recent_interactions``), so new interactions
count at once and ``partial_fit`` only has to update rows. An item's score is the sum, over
the customer's items, of interaction weight × similarity, which also makes ``explain`` exact.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from implicit.nearest_neighbours import (
    ItemItemRecommender as _ImplicitItemItem,
)
from implicit.nearest_neighbours import NearestNeighboursScorer, bm25_weight, normalize

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
)
from kosmos.plugin.arrays import copy_on_write
from kosmos_implicit._common import (
    REASON_NEIGHBOURS,
    REASON_RECENT,
    REASON_SIMILAR,
    load_model,
    save_model,
    single_threaded_blas,
)
from kosmos_implicit._matrix import Matrix


@dataclass(frozen=True, slots=True)
class _State:
    """Everything one request reads; replaced whole, never changed in place."""

    matrix: Matrix
    similarity: sp.csr_matrix  # item × its K neighbours, float64; no diagonal
    similar_to: sp.csr_matrix  # the transpose: item × the items that count it a neighbour
    scorer: NearestNeighboursScorer


def _without_diagonal(similarity: sp.csr_matrix) -> sp.csr_matrix:
    """An item is its own best neighbour; drop that, and the zero padding implicit leaves."""
    coo = sp.coo_matrix(similarity)
    keep = (coo.row != coo.col) & (coo.data > 0)
    m = sp.csr_matrix(
        (coo.data[keep].astype(np.float64), (coo.row[keep], coo.col[keep])), shape=coo.shape
    )
    m.sum_duplicates()
    m.indices = m.indices.astype(np.int32)
    m.indptr = m.indptr.astype(np.int32)
    return m


def _state(
    matrix: Matrix, similarity: sp.csr_matrix, similar_to: sp.csr_matrix | None = None
) -> _State:
    """The serving state; ``similar_to`` is the saved transpose (a loaded model), else made."""
    if similar_to is None:
        similar_to = similarity.T.tocsr()
        similar_to.sort_indices()
    # implicit's scorer takes only writable buffers, though it never writes: copy-on-write
    # maps of loaded arrays keep them shared between processes.
    scorer = NearestNeighboursScorer(
        sp.csr_matrix(
            (
                copy_on_write(similarity.data),
                copy_on_write(similarity.indices),
                copy_on_write(similarity.indptr),
            ),
            shape=similarity.shape,
        )
    )
    return _State(matrix, similarity, similar_to, scorer)


def _csr(
    arrays: Mapping[str, npt.NDArray[Any]], name: str, shape: tuple[int, int]
) -> sp.csr_matrix:
    """The CSR matrix saved as ``{name}_data``, ``_indices`` and ``_indptr`` (no copies when
    they have the dtypes serving reads)."""
    return sp.csr_matrix(
        (
            arrays[f"{name}_data"].astype(np.float64, copy=False),
            arrays[f"{name}_indices"].astype(np.int32, copy=False),
            arrays[f"{name}_indptr"].astype(np.int32, copy=False),
        ),
        shape=shape,
    )


class ItemItemRecommender:
    """Item-item nearest neighbours (implicit's cosine or BM25 similarity).

    ``partial_fit`` adds interactions to customers' rows (the similarity matrix stays as
    fitted); ``explain`` gives each interacted item's weight × similarity to the asked item.
    """

    capabilities = Capabilities(cold_start=False, partial_fit=True, explain=True)

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.name = f"item_item ({self.settings['similarity']})"
        self._state: _State | None = None
        self._lock = threading.Lock()  # serialises writers; readers take `_state` as it is

    def _require(self) -> _State:
        state = self._state
        if state is None:
            raise NotFitted("item_item")
        return state

    def fit(self, data: TrainingData) -> None:
        matrix = Matrix.build(data)
        counts = matrix.user_items
        # implicit 0.7's CosineRecommender/BM25Recommender.fit hand all_pairs_knn a COO matrix,
        # which it converts with a ParameterWarning. Same weighting here, handed over as CSR.
        if self.settings["similarity"] == "bm25":
            weighted = bm25_weight(counts.T, K1=self.settings["k1"], B=self.settings["b"]).T
        else:
            weighted = normalize(counts.T).T
        weighted = sp.csr_matrix(weighted, dtype=np.float64)  # all_pairs_knn reads doubles
        weighted.indices = weighted.indices.astype(np.int32)
        weighted.indptr = weighted.indptr.astype(np.int32)
        model = _ImplicitItemItem(K=self.settings["k"], num_threads=self.settings["num_threads"])
        with single_threaded_blas():
            model.fit(weighted, show_progress=False)
        state = _state(matrix, _without_diagonal(model.similarity))
        with self._lock:
            self._state = state

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        """Adds ``interactions`` to their customers' rows; items unseen at fit are ignored."""
        with self._lock:
            state = self._require()
            matrix, _ = state.matrix.updated(interactions)
            self._state = replace(state, matrix=matrix)

    def _user_row(
        self, state: _State, row: int | None, new: Mapping[int, float]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float32]] | None:
        """indptr, indices and data of the customer's current row, for implicit's scorer."""
        if new:
            cols, weights = state.matrix.merged(row, new)
            return np.array([0, cols.size], dtype=np.int32), cols, weights
        if row is None:
            return None
        # A copy of the row: implicit's scorer takes writable buffers only, and the matrix of
        # a loaded model is a read-only map.
        cols, weights = state.matrix.row(row)
        return np.array([0, cols.size], dtype=np.int32), cols.copy(), weights.copy()

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        state = self._require()
        matrix = state.matrix
        row = matrix.customers.get(query.customer_id)
        seen: list[int] | None = [] if query.filter_already_seen else None
        recent = query.recent_interactions
        new = matrix.scan(row, recent, seen) if recent else {}
        user = self._user_row(state, row, new)
        if user is None or query.k <= 0:
            return []
        banned = {c for c in map(matrix.items.get, query.exclude_item_ids) if c is not None}
        banned.update(seen or ())
        # The scorer zeroes the row's own items when asked (filter_already_seen), and scores
        # <= 0 are dropped below, so only the other banned items can take a place in its top K.
        want = min(query.k + len(banned), matrix.n_items)
        while True:
            ids, scores = state.scorer.recommend(*user, K=want, remove_own_likes=seen is not None)
            picked = [
                (c, s)
                for c, s in zip(ids.tolist(), scores.tolist(), strict=True)
                if s > 0 and c not in banned
            ]
            picked.sort(key=lambda cs: (-cs[1], cs[0]))
            # implicit cuts ties at K arbitrarily: widen K until the last score it gave is below
            # the k-th kept one, so that the top k is the prefix of the top 2k (issue 13).
            if (
                len(ids) < want
                or want >= matrix.n_items
                or len(picked) < query.k
                or float(scores.min()) < picked[query.k - 1][1]
            ):
                break
            want = min(want * 2, matrix.n_items)
        reason = REASON_RECENT if new else REASON_NEIGHBOURS
        return [Scored(matrix.item_ids[c], s, reason) for c, s in picked[: query.k]]

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        state = self._require()
        column = state.matrix.items.get(query.item_id)
        if column is None:
            return []
        sim = state.similarity
        start, end = sim.indptr[column], sim.indptr[column + 1]
        excluded = {c for c in map(state.matrix.items.get, query.exclude_item_ids) if c is not None}
        picked = [
            (c, s)
            for c, s in zip(
                sim.indices[start:end].tolist(), sim.data[start:end].tolist(), strict=True
            )
            if c not in excluded
        ]
        picked.sort(key=lambda cs: (-cs[1], cs[0]))
        return [Scored(state.matrix.item_ids[c], s, REASON_SIMILAR) for c, s in picked[: query.k]]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        """Each interacted item's weight × similarity to ``query.item_id``, largest first."""
        state = self._require()
        matrix = state.matrix
        column = matrix.items.get(query.item_id)
        row = matrix.customers.get(query.customer_id)
        user = self._user_row(state, row, matrix.scan(row, query.recent_interactions))
        if column is None or user is None:
            return []
        indptr, indices, data = user
        cols, weights = indices[indptr[0] : indptr[1]], data[indptr[0] : indptr[1]]
        t = state.similar_to
        start, end = t.indptr[column], t.indptr[column + 1]
        _, mine, theirs = np.intersect1d(
            cols, t.indices[start:end], assume_unique=True, return_indices=True
        )
        shares = weights[mine] * t.data[start:end][theirs]
        order = np.lexsort((cols[mine], -shares))
        return [
            Contribution(matrix.item_ids[c], w)
            for c, w in zip(cols[mine][order].tolist(), shares[order].tolist(), strict=True)
            if w > 0
        ]

    def save(self, directory: Path) -> None:
        state = self._require()
        sim, t = state.similarity, state.similar_to
        arrays = {
            "similarity_data": sim.data,
            "similarity_indices": sim.indices,
            "similarity_indptr": sim.indptr,
            # Derived, but saved so that the serving processes share it too.
            "similar_to_data": t.data,
            "similar_to_indices": t.indices,
            "similar_to_indptr": t.indptr,
        }
        save_model(directory, "item_item", self.settings, state.matrix, arrays)

    def load(self, directory: Path) -> None:
        settings, matrix, arrays = load_model(directory, "item_item")
        self.settings = {**settings, "num_threads": self.settings["num_threads"]}
        self.name = f"item_item ({self.settings['similarity']})"
        n = matrix.n_items
        similarity = _csr(arrays, "similarity", (n, n))
        # Format 1 did not save the transpose.
        similar_to = _csr(arrays, "similar_to", (n, n)) if "similar_to_data" in arrays else None
        state = _state(matrix, similarity, similar_to)
        with self._lock:
            self._state = state
