"""kosmos.plugin.arrays: arrays saved as .npy files, loaded as read-only memory maps."""

import numpy as np
import pytest

from kosmos.plugin.arrays import (
    copy_on_write,
    is_shared,
    load_arrays,
    load_arrays_or_npz,
    save_arrays,
)


def test_arrays_round_trip_as_read_only_maps(tmp_path):
    saved = {
        "factors": np.arange(24, dtype=np.float32).reshape(6, 4),
        "columns": np.array([3, 1, 2], dtype=np.int64),
        "transposed": np.arange(6.0).reshape(2, 3).T,  # not C-contiguous: saved as one
        "none": np.zeros((0, 4), dtype=np.float32),
    }
    save_arrays(tmp_path / "arrays", saved)
    assert sorted(p.name for p in (tmp_path / "arrays").iterdir()) == [
        "columns.npy",
        "factors.npy",
        "none.npy",
        "transposed.npy",
    ]
    loaded = load_arrays(tmp_path / "arrays")
    assert sorted(loaded) == sorted(saved)
    for name, array in saved.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
        assert not loaded[name].flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            loaded[name][...] = 1
    assert is_shared(loaded["factors"]) and is_shared(loaded["factors"][2:])
    assert not is_shared(saved["factors"]) and not is_shared(np.array(loaded["factors"]))
    assert list(load_arrays(tmp_path / "arrays", ["columns"])) == ["columns"]


def test_copy_on_write_is_writable_and_never_changes_the_file(tmp_path):
    save_arrays(tmp_path, {"a": np.ones((3, 2), dtype=np.float32)})
    shared = load_arrays(tmp_path)["a"]
    writable = copy_on_write(shared)
    assert writable.flags.writeable and isinstance(writable, np.memmap)
    writable[0, 0] = 7.0
    assert shared[0, 0] == 1.0 and load_arrays(tmp_path)["a"][0, 0] == 1.0
    save_arrays(tmp_path, {"b": np.arange(6, dtype=np.float32).reshape(3, 2)})
    rows = load_arrays(tmp_path)["b"][1:]
    part = copy_on_write(rows)  # not the whole map: a private copy of just that part
    assert part.flags.writeable and not isinstance(part, np.memmap)
    np.testing.assert_array_equal(part, [[2, 3], [4, 5]])
    own = np.zeros(3)
    assert copy_on_write(own) is own


@pytest.mark.parametrize("name", ["../up", "a/b", "", "x.npy", ".hidden"])
def test_names_must_be_plain_file_names(tmp_path, name):
    with pytest.raises(ValueError, match="array name"):
        save_arrays(tmp_path, {name: np.zeros(2)})


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Python objects"):
        save_arrays(tmp_path, {"ids": np.array(["a", None], dtype=object)})


def test_a_missing_array_is_a_clear_error(tmp_path):
    save_arrays(tmp_path, {"a": np.zeros(2)})
    with pytest.raises(FileNotFoundError):
        load_arrays(tmp_path, ["b"])


def test_a_version_saved_as_npz_still_loads_into_memory(tmp_path):
    np.savez(tmp_path / "old.npz", a=np.arange(3))
    old = load_arrays_or_npz(tmp_path / "old.arrays", tmp_path / "old.npz")
    np.testing.assert_array_equal(old["a"], [0, 1, 2])
    assert not is_shared(old["a"])
    save_arrays(tmp_path / "new.arrays", {"a": np.arange(3)})
    new = load_arrays_or_npz(tmp_path / "new.arrays", tmp_path / "new.npz")
    assert is_shared(new["a"])
    with pytest.raises(FileNotFoundError, match="no saved arrays"):
        load_arrays_or_npz(tmp_path / "none.arrays", tmp_path / "none.npz")
