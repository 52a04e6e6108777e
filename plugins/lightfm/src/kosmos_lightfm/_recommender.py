"""LightFM as a Kosmos recommender: a hybrid model trained by LightFM, served by plain numpy.

Training builds one row per customer and item: its own id, weighing 1, so a known customer or
item gets its own embedding, plus one-hot ``name=value`` features that together weigh 1. (LightFM's
``Dataset`` normalises the whole row instead; that dilutes the id and, on Online Retail, cost a
quarter of the warm customers' NDCG@10 at 30 epochs.)

After the fit, every representation the service needs is computed once and kept as float32
arrays: scoring one customer is then a single ``items @ user`` and an ``argpartition``, not
LightFM's per-pair ``predict``.

Unseen customers and unsold items get what a row with their features would give, with the id
embedding they lack replaced by the mean id embedding of the known ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from lightfm import LightFM
from opentelemetry import trace

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
from kosmos.plugin.arrays import is_shared, load_arrays, save_arrays
from kosmos.plugin.features import NUMERIC
from kosmos_lightfm._settings import NAME, LightFMSettings

tracer = trace.get_tracer(__name__)

FORMAT = 2
"""Version of the files `save` writes: 2 keeps each array in its own ``.npy`` under
``lightfm.arrays/``, memory-mapped read-only by `load` (`kosmos.plugin.arrays`: the serving
processes of a machine share one copy); 1, one ``lightfm.npz`` read into each process, still
loads."""
FORMATS = (1, 2)
ARRAYS_DIR = "lightfm.arrays"

WARM_REASON = "Picked for your taste"
COLD_REASON = "Popular with shoppers like you"
FALLBACK_REASON = "Popular with shoppers right now"
SIMILAR_REASON = "Liked by the same shoppers"

COLD_CACHE_SIZE = 4096
"""Feature combinations whose customer vector is kept between requests."""

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TrainingState:
    """What one fit trained on, for offline evaluation; kept only with ``keep_training_state``.

    Attributes:
        model: The fitted ``lightfm.LightFM``.
        interactions: Customer × item matrix (rows ``customer_ids``, columns ``item_ids``).
        sample_weight: The weights passed to LightFM, or None for a binary fit.
        user_features: Customer feature rows, or None when features are off (identity).
        item_features: Item feature rows, or None when features are off (identity).
        customer_ids: The customers LightFM knows, by row.
        item_ids: The items LightFM knows, by column.
    """

    model: LightFM
    interactions: sp.coo_matrix
    sample_weight: sp.coo_matrix | None
    user_features: sp.csr_matrix | None
    item_features: sp.csr_matrix | None
    customer_ids: tuple[str, ...]
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Model:
    """Everything serving reads; immutable, so many threads can share it without a lock."""

    item_ids: tuple[str, ...]
    item_index: dict[str, int]
    items: Floats  # (items, d + 1): embedding | bias; float32, C-contiguous
    item_inv_norm: Floats  # 1 / |embedding|, 0 for a zero embedding
    item_unit: Floats  # (items, d): unit embeddings, for "because you bought ..." reasons
    customer_index: dict[str, int]  # every customer with interactions at fit time
    users: Floats  # (warm customers, d + 1): embedding | 1, rows 0..n_warm-1 of customer_index
    user_bias: Floats  # (warm customers,)
    seen_indptr: Ints  # CSR over customer_index rows → item indices they interacted with
    seen_indices: Ints
    feature_index: dict[str, int]  # customer feature "name=value" → row of user_features
    user_features: Floats  # (features, d)
    user_feature_bias: Floats  # (features,)
    user_identity_mean: Floats  # (d,) mean id embedding of the warm customers
    user_identity_bias_mean: float
    fallback: Floats  # (d + 1,) the mean warm customer: embedding | 1
    fallback_bias: float
    cold_cache: dict[tuple[int, ...], tuple[Floats, float]]  # feature rows → vector, bias

    @property
    def dim(self) -> int:
        return int(self.items.shape[1]) - 1

    @classmethod
    def build(
        cls,
        item_ids: Sequence[str],
        items: Floats,
        customer_ids: Sequence[str],
        users: Floats,
        user_bias: Floats,
        seen_indptr: Ints,
        seen_indices: Ints,
        feature_names: Sequence[str],
        user_features: Floats,
        user_feature_bias: Floats,
        user_identity_mean: Floats,
        user_identity_bias_mean: float,
        fallback: Floats,
        fallback_bias: float,
        item_inv_norm: Floats | None = None,
        item_unit: Floats | None = None,
    ) -> _Model:
        """The serving model; ``item_inv_norm`` and ``item_unit`` are the saved ones (a loaded
        model), else computed from ``items``."""
        items = _own(items)
        if item_inv_norm is None or item_unit is None or item_unit.shape[0] != items.shape[0]:
            norms = np.linalg.norm(items[:, :-1], axis=1)
            inv_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            item_inv_norm = inv_norm.astype(np.float32)
            item_unit = items[:, :-1] * inv_norm[:, None]
        return cls(
            item_ids=tuple(item_ids),
            item_index={item: n for n, item in enumerate(item_ids)},
            items=items,
            item_inv_norm=_own(item_inv_norm),
            item_unit=_own(item_unit),
            customer_index={c: n for n, c in enumerate(customer_ids)},
            users=_own(users),
            user_bias=_own(user_bias),
            seen_indptr=np.asarray(seen_indptr, dtype=np.int64),
            seen_indices=np.asarray(seen_indices, dtype=np.int64),
            feature_index={f: n for n, f in enumerate(feature_names)},
            user_features=_own(user_features),
            user_feature_bias=_own(user_feature_bias),
            user_identity_mean=_own(user_identity_mean),
            user_identity_bias_mean=float(user_identity_bias_mean),
            fallback=_own(fallback),
            fallback_bias=float(fallback_bias),
            cold_cache={},
        )

    @classmethod
    def empty(cls, dim: int, customer_ids: Sequence[str]) -> _Model:
        """A model with nothing to recommend: the training data had no positive interaction."""
        zeros = np.zeros(dim, dtype=np.float32)
        return cls.build(
            item_ids=(),
            items=np.zeros((0, dim + 1), dtype=np.float32),
            customer_ids=customer_ids,
            users=np.zeros((0, dim + 1), dtype=np.float32),
            user_bias=np.zeros(0, dtype=np.float32),
            seen_indptr=np.zeros(len(customer_ids) + 1, dtype=np.int64),
            seen_indices=np.zeros(0, dtype=np.int64),
            feature_names=(),
            user_features=np.zeros((0, dim), dtype=np.float32),
            user_feature_bias=np.zeros(0, dtype=np.float32),
            user_identity_mean=zeros,
            user_identity_bias_mean=0.0,
            fallback=np.append(zeros, np.float32(1.0)),
            fallback_bias=0.0,
        )

    def cold_user(self, features: Mapping[str, str]) -> tuple[Floats, float, str]:
        """A customer's vector, bias and reason from features; the mean customer without any."""
        rows = tuple(
            sorted(
                n
                for n in (self.feature_index.get(_feature(k, v)) for k, v in features.items())
                if n is not None
            )
        )
        if not rows:
            return self.fallback, self.fallback_bias, FALLBACK_REASON
        cached = self.cold_cache.get(rows)
        if cached is None:
            cached = self._cold_vector(rows)
            # Cold customers share few feature combinations (a country, an age band): keep the
            # vectors, within a bound. Dict operations are atomic, so threads need no lock.
            if len(self.cold_cache) >= COLD_CACHE_SIZE:
                self.cold_cache.clear()
            self.cold_cache[rows] = cached
        return cached[0], cached[1], COLD_REASON

    def _cold_vector(self, rows: tuple[int, ...]) -> tuple[Floats, float]:
        picked = list(rows)
        vector = np.empty(self.dim + 1, dtype=np.float32)
        vector[:-1] = self.user_identity_mean + self.user_features[picked].mean(axis=0)
        vector[-1] = 1.0
        bias = self.user_identity_bias_mean + float(self.user_feature_bias[picked].mean())
        vector.flags.writeable = False  # shared between requests
        return vector, bias

    def indices(self, item_ids: Iterable[str]) -> list[int]:
        index = self.item_index
        return [n for n in (index.get(i) for i in item_ids) if n is not None]


def _own(array: npt.ArrayLike) -> Floats:
    """A read-only float32, C-contiguous copy: serving must not pin LightFM's training arrays,
    and requests share it. A read-only map of a saved version is kept as it is (shared)."""
    if isinstance(array, np.ndarray) and is_shared(array):
        if array.dtype == np.float32 and array.flags.c_contiguous:
            return array
    owned = np.array(array, dtype=np.float32, order="C")
    owned.flags.writeable = False
    return owned


def _feature(name: str, value: str) -> str:
    return f"{name}={value}"


def _top(scores: Floats, k: int) -> tuple[list[int], list[float]]:
    """The k best finite scores, best first; ties go to the lower index."""
    n = scores.size
    if k < n:
        top = np.argpartition(scores, n - k)[n - k :]
    else:
        top = np.arange(n)
    values = scores[top]
    order = np.lexsort((top, -values))
    picked, kept = top[order].tolist(), values[order].tolist()
    while kept and kept[-1] == -math.inf:
        picked.pop()
        kept.pop()
    return picked, kept


def _feature_rows(
    ids: Sequence[str],
    features: Mapping[str, Mapping[str, str]],
    vocabulary: Mapping[str, int],
    identity: bool,
) -> sp.csr_matrix:
    """One row per id: its id column weighing 1 (when ``identity``), its known features 1 in all.

    Columns are the ids first (row n has column n), then ``vocabulary`` offset by their count.
    """
    offset = len(ids) if identity else 0
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for n, entity in enumerate(ids):
        cols = [
            offset + col
            for col in (vocabulary.get(_feature(k, v)) for k, v in features.get(entity, {}).items())
            if col is not None
        ]
        if identity:
            indices.append(n)
            data.append(1.0)
        indices.extend(cols)
        data.extend([1.0 / len(cols)] * len(cols) if cols else [])
        indptr.append(len(indices))
    return sp.csr_matrix(
        (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), np.array(indptr)),
        shape=(len(ids), offset + len(vocabulary)),
    )


def _vocabulary(ids: Iterable[str], features: Mapping[str, Mapping[str, str]]) -> dict[str, int]:
    # Numbers (an item's price) would be near-unique one-hot columns: their band stands in.
    names = dict.fromkeys(
        _feature(name, value)
        for entity in ids
        for name, value in features.get(entity, {}).items()
        if name not in NUMERIC
    )
    return {f: n for n, f in enumerate(names)}


class LightFMRecommender:
    """A LightFM hybrid model with cold start from features and fast numpy serving.

    ``recommend`` ignores ``recent_interactions`` for scoring (LightFM cannot fold them in
    without a refit) but leaves them out under ``filter_already_seen``.

    Args:
        settings: How to build and train the model.
        keep_training_state: Keep the fitted ``lightfm.LightFM`` and its matrices in
            `training_state` (offline evaluation, benchmarks); serving never needs them.
    """

    capabilities = Capabilities(cold_start=True, partial_fit=False, explain=False)

    def __init__(
        self, settings: LightFMSettings | None = None, *, keep_training_state: bool = False
    ) -> None:
        self.settings = settings or LightFMSettings()
        self.keep_training_state = keep_training_state
        self.training_state: TrainingState | None = None
        self._model: _Model | None = None

    # -- fit ---------------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> None:
        with tracer.start_as_current_span("lightfm.fit") as span:
            span.set_attribute("kosmos.recommender", NAME)
            span.set_attribute("kosmos.interactions.count", len(data.interactions))
            self._model = self._fit(data)
            span.set_attribute("kosmos.items.count", len(self._model.item_ids))

    def _fit(self, data: TrainingData) -> _Model:
        s = self.settings
        self.training_state = None
        catalog = list(dict.fromkeys([*data.item_ids, *(i.item_id for i in data.interactions)]))
        strength: dict[tuple[str, str], float] = {}
        seen: dict[str, dict[str, None]] = {}
        for i in data.interactions:
            seen.setdefault(i.customer_id, {})[i.item_id] = None
            if i.weight > 0:  # dismissals (weight 0) are seen, never positives
                key = (i.customer_id, i.item_id)
                strength[key] = strength.get(key, 0.0) + i.weight

        warm_users = list(dict.fromkeys(c for c, _ in strength))
        warm_item_set = {item for _, item in strength}
        warm_items = [item for item in catalog if item in warm_item_set]
        user_row = {c: n for n, c in enumerate(warm_users)}
        item_col = {item: n for n, item in enumerate(warm_items)}
        # Customers whose every interaction weighs nothing have no row to train, but their
        # interactions still count as seen.
        customers = warm_users + [c for c in seen if c not in user_row]
        d = s.no_components

        if not strength:
            return _Model.empty(d, customers)

        rows = np.fromiter((user_row[c] for c, _ in strength), dtype=np.int32, count=len(strength))
        cols = np.fromiter((item_col[i] for _, i in strength), dtype=np.int32, count=len(strength))
        shape = (len(warm_users), len(warm_items))
        interactions = sp.coo_matrix((np.ones(len(strength), np.float32), (rows, cols)), shape)
        sample_weight = None
        if s.loss != "warp-kos":  # LightFM's k-OS loss takes no sample weights
            # Repeats and strong signals (purchases over views) count more, with diminishing
            # returns; scaled to mean 1 so the learning rate means what it does on binary data.
            w = np.log1p(np.fromiter(strength.values(), dtype=np.float64, count=len(strength)))
            sample_weight = sp.coo_matrix(((w / w.mean()).astype(np.float32), (rows, cols)), shape)

        user_vocab: dict[str, int] = {}
        item_vocab: dict[str, int] = {}
        user_features = item_features = None
        if s.use_features:
            user_vocab = _vocabulary(warm_users, data.customer_features)
            item_vocab = _vocabulary(warm_items, data.item_features)
            user_features = _feature_rows(warm_users, data.customer_features, user_vocab, True)
            item_features = _feature_rows(warm_items, data.item_features, item_vocab, True)

        model = LightFM(
            no_components=d,
            loss=s.loss,
            learning_rate=s.learning_rate,
            item_alpha=s.item_alpha,
            user_alpha=s.user_alpha,
            max_sampled=s.max_sampled,
            random_state=s.random_state,
        )
        model.fit(
            interactions,
            user_features=user_features,
            item_features=item_features,
            sample_weight=sample_weight,
            epochs=s.epochs,
            num_threads=s.num_threads,
        )
        if self.keep_training_state:
            self.training_state = TrainingState(
                model,
                interactions,
                sample_weight,
                user_features,
                item_features,
                tuple(warm_users),
                tuple(warm_items),
            )

        # Items: the warm ones as LightFM represents them, then unsold ones from known features.
        item_bias, item_emb = model.get_item_representations(item_features)
        n_items = len(warm_items)
        id_emb = model.item_embeddings[:n_items].mean(axis=0)
        id_bias = float(model.item_biases[:n_items].mean())
        cold_items = [item for item in catalog if item not in warm_item_set]
        cold = _feature_rows(cold_items, data.item_features, item_vocab, identity=False)
        known = np.diff(cold.indptr) > 0
        cold = cold[known]
        cold_emb = cold @ model.item_embeddings[n_items:] + id_emb
        cold_bias = cold @ model.item_biases[n_items:] + id_bias
        item_ids = warm_items + [item for item, k in zip(cold_items, known, strict=True) if k]
        items = np.hstack(
            [np.vstack([item_emb, cold_emb]), np.concatenate([item_bias, cold_bias])[:, None]]
        )

        # Customers: warm ones cached; the rest are scored from features at request time.
        user_bias, user_emb = model.get_user_representations(user_features)
        n_users = len(warm_users)
        users = np.hstack([user_emb, np.ones((n_users, 1), dtype=np.float32)])
        index = {item: n for n, item in enumerate(item_ids)}
        seen_rows = [[index[i] for i in seen[c] if i in index] for c in customers]
        return _Model.build(
            item_ids=item_ids,
            items=items,
            customer_ids=customers,
            users=users,
            user_bias=user_bias,
            seen_indptr=np.cumsum([0, *(len(r) for r in seen_rows)]),
            seen_indices=np.fromiter((i for r in seen_rows for i in r), dtype=np.int64),
            feature_names=list(user_vocab),
            user_features=model.user_embeddings[n_users:],
            user_feature_bias=model.user_biases[n_users:],
            user_identity_mean=model.user_embeddings[:n_users].mean(axis=0),
            user_identity_bias_mean=float(model.user_biases[:n_users].mean()),
            fallback=users.mean(axis=0),
            fallback_bias=float(user_bias.mean()),
        )

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        raise Unsupported("partial_fit", NAME)

    # -- serve -------------------------------------------------------------------------------

    def _require(self) -> _Model:
        model = self._model
        if model is None:
            raise NotFitted(NAME)
        return model

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        if query.k <= 0 or not model.item_ids:
            return []
        row = model.customer_index.get(query.customer_id)
        if row is not None and row < model.users.shape[0]:
            vector, bias, reason = model.users[row], float(model.user_bias[row]), WARM_REASON
        else:
            vector, bias, reason = model.cold_user(query.customer_features)
        scores = model.items @ vector
        if query.exclude_item_ids:
            scores[model.indices(query.exclude_item_ids)] = -np.inf
        if query.filter_already_seen:
            if row is not None:
                start, end = model.seen_indptr[row], model.seen_indptr[row + 1]
                scores[model.seen_indices[start:end]] = -np.inf
            if query.recent_interactions:
                scores[model.indices(i.item_id for i in query.recent_interactions)] = -np.inf
        picked, values = _top(scores, query.k)
        ids = model.item_ids
        because = self._because(model, picked, query.recent_interactions) if query.reasons else {}
        return [
            Scored(ids[n], v + bias, reason, because.get(n, ""))
            for n, v in zip(picked, values, strict=True)
        ]

    @staticmethod
    def _because(
        model: _Model, picked: Sequence[int], recent: Sequence[Interaction]
    ) -> dict[int, str]:
        """For each picked item, the recent item whose embedding it is closest to."""
        if not recent or not len(picked):
            return {}
        history = model.indices(dict.fromkeys(i.item_id for i in recent if i.weight > 0))
        if not len(history):
            return {}
        # The last column is the bias: likeness is over the embeddings only.
        best = closest_history(
            model.item_unit[picked], model.item_unit[history], picked, history, unit=True
        )
        return {
            int(n): model.item_ids[history[b]] for n, b in zip(picked, best, strict=True) if b >= 0
        }

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        model = self._require()
        n = model.item_index.get(query.item_id)
        if n is None or query.k <= 0:
            return []
        target = model.items[n] * model.item_inv_norm[n]
        target[-1] = 0.0  # cosine over embeddings; the bias column plays no part
        scores = (model.items @ target) * model.item_inv_norm
        scores[n] = -np.inf
        if query.exclude_item_ids:
            scores[model.indices(query.exclude_item_ids)] = -np.inf
        picked, values = _top(scores, query.k)
        return [
            Scored(model.item_ids[m], v, SIMILAR_REASON)
            for m, v in zip(picked, values, strict=True)
        ]

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", NAME)

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Writes ``lightfm.arrays/`` (the serving arrays, one ``.npy`` each) and
        ``lightfm.json`` (ids, settings)."""
        model = self._require()
        customers = sorted(model.customer_index, key=model.customer_index.__getitem__)
        features = sorted(model.feature_index, key=model.feature_index.__getitem__)
        arrays: dict[str, npt.NDArray[Any]] = {
            "items": model.items,
            "users": model.users,
            "user_bias": model.user_bias,
            "seen_indptr": model.seen_indptr,
            "seen_indices": model.seen_indices,
            "user_features": model.user_features,
            "user_feature_bias": model.user_feature_bias,
            "user_identity_mean": model.user_identity_mean,
            "fallback": model.fallback,
            # Derived from items, but saved so that the serving processes share them too.
            "item_inv_norm": model.item_inv_norm,
            "item_unit": model.item_unit,
        }
        save_arrays(directory / ARRAYS_DIR, arrays)
        payload = {
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "item_ids": model.item_ids,
            "customer_ids": customers,
            "feature_names": features,
            "user_identity_bias_mean": model.user_identity_bias_mean,
            "fallback_bias": model.fallback_bias,
        }
        (directory / "lightfm.json").write_text(json.dumps(payload))

    def load(self, directory: Path) -> None:
        payload = json.loads((directory / "lightfm.json").read_text())
        if payload.get("format") not in FORMATS:
            raise ValueError(f"{NAME}: unknown model format {payload.get('format')!r}")
        arrays: dict[str, npt.NDArray[Any]]
        if payload["format"] == 1:
            with np.load(directory / "lightfm.npz", allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        else:
            arrays = load_arrays(directory / ARRAYS_DIR)
        model = _Model.build(
            item_ids=payload["item_ids"],
            items=arrays["items"],
            customer_ids=payload["customer_ids"],
            users=arrays["users"],
            user_bias=arrays["user_bias"],
            seen_indptr=arrays["seen_indptr"],
            seen_indices=arrays["seen_indices"],
            feature_names=payload["feature_names"],
            user_features=arrays["user_features"],
            user_feature_bias=arrays["user_feature_bias"],
            user_identity_mean=arrays["user_identity_mean"],
            user_identity_bias_mean=payload["user_identity_bias_mean"],
            fallback=arrays["fallback"],
            fallback_bias=payload["fallback_bias"],
            item_inv_norm=arrays.get("item_inv_norm"),
            item_unit=arrays.get("item_unit"),
        )
        self.settings = LightFMSettings(**payload["settings"])
        self.training_state = None
        self._model = model


def create(settings: Mapping[str, str]) -> LightFMRecommender:
    """Entry point ``lightfm``: builds the recommender from its settings (strings, from env).

    Raises:
        ValueError: A setting is unknown or its value is bad; the message names it.
    """
    return LightFMRecommender(LightFMSettings.from_mapping(settings))
