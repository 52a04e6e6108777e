"""Offline evaluation (``kosmos evaluate``): data sets, splits, metrics, and a runner that goes
through the same plugin factories and chain logic as the service.

The core stays free of recommender libraries: recommenders are found by entry point.
"""

from kosmos.evaluation.datasets import (
    DataNotFound,
    Dataset,
    movielens_100k,
    online_retail,
    synthetic,
)
from kosmos.evaluation.metrics import (
    catalog_coverage,
    dcg_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from kosmos.evaluation.runner import (
    POPULATIONS,
    RECENT_INTERACTIONS,
    Evaluation,
    Result,
    Scores,
    build_queries,
    evaluate,
    markdown_table,
    results_table,
    score,
    training_data,
)
from kosmos.evaluation.split import (
    ONLINE_RETAIL_CUTOFF,
    Split,
    positive,
    quantile_cutoff,
    random_split,
    temporal_split,
)

__all__ = [
    "ONLINE_RETAIL_CUTOFF",
    "POPULATIONS",
    "RECENT_INTERACTIONS",
    "DataNotFound",
    "Dataset",
    "Evaluation",
    "Result",
    "Scores",
    "Split",
    "build_queries",
    "catalog_coverage",
    "dcg_at_k",
    "evaluate",
    "markdown_table",
    "movielens_100k",
    "ndcg_at_k",
    "online_retail",
    "positive",
    "precision_at_k",
    "quantile_cutoff",
    "random_split",
    "recall_at_k",
    "results_table",
    "score",
    "synthetic",
    "temporal_split",
    "training_data",
]
