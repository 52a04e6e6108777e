"""Help for plugins to say which past item explains a recommendation.

Factor models know item vectors but not item titles; the core knows titles. A plugin finds,
for each recommended item, the customer's recent item it most resembles and returns its id in
`Scored.because_item_id`; the core renders "Because you viewed <title>".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

NONE = -1


def closest_history(
    candidates: npt.NDArray[np.floating],
    history: npt.NDArray[np.floating],
    candidate_keys: Sequence[int] = (),
    history_keys: Sequence[int] = (),
    *,
    unit: bool = False,
) -> list[int]:
    """For each candidate vector, the index of the most similar history vector.

    Both arrays hold one vector per row. Cosine similarity is used; pass ``unit=True`` when the
    rows are already unit length (the fast path: one matrix product). With keys (item
    columns), an item never explains itself. A candidate with no positively similar history
    item gets `NONE` (-1). This runs on the request path: a handful of numpy calls in all.
    """
    if not len(candidates) or not len(history):
        return [NONE] * len(candidates)
    if not unit:
        candidates = candidates / np.maximum(
            np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12
        )
        history = history / np.maximum(np.linalg.norm(history, axis=1, keepdims=True), 1e-12)
    similarity = candidates @ history.T
    if len(candidate_keys) and len(history_keys):
        where = {key: n for n, key in enumerate(history_keys)}
        for row, key in enumerate(candidate_keys):
            column = where.get(key)
            if column is not None:
                similarity[row, column] = -np.inf
    best = similarity.argmax(axis=1).tolist()
    values = similarity.max(axis=1).tolist()
    return [b if v > 0 else NONE for b, v in zip(best, values, strict=True)]
