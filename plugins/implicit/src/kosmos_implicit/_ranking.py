"""Top-k over a dense score vector: one argpartition, then a sort of the k survivors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from kosmos.plugin import Scored

Scores = npt.NDArray[np.floating]


def columns(items: Mapping[str, int], item_ids: Iterable[str]) -> list[int]:
    """The columns of the known ``item_ids``; unknown ids are skipped."""
    return [c for c in map(items.get, item_ids) if c is not None]


def top_k(
    scores: Scores, k: int, item_ids: tuple[str, ...], reason: str, floor: float = -np.inf
) -> list[Scored]:
    """The ``k`` best items of ``scores``, best first, leaving out those scored ``<= floor``.

    ``scores`` is the caller's own array: exclusions arrive as ``-inf`` in it. Equal scores
    are ordered by column, so a saved and a loaded model rank alike.
    """
    n = scores.size
    if k <= 0 or n == 0:
        return []
    if k < n:
        # Every column tied with the k-th best stays in, so that ties are broken by column
        # below and the top k is the prefix of the top 2k (stable pages, issue 13).
        bound = scores[np.argpartition(scores, n - k)[n - k]]
        candidates = np.flatnonzero(scores >= bound)
    else:
        candidates = np.arange(n)
    values = scores[candidates]
    order = np.lexsort((candidates, -values))
    return [
        Scored(item_ids[c], v, reason)
        for c, v in zip(candidates[order].tolist(), values[order].tolist(), strict=True)
        if v > floor
    ]
