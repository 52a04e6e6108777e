"""Saved versions: arrays memory-mapped read-only on load (shared by the serving processes of a
machine), rankings identical to the saved model's, and format 1 (one ``.npz``) still loads."""

import hashlib
import json
import shutil

import kosmos_implicit
import numpy as np
import pytest
from kosmos_implicit._common import ARRAYS_DIR, ARRAYS_FILE, META_FILE

from kosmos.plugin import (
    ExplainQuery,
    Interaction,
    InteractionType,
    RecommendQuery,
    SimilarItemsQuery,
)
from kosmos.plugin.arrays import is_shared, load_arrays
from kosmos.plugin.testing import checkerboard, history

FACTORIES = {
    "als": lambda: kosmos_implicit.create_als({"factors": "16"}),
    "bpr": lambda: kosmos_implicit.create_bpr({"factors": "16"}),
    "cosine": lambda: kosmos_implicit.create_item_item({"similarity": "cosine"}),
    "bm25": lambda: kosmos_implicit.create_item_item({"similarity": "bm25"}),
}


@pytest.fixture(scope="module")
def data():
    return checkerboard()


@pytest.fixture(params=sorted(FACTORIES))
def kind(request):
    return request.param


@pytest.fixture
def model(kind, data):
    m = FACTORIES[kind]()
    m.fit(data)
    return m


def load(kind, folder):
    m = FACTORIES[kind]()
    m.load(folder)
    return m


def served_arrays(model):
    """The large arrays a request reads."""
    state = model._state
    m = state.matrix
    common = {
        "user_items.data": m.user_items.data,
        "user_items.indices": m.user_items.indices,
        "user_items.indptr": m.user_items.indptr,
        "folded_until": m.folded_until,
    }
    if hasattr(state, "item_factors"):
        return {
            **common,
            "user_factors": state.user_factors,
            "item_factors": state.item_factors,
            "item_unit": state.item_unit,
        }
    return {
        **common,
        "similarity.data": state.similarity.data,
        "similarity.indices": state.similarity.indices,
        "similar_to.data": state.similar_to.data,
        "similar_to.indices": state.similar_to.indices,
    }


def queries(data):
    recent = history(data, "a-c1")
    later = Interaction("a-c1", "b-i7", InteractionType.PURCHASE, 1.0, data.now + 60)
    return [
        RecommendQuery("a-c0", k=6),
        RecommendQuery("b-c5", k=6, filter_already_seen=True),
        RecommendQuery(
            "a-c1",
            k=8,
            recent_interactions=[later, *recent],
            exclude_item_ids=frozenset({"a-i2"}),
            filter_already_seen=True,
            reasons=True,
        ),
        RecommendQuery("newcomer", k=4, recent_interactions=[later]),
    ]


def answers(model, data):
    out = [model.recommend(q) for q in queries(data)]
    out.append(model.similar_items(SimilarItemsQuery("a-i2", k=5)))
    if model.capabilities.explain:
        out.append(model.explain(ExplainQuery("a-c1", "a-i1", history(data, "a-c1"))))
    return out


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_loaded_arrays_are_read_only_maps_of_the_saved_files(kind, model, tmp_path):
    model.save(tmp_path)
    assert (tmp_path / ARRAYS_DIR).is_dir() and not (tmp_path / ARRAYS_FILE).exists()
    loaded = load(kind, tmp_path)
    for name, array in served_arrays(loaded).items():
        assert is_shared(array), name  # no private copy: the page cache's pages, shared
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    for name, array in served_arrays(model).items():  # a fitted model owns its arrays
        assert not is_shared(array), name
    if kind == "als":  # implicit takes writable buffers only: a copy-on-write map, shared
        given = loaded._state.als.item_factors
        assert isinstance(given, np.memmap) and given.flags.writeable and given.mode == "c"


def test_a_loaded_model_serves_what_the_saved_one_does(kind, model, data, tmp_path):
    model.save(tmp_path)
    assert answers(load(kind, tmp_path), data) == answers(model, data)


def test_partial_fit_on_a_loaded_model_leaves_the_files_alone(kind, model, data, tmp_path):
    if not model.capabilities.partial_fit:
        pytest.skip("no partial_fit")
    model.save(tmp_path)
    before = digest(tmp_path)
    loaded = load(kind, tmp_path)
    burst = [
        Interaction("a-c6", f"b-i{n}", InteractionType.PURCHASE, 1.0, data.now + 60 * (n + 1))
        for n in range(4)
    ] + [Interaction("newcomer", "a-i1", InteractionType.PURCHASE, 1.0, data.now + 600)]
    loaded.partial_fit(burst)
    model.partial_fit(burst)
    assert answers(loaded, data) == answers(model, data)
    assert digest(tmp_path) == before
    # Another process loading the version now gets the version as saved.
    assert answers(load(kind, tmp_path), data) != answers(loaded, data)


def to_format_1(folder):
    """Rewrites a saved version as the previous release wrote it: one ``.npz`` of the arrays it
    had (no saved ``item_unit`` or ``similar_to``), format 1."""
    arrays = load_arrays(folder / ARRAYS_DIR)
    new = {"item_unit", "similar_to_data", "similar_to_indices", "similar_to_indptr"}
    old = {name: np.array(a) for name, a in arrays.items() if name not in new}
    with (folder / ARRAYS_FILE).open("wb") as f:
        np.savez(f, **old)
    shutil.rmtree(folder / ARRAYS_DIR)
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "format": 1}))


def test_a_format_1_version_still_loads_and_serves_alike(kind, model, data, tmp_path):
    model.save(tmp_path)
    to_format_1(tmp_path)
    loaded = load(kind, tmp_path)
    assert not any(is_shared(a) for a in served_arrays(loaded).values())
    assert answers(loaded, data) == answers(model, data)


def test_an_unknown_format_is_refused(model, kind, tmp_path):
    model.save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps({**meta, "format": 3}))
    with pytest.raises(ValueError, match="format 3"):
        load(kind, tmp_path)


def test_the_saved_ann_index_columns_are_mapped(data, tmp_path):
    model = kosmos_implicit.create_als({"ann_min_items": "1"})
    model.fit(data)
    model.save(tmp_path)
    loaded = kosmos_implicit.create_als({"ann_min_items": "1"})
    loaded.load(tmp_path)
    index = loaded._state.index
    assert index is not None and is_shared(index._tail) and is_shared(index._head)
    q = RecommendQuery("a-c3", k=5, filter_already_seen=True)
    assert loaded.recommend(q) == model.recommend(q)
