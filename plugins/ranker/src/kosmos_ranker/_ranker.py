"""The learned ranker: a second stage over the candidates of other recommenders.

``fit`` splits the shop's own interactions by time (the latest ``holdout_share`` of them are the
labels), fits fresh sources on the earlier part, asks them for each labelled customer's
candidates, and trains LightGBM's LambdaRank to put first what the customer went on to interact
with. It then fits the sources again on everything, to serve. ``recommend`` gathers each source's
``candidates`` best, computes the features (`kosmos_ranker._features`) and sorts by the model.
With too little data to learn from (fewer than ``min_customers`` labelled customers with a hit
among their candidates) it ranks by reciprocal-rank fusion of the sources instead, and says so in
the log. Customers with no history at all are ranked by fusion too: the model is trained on
customers with history, and its features say nothing about the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from kosmos.common import deadline
from kosmos.plugin import (
    Capabilities,
    Contribution,
    ExplainQuery,
    Interaction,
    NotFitted,
    Recommender,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
    Unsupported,
    discover,
)
from kosmos_ranker._features import Floats, Stats, feature_names, positives

log = logging.getLogger(__name__)

NAME = "ranker"
RRF_K = 60.0  # reciprocal-rank fusion's usual constant
REPEAT_SHARE = 0.05  # below this share of repeat labels, training asks with filter_already_seen

DEFAULTS = {
    "sources": "popularity,buy_again,bought_together",
    "candidates": "50",
    "holdout_share": "0.2",
    "split": "time",
    "train_customers": "2000",
    "min_customers": "50",
    "train_seen": "auto",
    "recent": "25",
    "trees": "60",
    "learning_rate": "0.1",
    "leaves": "15",
    "min_data_in_leaf": "20",
    "threads": "1",
    "seed": "42",
    "category_feature": "category",
}


def split_settings(
    settings: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The ranker's own settings and, per source, those named ``source.setting`` (or
    ``source__setting``, as ``KOSMOS_PLUGIN__RANKER__ALS__FACTORS`` arrives)."""
    own: dict[str, str] = {}
    nested: dict[str, dict[str, str]] = {}
    for key, value in settings.items():
        name, dot, setting = key.partition(".")
        if not dot:
            name, dot, setting = key.partition("__")
        if dot and name and setting:
            nested.setdefault(name, {})[setting] = value
        else:
            own[key] = value
    return own, nested


@dataclass(frozen=True, slots=True)
class _Model:
    sources: dict[str, Recommender]
    stats: Stats
    booster: lgb.Booster | None  # None: too little data, reciprocal-rank fusion


class RankerRecommender:
    """LightGBM LambdaRank over the candidates of ``sources`` (see the module doc)."""

    capabilities = Capabilities(cold_start=True, partial_fit=False, explain=False)

    def __init__(
        self,
        settings: Mapping[str, str],
        source_settings: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._configure(settings, source_settings)
        self._model: _Model | None = None

    def _configure(
        self,
        settings: Mapping[str, str],
        source_settings: Mapping[str, Mapping[str, str]] | None,
    ) -> None:
        own, nested = split_settings(settings)
        unknown = set(own) - set(DEFAULTS)
        if unknown:
            raise ValueError(
                f"{NAME}: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}"
            )
        values = {**DEFAULTS, **own}
        self.settings = values
        self.source_names = [s.strip() for s in values["sources"].split(",") if s.strip()]
        if not self.source_names:
            raise ValueError(f"{NAME}: sources must name at least one recommender")
        if NAME in self.source_names or len(set(self.source_names)) < len(self.source_names):
            raise ValueError(f"{NAME}: sources must be distinct and must not include {NAME}")
        stray = set(nested) - set(self.source_names)
        if stray:
            raise ValueError(f"{NAME}: settings for {sorted(stray)}, which are not sources")
        self.source_settings = {
            s: {**(source_settings or {}).get(s, {}), **nested.get(s, {})}
            for s in self.source_names
        }

        def count(name: str, minimum: int) -> int:
            try:
                value = int(values[name])
            except ValueError:
                raise ValueError(
                    f"{NAME}: {name} must be an integer, not {values[name]!r}"
                ) from None
            if value < minimum:
                raise ValueError(f"{NAME}: {name} must be at least {minimum}")
            return value

        def share(name: str) -> float:
            try:
                value = float(values[name])
            except ValueError:
                raise ValueError(f"{NAME}: {name} must be a number, not {values[name]!r}") from None
            if not 0.0 < value < 1.0:
                raise ValueError(f"{NAME}: {name} must be between 0 and 1")
            return value

        self.candidates = count("candidates", 1)
        self.holdout_share = share("holdout_share")
        self.train_customers = count("train_customers", 1)
        self.min_customers = count("min_customers", 1)
        self.recent = count("recent", 0)
        self.trees = count("trees", 1)
        self.learning_rate = share("learning_rate")
        self.leaves = count("leaves", 2)
        self.min_data_in_leaf = count("min_data_in_leaf", 1)
        self.threads = count("threads", 1)
        self.seed = count("seed", 0)
        if values["split"] not in ("time", "random"):
            raise ValueError(f"{NAME}: split must be time or random")
        if values["train_seen"] not in ("auto", "true", "false"):
            raise ValueError(f"{NAME}: train_seen must be auto, true or false")
        self.category_feature = values["category_feature"]
        plugins = discover(required=self.source_names)
        self._factories = {s: plugins[s].factory for s in self.source_names}
        for s in self.source_names:  # fail at startup, not at the first fit
            self._factories[s](self.source_settings[s])
        self.columns = feature_names(self.source_names)

    # -- fit -------------------------------------------------------------------------------

    def _fit_sources(self, data: TrainingData) -> dict[str, Recommender]:
        sources = {}
        for s in self.source_names:
            model = self._factories[s](self.source_settings[s])
            model.fit(data)
            sources[s] = model
        return sources

    def fit(self, data: TrainingData) -> None:
        booster = self._train(data)
        self._model = _Model(
            self._fit_sources(data), Stats.build(data, self.category_feature), booster
        )

    def _train(self, data: TrainingData) -> lgb.Booster | None:
        if len(data.interactions) < 2:
            return None
        times = np.array([i.time for i in data.interactions])
        if self.settings["split"] == "time":
            # What the customer does next: the latest interactions are the labels.
            cutoff = float(np.quantile(times, 1.0 - self.holdout_share, method="higher"))
            held = times >= cutoff
        else:
            # What is missing from a history with no "next" (ratings): a random share.
            cutoff = data.now or float(times.max())
            held = np.random.default_rng(self.seed).random(times.size) < self.holdout_share
        early = [i for i, h in zip(data.interactions, held.tolist(), strict=True) if not h]
        late = [i for i, h in zip(data.interactions, held.tolist(), strict=True) if h]
        if not early:
            return None
        owned: dict[str, set[str]] = {}
        for i in early:
            owned.setdefault(i.customer_id, set()).add(i.item_id)
        labels: dict[str, set[str]] = {}
        for i in positives(late):
            if i.customer_id in owned:
                labels.setdefault(i.customer_id, set()).add(i.item_id)
        if not labels:
            return None
        repeats = sum(len(items & owned[c]) for c, items in labels.items())
        total = sum(len(items) for items in labels.values())
        filter_seen = {
            "true": True,
            "false": False,
            "auto": repeats < REPEAT_SHARE * total,
        }[self.settings["train_seen"]]
        customers = sorted(labels)
        if len(customers) > self.train_customers:
            rng = np.random.default_rng(self.seed)
            picked = rng.choice(len(customers), size=self.train_customers, replace=False)
            customers = [customers[n] for n in sorted(picked)]
        before = TrainingData(
            interactions=early,
            item_ids=data.item_ids,
            customer_features=data.customer_features,
            item_features=data.item_features,
            now=cutoff,
            shop_id=data.shop_id,
        )
        sources = self._fit_sources(before)
        stats = Stats.build(before, self.category_feature)
        recent: dict[str, list[Interaction]] = {c: [] for c in customers}
        for i in early:
            if i.customer_id in recent:
                recent[i.customer_id].append(i)
        blocks, targets, groups = [], [], []
        for c in customers:
            history = recent[c][-self.recent :] if self.recent else []
            query = RecommendQuery(
                customer_id=c,
                k=self.candidates,
                filter_already_seen=filter_seen,
                recent_interactions=tuple(reversed(history)),
                customer_features=data.customer_features.get(c, {}),
                reasons=False,
                now=cutoff,
            )
            rows, features, _ = self._candidates(sources, stats, query)
            if not rows:
                continue
            hits = np.array([stats.item_ids[r] in labels[c] for r in rows], dtype=np.float64)
            if not hits.any():
                continue  # nothing to learn from this customer's order
            blocks.append(features)
            targets.append(hits)
            groups.append(len(rows))
        if len(groups) < self.min_customers:
            # LambdaRank on a handful of customers learns their noise: fuse the sources instead.
            log.info(
                "ranker: %d labelled customers with a hit among their candidates (fewer than "
                "min_customers=%d); ranking by reciprocal-rank fusion",
                len(groups),
                self.min_customers,
            )
            return None
        train = lgb.Dataset(
            np.vstack(blocks),
            label=np.concatenate(targets),
            group=groups,
            feature_name=self.columns,
            free_raw_data=True,
            params={"verbose": -1},
        )
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": self.learning_rate,
            "num_leaves": self.leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "num_threads": self.threads,
            "seed": self.seed,
            # All else equal, a source's better rank and higher score never hurt: the model
            # learns how much to trust each source, not to invert one.
            "monotone_constraints": [
                -1 if c.endswith("_rank") else 1 if c.endswith("_score") else 0
                for c in self.columns
            ],
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        return lgb.train(params, train, num_boost_round=self.trees)

    # -- serve -----------------------------------------------------------------------------

    def _candidates(
        self, sources: Mapping[str, Recommender], stats: Stats, query: RecommendQuery
    ) -> tuple[list[int], Floats, dict[int, Scored]]:
        """Candidate item rows, their features, and for each the best-ranked source's answer."""
        want = max(self.candidates, query.k)
        asked = RecommendQuery(
            customer_id=query.customer_id,
            k=want,
            exclude_item_ids=query.exclude_item_ids,
            filter_already_seen=query.filter_already_seen,
            recent_interactions=query.recent_interactions,
            customer_features=query.customer_features,
            context=query.context,
            reasons=query.reasons,
            now=query.now,
            seed_item_ids=query.seed_item_ids,
            placement=query.placement,
        )
        per_source: list[dict[int, tuple[int, float]]] = []
        best: dict[int, tuple[int, Scored]] = {}
        for name in self.source_names:
            answer: dict[int, tuple[int, float]] = {}
            left = deadline.remaining()
            if left is None or left > 0:
                try:
                    scored = sources[name].recommend(asked)
                except NotFitted:
                    scored = []
                except Exception:  # a failing source is skipped, as the service's chain does
                    log.exception("ranker: source %r failed", name)
                    scored = []
                for rank, s in enumerate(scored, start=1):
                    r = stats.index.get(s.item_id)
                    if r is None or s.item_id in query.exclude_item_ids or r in answer:
                        continue
                    answer[r] = (rank, s.score)
                    if r not in best or rank < best[r][0]:
                        best[r] = (rank, s)
            per_source.append(answer)
        rows = sorted(best)
        features = stats.rows(query, rows, per_source, want)
        return rows, features, {r: s for r, (_, s) in best.items()}

    def _require(self) -> _Model:
        if self._model is None:
            raise NotFitted(NAME)
        return self._model

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        model = self._require()
        rows, features, origin = self._candidates(model.sources, model.stats, query)
        if not rows:
            return []
        n_sources = len(self.source_names)
        ranks = features[:, 0 : 2 * n_sources : 2]
        fusion = (1.0 / (RRF_K + ranks)).sum(axis=1)
        known = model.stats.history.index.get(query.customer_id) is not None
        if model.booster is not None and (known or query.recent_interactions):
            scores = np.asarray(model.booster.predict(features, num_threads=1), dtype=np.float64)
        else:
            scores = fusion
        order = np.lexsort((np.array(rows), -fusion, -scores))[: query.k]
        result = []
        for m in order:
            s = origin[rows[m]]
            result.append(Scored(s.item_id, float(scores[m]), s.reason, s.because_item_id, s.kind))
        return result

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        """The first source's answer that is not empty, in ``sources`` order."""
        model = self._require()
        for name in self.source_names:
            try:
                answer = model.sources[name].similar_items(query)
            except (NotFitted, Unsupported):
                continue
            if answer:
                return answer[: query.k]
        return []

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        # The features and the sources' candidates read `recent_interactions` at request time.
        raise Unsupported("partial_fit", NAME)

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        raise Unsupported("explain", NAME)

    # -- artifacts -------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        model = self._require()
        for name, source in model.sources.items():
            folder = directory / "sources" / name
            folder.mkdir(parents=True)
            source.save(folder)
        model.stats.save(directory)
        if model.booster is not None:
            (directory / "model.txt").write_text(model.booster.model_to_string())
        (directory / "ranker.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "settings": self.settings,
                    "source_settings": self.source_settings,
                    "columns": self.columns,
                    "trained": model.booster is not None,
                }
            )
        )

    def load(self, directory: Path) -> None:
        meta = json.loads((directory / "ranker.json").read_text())
        if meta.get("format") != 1:
            raise ValueError(f"unknown {NAME} model format {meta.get('format')!r}")
        self._configure(meta["settings"], meta["source_settings"])
        if meta["columns"] != self.columns:
            raise ValueError(f"{NAME}: the saved model's features differ from this version's")
        sources = {}
        for name in self.source_names:
            source = self._factories[name](self.source_settings[name])
            source.load(directory / "sources" / name)
            sources[name] = source
        booster = (
            lgb.Booster(model_str=(directory / "model.txt").read_text())
            if meta["trained"]
            else None
        )
        self._model = _Model(sources, Stats.load(directory), booster)


def create(
    settings: Mapping[str, str],
    source_settings: Mapping[str, Mapping[str, str]] | None = None,
) -> RankerRecommender:
    """Entry point ``ranker``: settings, including ``<source>.<setting>`` for its sources."""
    return RankerRecommender(settings, source_settings)
