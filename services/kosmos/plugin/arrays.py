"""Model arrays saved so that every serving process shares one copy: ``save_arrays`` and
``load_arrays``, for any plugin's ``save`` and ``load``.

``KOSMOS_PROCESSES=N`` runs N serving processes on a machine, and each loads every model. An
array read from a ``.npz`` is a private copy in each of them; an array memory-mapped from a
plain ``.npy`` file is backed by the file's pages in the kernel's page cache, which every
process mapping the file shares: one copy in memory, however many processes serve it. So each
array is written as its own uncompressed ``.npy`` (numpy's format: a short header, then the
raw data) and loaded with ``np.load(path, mmap_mode="r")``.

A loaded array is read-only: writing into it raises ``ValueError``, which is what a model that
shares its arrays between requests (and now between processes) wants. A plugin that must change
one copies it first (``array.copy()``), as copy-on-write updates do anyway. Some libraries only
take writable buffers even where they never write (Cython memoryviews declared without
``const``, as in implicit): `copy_on_write` maps the same file again, writable but private, so
its pages stay shared until something does write one (then only that page is copied, and the
file never changes). Arrays are mapped,
not read: a page is read from disk the first time a request touches it, and stays in the page
cache while any process uses it. Version folders are never changed after they are published
(`kosmos.training.artifacts`), and a mapped file that is deleted (a pruned version) stays
readable until the last process unmaps it, so a map never changes under a request.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SUFFIX = ".npy"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _path(directory: Path, name: str) -> Path:
    if not _NAME.fullmatch(name) or name.endswith(SUFFIX):
        raise ValueError(f"array name {name!r} must be letters, digits, '_', '-' or '.'")
    return directory / f"{name}{SUFFIX}"


def save_arrays(directory: Path, arrays: Mapping[str, npt.ArrayLike]) -> None:
    """Writes each array as ``directory/<name>.npy``, uncompressed and C-contiguous, so that
    `load_arrays` can map it; creates ``directory`` if it is missing.

    Raises:
        ValueError: A name is not a plain file name, or an array holds Python objects (they
            cannot be mapped, and loading them would need pickle).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        array = np.ascontiguousarray(value)
        if array.dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects: it cannot be memory-mapped")
        np.save(_path(directory, name), array, allow_pickle=False)


def load_arrays(
    directory: Path, names: Collection[str] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """The arrays `save_arrays` wrote in ``directory`` (``names``, or every one), each a
    read-only memory map of its file.

    Raises:
        FileNotFoundError: One of ``names`` was not saved there.
        ValueError: A file is not a ``.npy`` array numpy can map.
    """
    if names is None:
        names = sorted(p.name[: -len(SUFFIX)] for p in directory.glob(f"*{SUFFIX}"))
    return {name: _map(_path(directory, name)) for name in names}


def load_arrays_or_npz(directory: Path, npz: Path) -> dict[str, npt.NDArray[Any]]:
    """`load_arrays` of ``directory``; for a version saved before the plugin moved to `save_arrays`
    (``npz`` exists instead), the arrays of that ``.npz``, read into this process's memory.

    Raises:
        FileNotFoundError: Neither is there.
    """
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    if not directory.is_dir():
        raise FileNotFoundError(f"no saved arrays in {directory} (nor {npz.name})")
    return load_arrays(directory)


def _map(path: Path) -> npt.NDArray[Any]:
    array: npt.NDArray[Any] = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.size == 0:
        # Nothing to share, and an empty map is an odd object to hand on: a plain empty array.
        empty = np.empty(array.shape, dtype=array.dtype)
        empty.flags.writeable = False
        return empty
    return array


def copy_on_write(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array`` as a writable array for a library that insists on one: a copy-on-write map of
    the same file when ``array`` is a whole read-only map from `load_arrays` (its pages stay
    shared until written), ``array`` itself when it is writable, else a private copy."""
    if array.flags.writeable:
        return array
    mapped = _mapping(array)
    if (
        mapped is not None
        and mapped.filename is not None
        and mapped.shape == array.shape
        and mapped.dtype == array.dtype
        and mapped.ctypes.data == array.ctypes.data
        and array.flags.c_contiguous
    ):
        return np.memmap(
            mapped.filename, dtype=array.dtype, mode="c", offset=mapped.offset, shape=array.shape
        )
    return np.array(array)  # a plain, private copy


def _mapping(array: npt.NDArray[Any]) -> np.memmap[Any, Any] | None:
    """The memory map of a whole file that ``array`` is (a view into), if any: the memmap
    right above the ``mmap`` object. (A slice of a memmap is a memmap too, but with the
    file offset of the whole.)"""
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap) and isinstance(base.base, mmap.mmap):
            return base
        base = getattr(base, "base", None)
    return None


def is_shared(array: npt.NDArray[Any]) -> bool:
    """Whether ``array`` is (a view into) a read-only memory map, as `load_arrays` gives."""
    return _mapping(array) is not None and not array.flags.writeable
