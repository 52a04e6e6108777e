"""Top-k ranking metrics with binary relevance: pure functions over item ids.

For one customer, ``ranked`` is what a recommender returned (best first) and ``relevant`` what
they went on to choose. Only the first ``k`` of ``ranked`` count; a shorter list simply scores
what it has (precision still divides by ``k``: an empty slot is a miss).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

__all__ = ["catalog_coverage", "dcg_at_k", "ndcg_at_k", "precision_at_k", "recall_at_k"]


def _check(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")


def _hits(ranked: Sequence[str], relevant: Collection[str], k: int) -> int:
    return sum(1 for item in ranked[:k] if item in relevant)


def precision_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant items among the first ``k``, divided by ``k``."""
    _check(k)
    return _hits(ranked, relevant, k) / k


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Relevant items among the first ``k``, divided by all relevant items (0 when none)."""
    _check(k)
    return _hits(ranked, relevant, k) / len(relevant) if relevant else 0.0


def dcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Discounted cumulative gain: each hit at rank r (1-based) adds 1 / log2(r + 1)."""
    _check(k)
    return sum(1.0 / math.log2(r + 2) for r, item in enumerate(ranked[:k]) if item in relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """DCG over the ideal DCG, whose hits fill the first min(|relevant|, k) ranks; 0 when
    nothing is relevant."""
    _check(k)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return dcg_at_k(ranked, relevant, k) / ideal if ideal else 0.0


def catalog_coverage(rankings: Iterable[Sequence[str]], catalog_size: int, k: int) -> float:
    """The share of the catalog that appears in at least one customer's first ``k``."""
    _check(k)
    if catalog_size < 1:
        raise ValueError(f"catalog_size must be at least 1, not {catalog_size}")
    shown: set[str] = set()
    for ranked in rankings:
        shown.update(ranked[:k])
    return len(shown) / catalog_size
