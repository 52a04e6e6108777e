"""What the three models share: BLAS threads, persistence, and the shopper-facing reasons.

Format 2 (this version) writes every array as its own ``.npy`` under ``kosmos_implicit.arrays/``
(`kosmos.plugin.arrays`), which loading maps read-only, so the serving processes of one machine
share one copy. Format 1 (one ``kosmos_implicit.npz``, read into each process) still loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import threadpoolctl  # type: ignore[import-untyped]

from kosmos.plugin.arrays import load_arrays, save_arrays
from kosmos_implicit._matrix import Matrix

FORMAT = 2
FORMATS = (1, 2)  # what `load_model` reads
META_FILE = "kosmos_implicit.json"
ARRAYS_DIR = "kosmos_implicit.arrays"  # format 2: one memory-mappable .npy per array
ARRAYS_FILE = "kosmos_implicit.npz"  # format 1

REASON_TASTE = "Picked for your taste"
REASON_RECENT = "Picked with your latest activity in mind"
REASON_NEIGHBOURS = "Goes well with items you've chosen"
REASON_SIMILAR = "Often chosen together with this item"


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limits BLAS to one thread while implicit fits.

    implicit runs its own threads; a multi-threaded OpenBLAS under them oversubscribes the cores
    and is many times slower. implicit warns about it when a model is built, so models are built
    (and fitted) inside this block: the cause is removed, not the warning silenced.
    """
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def save_model(
    directory: Path,
    model: str,
    settings: Mapping[str, Any],
    matrix: Matrix,
    arrays: Mapping[str, npt.NDArray[Any]],
) -> None:
    """Writes the id maps and settings as JSON and every array as a mappable ``.npy``."""
    meta = {"format": FORMAT, "model": model, "settings": dict(settings), **matrix.ids()}
    save_arrays(directory / ARRAYS_DIR, {**matrix.arrays(), **arrays})
    (directory / META_FILE).write_text(json.dumps(meta))


def load_model(
    directory: Path, model: str
) -> tuple[dict[str, Any], Matrix, dict[str, npt.NDArray[Any]]]:
    """Reads what `save_model` wrote: settings, matrix and the model's own arrays (read-only
    memory maps; format 1's ``.npz`` is read into memory).

    Raises:
        ValueError: The directory holds another model, or a format this version cannot read.
    """
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("format") not in FORMATS:
        raise ValueError(f"unknown kosmos-implicit model format {meta.get('format')!r}")
    if meta.get("model") != model:
        raise ValueError(f"{directory} holds a {meta.get('model')!r} model, not {model!r}")
    arrays: dict[str, npt.NDArray[Any]]
    if meta["format"] == 1:
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    else:
        arrays = load_arrays(directory / ARRAYS_DIR)
    return dict(meta["settings"]), Matrix.restore(meta, arrays), arrays
