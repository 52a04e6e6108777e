"""The figures a model version carries: how well a model fitted the same way ranks what the
shop's customers did next.

The trainer cuts the shop's history at the ``1 - share`` quantile of event time, fits a fresh
instance of the recommender (same plugin, same settings) on the part before, and asks it, for
up to ``customers`` of the customers active after the cut, for their top ``k`` at the cut's
time, as the service would (latest interactions, features, ``now``). It then scores the answers
against what each customer interacted with after the cut (NDCG, precision, recall at ``k``).
The published model is the one fitted on everything; these figures describe its recipe on the
shop's own, most recent data, so an operator can compare versions (`ModelService`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from kosmos.plugin import Interaction, LoadedPlugin, RecommendQuery, TrainingData

__all__ = ["holdout_metrics"]

RECENT = 25
"""Latest interactions per query, as the service's ``KOSMOS_RECENT_INTERACTIONS``."""


def holdout_metrics(
    plugin: LoadedPlugin,
    settings: Mapping[str, str],
    data: TrainingData,
    *,
    share: float = 0.1,
    customers: int = 300,
    k: int = 10,
) -> dict[str, float]:
    """``ndcg@k``, ``precision@k``, ``recall@k`` and ``holdout_customers``; empty when the
    history is too short to cut (fewer than 20 interactions, or no customer on both sides)."""
    # Imported here: kosmos.evaluation serves through the recommendation package, which
    # imports the trainer's artifacts (a cycle at import time, not at call time).
    from kosmos.evaluation.metrics import ndcg_at_k, precision_at_k, recall_at_k  # noqa: PLC0415

    rows = sorted(data.interactions, key=lambda i: i.time)
    if len(rows) < 20 or not 0.0 < share < 1.0:
        return {}
    cut = rows[int(len(rows) * (1.0 - share))].time
    train = [i for i in rows if i.time < cut]
    later: dict[str, set[str]] = {}
    for i in rows:
        if i.time >= cut and i.weight > 0:
            later.setdefault(i.customer_id, set()).add(i.item_id)
    history: dict[str, list[Interaction]] = {}
    for i in train:
        history.setdefault(i.customer_id, []).append(i)
    tested = sorted(c for c in later if c in history)[:customers]
    if not train or not tested:
        return {}
    model = plugin.factory(dict(settings))
    model.fit(dataclasses.replace(data, interactions=train, now=cut))
    ndcg = precision = recall = 0.0
    for customer in tested:
        query = RecommendQuery(
            customer_id=customer,
            k=k,
            recent_interactions=tuple(reversed(history[customer][-RECENT:])),
            customer_features=data.customer_features.get(customer, {}),
            reasons=False,
            now=cut,
        )
        ranked = [s.item_id for s in model.recommend(query)][:k]
        relevant = frozenset(later[customer])
        ndcg += ndcg_at_k(ranked, relevant, k)
        precision += precision_at_k(ranked, relevant, k)
        recall += recall_at_k(ranked, relevant, k)
    n = len(tested)
    return {
        f"ndcg@{k}": ndcg / n,
        f"precision@{k}": precision / n,
        f"recall@{k}": recall / n,
        "holdout_customers": float(n),
    }
