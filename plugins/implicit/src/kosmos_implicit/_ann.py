"""An approximate nearest-neighbour index over item factors, for catalogs too large to score
whole on every request (issue 12).

Inner-product search over learned ALS factors is hard for graph indexes alone: the norms differ
widely (popular items have long vectors), so the best items for a customer are mostly among
the few longest vectors, which a graph built for nearness does not favour. faiss's HNSW graph
alone reached recall@10 0.80 at 10k items and 0.54 at 53k live items (``efSearch`` 128); the
MIPS-to-L2 transform did worse. So the index is two parts:

- the **head**: the ``head_fraction`` (2%) of live items with the longest factor vectors, scored
  exactly on every request (one small matrix-vector product), and
- the **tail**: every other live item in faiss's ``IndexHNSWFlat`` (inner product), searched
  for the best ``want``.

Both parts' candidates are then scored exactly by the caller. On the same factors the two-part
index's recall@10 was 0.99-1.0 at 10k and 53k live items (``tools/bench_catalog.py``; the
README's Benchmarks), at a fraction of the full scan's cost. faiss (Meta's library) was chosen
over usearch by measurement: on random factors both answered in about 1% of the exact scan's
time, and faiss had the higher recall@10 (0.96-0.99 against 0.94-0.98).

The index holds only live items (interacted with at fit time); a request asks it for ``k`` plus
as many items as it must leave out, scores those exactly, and falls back to the full scan when
too few remain.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# faiss says at INFO which CPU build it loads, on every process that first builds or loads an
# index: news to nobody running a trainer or a replica.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

INDEX_FILE = "items.faiss"
COLUMNS_FILE = "items.faiss.columns.npy"
HEAD_FILE = "items.faiss.head.npy"
# The share of live items, longest vectors first, scored exactly on every request; at least
# `_MIN_HEAD` of them (or all, in a smaller catalog).
HEAD_FRACTION = 0.02
_MIN_HEAD = 256
# HNSW graph degree and build effort: faiss's usual values for recall above 0.95.
_M = 32
_EF_CONSTRUCTION = 80


class ItemIndex:
    """The longest live item vectors scored exactly (the head) and faiss ``IndexHNSWFlat``
    over the other live items (the tail), searched for the largest inner product."""

    def __init__(
        self,
        index: Any,
        tail: npt.NDArray[np.int64],
        head: npt.NDArray[np.int64],
        item_factors: npt.NDArray[np.float32],
        ef_search: int,
    ) -> None:
        self._index = index
        self._tail = tail  # index position -> matrix column
        self._head = head  # matrix columns scored exactly
        self._head_factors = np.ascontiguousarray(item_factors[head], dtype=np.float32)
        self.columns = np.concatenate([head, tail])  # every indexed column
        self.ef_search = ef_search

    @classmethod
    def build(
        cls, item_factors: npt.NDArray[np.float32], live: npt.NDArray[np.int64], ef_search: int
    ) -> ItemIndex:
        import faiss  # noqa: PLC0415 (only for catalogs large enough to need it)

        live = live.astype(np.int64)
        norms = np.linalg.norm(item_factors[live], axis=1)
        size = min(live.size, max(_MIN_HEAD, int(live.size * HEAD_FRACTION)))
        longest = np.argsort(-norms, kind="stable")
        head, tail = np.sort(live[longest[:size]]), np.sort(live[longest[size:]])
        index = faiss.IndexHNSWFlat(item_factors.shape[1], _M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = _EF_CONSTRUCTION
        if tail.size:
            index.add(np.ascontiguousarray(item_factors[tail], dtype=np.float32))
        return cls(index, tail, head, item_factors, ef_search)

    def candidates(self, vector: npt.NDArray[np.float32], want: int) -> npt.NDArray[np.int64]:
        """The matrix columns of about the ``want`` best items for ``vector`` in the head and
        in the tail (disjoint), unordered."""
        import faiss  # noqa: PLC0415

        parts = []
        if self._head.size:
            scores = self._head_factors @ vector
            if want < scores.size:
                parts.append(self._head[np.argpartition(-scores, want - 1)[:want]])
            else:
                parts.append(self._head)
        if self._tail.size:
            # Per call, not on the index: concurrent requests share it. (faiss's bundled stubs
            # miss this SWIG class.)
            tail_want = min(want, self._tail.size)
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, tail_want))  # type: ignore[attr-defined]
            query = vector.reshape(1, -1).astype(np.float32)
            _, found = self._index.search(query, tail_want, params=params)
            positions: npt.NDArray[np.int64] = found[0]
            parts.append(self._tail[positions[positions >= 0]])
        columns: npt.NDArray[np.int64] = np.concatenate(parts) if parts else self._head
        return columns

    def save(self, directory: Path) -> None:
        import faiss  # noqa: PLC0415

        faiss.write_index(self._index, str(directory / INDEX_FILE))
        np.save(directory / COLUMNS_FILE, self._tail)
        np.save(directory / HEAD_FILE, self._head)

    @classmethod
    def load(
        cls, directory: Path, ef_search: int, item_factors: npt.NDArray[np.float32]
    ) -> ItemIndex | None:
        """The saved index, or None when the version was saved without one (or without its
        head: then it is built again)."""
        if not (directory / INDEX_FILE).exists() or not (directory / HEAD_FILE).exists():
            return None
        import faiss  # noqa: PLC0415

        # The graph and vectors are read into this process: faiss 1.15's IO_FLAG_MMAP and
        # IO_FLAG_MMAP_IFC load an IndexHNSWFlat as private memory all the same (measured:
        # tools/bench_memory_share.py). The column maps are mapped and shared.
        index = faiss.read_index(str(directory / INDEX_FILE))
        tail = np.load(directory / COLUMNS_FILE, mmap_mode="r")
        head = np.load(directory / HEAD_FILE, mmap_mode="r")
        return cls(index, tail, head, item_factors, ef_search)
