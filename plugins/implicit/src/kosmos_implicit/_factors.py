"""Matrix-factorisation recommenders over implicit's CPU models: ALS and BPR.

implicit fits; serving is plain numpy on cached float32 factors: one ``item_factors @ user``
and one argpartition per request, with exclusions written into the score vector as ``-inf``.
That is as fast as scoring gets without an index, and lets a request fold in clicks the model
has not seen (ALS) without calling into implicit for the ranking.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from scipy.linalg import lapack

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
    closest_history,
)
from kosmos.plugin.arrays import copy_on_write
from kosmos_implicit._ann import ItemIndex
from kosmos_implicit._common import (
    REASON_RECENT,
    REASON_SIMILAR,
    REASON_TASTE,
    load_model,
    save_model,
    single_threaded_blas,
)
from kosmos_implicit._matrix import Matrix
from kosmos_implicit._ranking import columns, top_k

Factors = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _State:
    """Everything one request reads; replaced whole, never changed in place."""

    matrix: Matrix
    user_factors: Factors  # one row per matrix row
    item_factors: Factors  # C-contiguous, one row per column
    item_unit: Factors  # item factors scaled to length 1 (similar_items); 0 for dead items
    dead: npt.NDArray[np.int32]  # columns nobody had interacted with at fit time
    als: AlternatingLeastSquares | None  # ALS only: partial_fit and explain
    gram: npt.NDArray[np.float32] | None  # ALS only: YᵀY + regularization·I, for fold-in
    index: ItemIndex | None = None  # catalogs of at least `ann_min_items` live items


class _FactorRecommender:
    """What ALS and BPR share: fitting through implicit, serving from numpy."""

    name: ClassVar[str]
    capabilities: Capabilities

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self._state: _State | None = None
        self._lock = threading.Lock()  # serialises writers; readers take `_state` as it is

    # -- to be provided by each model ------------------------------------------------------

    def _new_model(self) -> Any:
        raise NotImplementedError

    def _similarity_factors(self, item_factors: Factors) -> Factors:
        """The part of the item factors that says what an item is like."""
        return item_factors

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> None:
        """Fits from scratch; the fixed ``random_state`` makes two fits on one data alike."""
        matrix = Matrix.build(data)
        with single_threaded_blas():
            model = self._new_model()
            if matrix.user_items.nnz:
                model.fit(matrix.user_items, show_progress=False)
                user_factors, item_factors = model.user_factors, model.item_factors
            else:  # nothing to learn from: every item is dead and every answer empty
                width = self._width()
                user_factors = np.zeros((0, width), dtype=np.float32)
                item_factors = np.zeros((matrix.n_items, width), dtype=np.float32)
        support = np.bincount(matrix.user_items.indices, minlength=matrix.n_items)
        dead = np.flatnonzero(support == 0).astype(np.int32)
        state = self._make_state(matrix, user_factors, item_factors, dead, model)
        state = replace(state, index=self._build_index(state))
        with self._lock:
            self._state = state

    def _build_index(self, state: _State, saved: Path | None = None) -> ItemIndex | None:
        """An ANN index when the catalog's live items reach ``ann_min_items`` (0: never): the
        one saved with the version in ``saved`` if there is one, else built now."""
        threshold = int(self.settings.get("ann_min_items", 0))
        live = np.setdiff1d(np.arange(state.matrix.n_items), state.dead)
        if threshold <= 0 or live.size < threshold:
            return None
        loaded = (
            ItemIndex.load(saved, self._ef_search(), state.item_factors)
            if saved is not None
            else None
        )
        if loaded is not None:
            return loaded
        with single_threaded_blas():
            return ItemIndex.build(state.item_factors, live, self._ef_search())

    def _ef_search(self) -> int:
        return int(self.settings.get("ann_ef_search", 128))

    def _width(self) -> int:
        return int(self.settings["factors"])

    def _make_state(
        self,
        matrix: Matrix,
        user_factors: Factors,
        item_factors: Factors,
        dead: npt.NDArray[np.int32],
        model: Any,
        item_unit: Factors | None = None,
    ) -> _State:
        """The serving state; ``item_unit`` is the saved one (a loaded model), else computed.

        Arrays loaded from a version stay the read-only maps they are (no copy): nothing on the
        request path writes into them.
        """
        item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        if item_unit is None or item_unit.shape[0] != item_factors.shape[0]:
            features = self._similarity_factors(item_factors)
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
            unit[dead] = 0.0
            item_unit = np.ascontiguousarray(unit)
        als, gram = None, None
        if isinstance(model, AlternatingLeastSquares):
            # implicit's Cython (partial_fit_users) takes only writable buffers, though it
            # never writes the item factors: a copy-on-write map keeps them shared.
            model.user_factors, model.item_factors = user_factors, copy_on_write(item_factors)
            _ = model.YtY  # cache it now rather than racing to on the first request
            als = model
            y = item_factors.astype(np.float64)
            lam = float(self.settings["regularization"])
            gram = (y.T @ y + lam * np.eye(y.shape[1])).astype(np.float32)
        return _State(matrix, user_factors, item_factors, item_unit, dead, als, gram)

    def _require(self) -> _State:
        state = self._state
        if state is None:
            raise NotFitted(self.name)
        return state

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        raise Unsupported("partial_fit", self.name)

    # -- serving ---------------------------------------------------------------------------

    def _user_vector(
        self, state: _State, row: int | None, new: Mapping[int, float]
    ) -> npt.NDArray[np.float32] | None:
        """The customer's vector: their fitted one; models that can, fold in ``new`` as well."""
        return state.user_factors[row] if row is not None else None

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        state = self._require()
        matrix = state.matrix
        row = matrix.customers.get(query.customer_id)
        seen: list[int] | None = [] if query.filter_already_seen else None
        recent = query.recent_interactions
        new = matrix.scan(row, recent, seen) if recent else {}
        vector = self._user_vector(state, row, new)
        if vector is None:
            return []
        reason = REASON_RECENT if new and state.als is not None else REASON_TASTE
        if state.index is not None:
            found = self._approximate(state, vector, query, row, seen, reason)
            if found is not None:
                return with_because(found, state, recent) if query.reasons else found
        scores = state.item_factors @ vector
        if state.dead.size:
            scores[state.dead] = -np.inf
        if query.exclude_item_ids:
            scores[columns(matrix.items, query.exclude_item_ids)] = -np.inf
        if seen is not None:
            if row is not None:
                scores[matrix.row(row)[0]] = -np.inf
            if seen:
                scores[seen] = -np.inf
        results = top_k(scores, query.k, matrix.item_ids, reason)
        return with_because(results, state, recent) if query.reasons else results

    def _approximate(
        self,
        state: _State,
        vector: npt.NDArray[np.float32],
        query: RecommendQuery,
        row: int | None,
        seen: list[int] | None,
        reason: str,
    ) -> list[Scored] | None:
        """The top k from the ANN index's candidates, scored exactly; None when the index
        cannot give k after exclusions (the caller then scans every item)."""
        assert state.index is not None
        excluded = set(columns(state.matrix.items, query.exclude_item_ids))
        if seen is not None:
            if row is not None:
                excluded.update(state.matrix.row(row)[0].tolist())
            excluded.update(seen)
        want = query.k + len(excluded)
        if want > state.index.columns.size // 2:
            return None  # most of the catalog left out: the scan is as cheap
        candidates = np.array(
            [c for c in state.index.candidates(vector, want).tolist() if c not in excluded],
            dtype=np.int64,
        )
        if candidates.size < min(query.k, state.index.columns.size - len(excluded)):
            return None
        scores = state.item_factors[candidates] @ vector
        ids = tuple(state.matrix.item_ids[c] for c in candidates.tolist())
        return top_k(scores, query.k, ids, reason)

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        state = self._require()
        column = state.matrix.items.get(query.item_id)
        if column is None:
            return []
        scores = state.item_unit @ state.item_unit[column]
        scores[column] = -np.inf
        if query.exclude_item_ids:
            scores[columns(state.matrix.items, query.exclude_item_ids)] = -np.inf
        # Cosine <= 0 is no likeness at all; a dead item has no neighbours.
        return top_k(scores, query.k, state.matrix.item_ids, REASON_SIMILAR, floor=0.0)

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", self.name)

    # -- persistence -----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        state = self._require()
        arrays = {
            "user_factors": state.user_factors,
            "item_factors": state.item_factors,
            "dead": state.dead,
            "item_unit": state.item_unit,  # derived, but saved so that processes share it
        }
        save_model(directory, self.name, self.settings, state.matrix, arrays)
        if state.index is not None:  # saved with the version: replicas need not rebuild it
            state.index.save(directory)

    def load(self, directory: Path) -> None:
        settings, matrix, arrays = load_model(directory, self.name)
        # The saved hyperparameters describe the factors; threads and the index are this
        # process's business.
        own = ("num_threads", "ann_min_items", "ann_ef_search")
        self.settings = {**settings, **{k: self.settings[k] for k in own if k in self.settings}}
        with single_threaded_blas():
            model = self._new_model()
        state = self._make_state(
            matrix,
            arrays["user_factors"],
            arrays["item_factors"],
            arrays["dead"].astype(np.int32, copy=False),
            model,
            arrays.get("item_unit"),  # format 1 did not save it
        )
        if state.user_factors.shape[0] != len(matrix.customer_ids):
            raise ValueError("saved model is inconsistent: user factors do not match customers")
        state = replace(state, index=self._build_index(state, directory))
        with self._lock:
            self._state = state


class ALSRecommender(_FactorRecommender):
    """implicit's alternating least squares, with request-time fold-in of new interactions.

    A request whose ``recent_interactions`` hold interactions newer than the customer's fitted
    row gets a vector solved afresh from that row plus them (the exact ALS user solve against
    cached YᵀY + λI, as implicit's ``recalculate_user``), so a click shapes the very next answer; an
    unknown customer with recent interactions is folded in the same way. ``partial_fit`` moves
    interactions into the rows for good (implicit's ``partial_fit_users``). Items unseen at fit
    time have no factors until the next ``fit`` and are ignored by both.
    """

    name = "als"
    capabilities = Capabilities(cold_start=False, partial_fit=True, explain=True)

    def _new_model(self) -> AlternatingLeastSquares:
        s = self.settings
        return AlternatingLeastSquares(
            factors=int(s["factors"]),
            regularization=float(s["regularization"]),
            alpha=float(s["alpha"]),
            iterations=int(s["iterations"]),
            random_state=int(s["random_state"]),
            num_threads=int(s["num_threads"]),
            dtype=np.float32,
        )

    def _user_vector(
        self, state: _State, row: int | None, new: Mapping[int, float]
    ) -> npt.NDArray[np.float32] | None:
        if not new:
            return state.user_factors[row] if row is not None else None
        assert state.gram is not None
        cols, weights = state.matrix.merged(row, new)
        return self._solve(state.item_factors, state.gram, cols, weights)

    def _solve(
        self,
        item_factors: Factors,
        gram: npt.NDArray[np.float32],
        cols: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]:
        """The ALS user solve: (YᵀY + λI + Σ (cᵢ-1) yᵢyᵢᵀ) x = Σ cᵢ yᵢ, with c = alpha × weight.

        What implicit's ``recalculate_user`` computes (in float32, as implicit does), without
        building a scipy matrix per request; only items with c ≠ 1 change the left-hand side.
        """
        confidence = weights * np.float32(self.settings["alpha"])
        y = item_factors[cols]
        b = confidence @ y
        lift = confidence - np.float32(1.0)
        bent = np.flatnonzero(lift)
        a: npt.NDArray[np.floating[Any]]
        if bent.size:
            yb = y[bent]
            a = gram + (yb.T * lift[bent]) @ yb
        else:
            a = gram
        # LAPACK's Cholesky solve, called directly: half the cost of np.linalg.solve here.
        _, x, info = lapack.sposv(a, b)
        if info != 0:  # not positive definite (regularization 0, too few items): least squares
            x = np.linalg.lstsq(a, b, rcond=None)[0]
        return np.asarray(x, dtype=np.float32)

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        """Adds ``interactions`` to their customers' rows and re-solves those customers.

        Item factors stay as fitted; interactions with items unseen at fit time are ignored
        until the next ``fit``. Copy-on-write: requests in flight keep the arrays they read.
        """
        with self._lock:
            state = self._require()
            matrix, changed = state.matrix.updated(interactions)
            assert state.als is not None
            model = copy.copy(state.als)  # shares the item factors and YtY, which stay
            model.user_factors = state.user_factors.copy()
            if changed.size:
                with single_threaded_blas():
                    model.partial_fit_users(changed, matrix.user_items[changed])
            self._state = replace(
                state,
                matrix=matrix,
                user_factors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
                als=model,
            )

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        """Each interacted item's share of the score (implicit's ``explain``), largest first."""
        state = self._require()
        matrix = state.matrix
        column = matrix.items.get(query.item_id)
        row = matrix.customers.get(query.customer_id)
        new = matrix.scan(row, query.recent_interactions)
        if column is None or (row is None and not new):
            return []
        user_items = matrix.merged_csr(row, new)
        assert state.als is not None
        _, contributions, _ = state.als.explain(0, user_items, column, N=user_items.nnz)
        return [Contribution(matrix.item_ids[c], float(w)) for c, w in contributions]


class BPRRecommender(_FactorRecommender):
    """implicit's Bayesian personalised ranking.

    BPR has no closed-form per-user solve, so it neither folds in new interactions nor
    supports ``partial_fit``: a customer is served from their fitted vector (recent
    interactions still count for ``filter_already_seen``) and an unknown customer gets [].
    SGD with more than one thread is not reproducible; keep ``num_threads=1`` (the default)
    where fitting twice must give the same model.
    """

    name = "bpr"
    capabilities = Capabilities(cold_start=False, partial_fit=False, explain=False)

    def _new_model(self) -> BayesianPersonalizedRanking:
        s = self.settings
        return BayesianPersonalizedRanking(
            factors=int(s["factors"]),
            learning_rate=float(s["learning_rate"]),
            regularization=float(s["regularization"]),
            iterations=int(s["iterations"]),
            random_state=int(s["random_state"]),
            num_threads=int(s["num_threads"]),
            dtype=np.float32,
        )

    def _width(self) -> int:
        return int(self.settings["factors"]) + 1  # implicit appends a bias column

    def _similarity_factors(self, item_factors: Factors) -> Factors:
        # implicit's BPR keeps each item's bias (its popularity) in the last column and a
        # constant 1 in the users'; likeness is in the other columns.
        return np.ascontiguousarray(item_factors[:, :-1])


def with_because(
    results: list[Scored], state: _State, recent: Sequence[Interaction]
) -> list[Scored]:
    """Names, for each result, the recent item it most resembles (the core words the reason)."""
    if not results or not recent:
        return results
    items = state.matrix.items
    history = columns(items, dict.fromkeys(i.item_id for i in recent if i.weight > 0))
    if not history:
        return results
    picked = [items[s.item_id] for s in results]
    best = closest_history(
        state.item_unit[picked], state.item_unit[history], picked, history, unit=True
    )
    ids = state.matrix.item_ids
    return [
        Scored(s.item_id, s.score, s.reason, ids[history[b]]) if b >= 0 else s
        for s, b in zip(results, best, strict=True)
    ]
