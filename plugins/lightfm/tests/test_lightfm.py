"""What LightFM adds to the contract: cold start, fast serving that ranks as LightFM does,
settings, registration and persistence."""

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import kosmos_lightfm
import numpy as np
import pytest
from kosmos_lightfm import (
    COLD_REASON,
    FALLBACK_REASON,
    WARM_REASON,
    LightFMRecommender,
    LightFMSettings,
)

from kosmos.plugin import (
    ENTRY_POINT_GROUP,
    Interaction,
    InteractionType,
    RecommendQuery,
    SimilarItemsQuery,
    TrainingData,
    discover,
)
from kosmos.plugin.arrays import is_shared, load_arrays
from kosmos.plugin.testing import (
    GROUP_SIZE,
    ITEMS_PER_GROUP,
    checkerboard,
    customer,
    history,
    item,
    withheld,
)

SETTINGS = LightFMSettings(no_components=8, epochs=20)


def fitted(data=None, **settings):
    model = LightFMRecommender(replace(SETTINGS, **settings), keep_training_state=True)
    model.fit(data or checkerboard())
    return model


def ids(scored):
    return [s.item_id for s in scored]


@pytest.fixture(scope="module")
def model():
    return fitted()


@pytest.mark.parametrize("group", ["a", "b"])
def test_cold_customer_gets_items_of_their_feature_group(model, group):
    result = model.recommend(
        RecommendQuery(
            customer_id="newcomer", k=ITEMS_PER_GROUP, customer_features={"group": group}
        )
    )
    assert len(result) == ITEMS_PER_GROUP
    assert all(i.startswith(f"{group}-") for i in ids(result))
    assert {s.reason for s in result} == {COLD_REASON}


def test_warm_customer_reason(model):
    result = model.recommend(RecommendQuery(customer_id=customer("a", 0), k=3))
    assert result and {s.reason for s in result} == {WARM_REASON}


@pytest.mark.parametrize("features", [{}, {"group": "zzz"}, {"shoe_size": "44"}])
def test_customer_without_known_features_gets_the_mean_customer(model, features):
    result = model.recommend(
        RecommendQuery(customer_id="stranger", k=5, customer_features=features)
    )
    assert len(result) == 5
    assert {s.reason for s in result} == {FALLBACK_REASON}


def test_unknown_feature_values_are_ignored_beside_known_ones(model):
    plain = model.recommend(RecommendQuery("x", k=6, customer_features={"group": "b"}))
    noisy = model.recommend(
        RecommendQuery("x", k=6, customer_features={"group": "b", "shoe_size": "44"})
    )
    assert ids(noisy) == ids(plain)


def test_features_off_serves_cold_customers_the_mean_customer():
    model = fitted(use_features=False)
    result = model.recommend(RecommendQuery("newcomer", k=4, customer_features={"group": "a"}))
    assert len(result) == 4 and {s.reason for s in result} == {FALLBACK_REASON}


def test_cold_item_gets_an_embedding_from_its_features():
    base = checkerboard()
    data = replace(
        base,
        item_ids=[*base.item_ids, "a-new"],
        item_features={**base.item_features, "a-new": {"category": "cat-a", "group": "a"}},
    )
    model = fitted(data)
    for c in range(GROUP_SIZE):
        cid = customer("a", c)
        top = model.recommend(
            RecommendQuery(
                cid, k=2, filter_already_seen=True, recent_interactions=history(data, cid)
            )
        )
        assert set(ids(top)) == {item("a", withheld(c)), "a-new"}, cid
    similar = model.similar_items(SimilarItemsQuery("a-new", k=4))
    assert len(similar) == 4 and all(i.startswith("a-") for i in ids(similar))


def test_item_with_neither_interactions_nor_known_features_is_never_recommended(model):
    # "unsold" has only {"category": "other"}, a value no sold item has: the model knows nothing.
    result = model.recommend(RecommendQuery("newcomer", k=100, customer_features={"group": "a"}))
    assert len(result) == 2 * ITEMS_PER_GROUP and "unsold" not in ids(result)
    assert model.similar_items(SimilarItemsQuery("unsold", k=3)) == []


def test_features_off_serves_only_items_with_interactions():
    model = fitted(use_features=False)
    result = model.recommend(RecommendQuery(customer("a", 0), k=100))
    assert sorted(ids(result)) == sorted(item(g, i) for g in "ab" for i in range(ITEMS_PER_GROUP))


def test_cached_scores_equal_lightfm_predict(model):
    # The fast path must rank exactly as LightFM's own (6-7x slower) predict.
    state = model.training_state
    n = len(state.item_ids)
    for row in (0, 5, len(state.customer_ids) - 1):
        expected = state.model.predict(
            row,
            np.arange(n, dtype=np.int32),
            item_features=state.item_features,
            user_features=state.user_features,
        )
        got = model.recommend(RecommendQuery(state.customer_ids[row], k=n))
        by_id = {s.item_id: s.score for s in got}
        np.testing.assert_allclose(
            [by_id[i] for i in state.item_ids], expected, rtol=1e-5, atol=1e-5
        )
        assert ids(got) == [state.item_ids[j] for j in np.argsort(-expected, kind="stable")]


def test_recent_interactions_and_dismissals_count_as_seen(model):
    data = checkerboard()
    cid = customer("a", 3)
    dismissed = Interaction(cid, item("a", withheld(3)), InteractionType.DISMISS, 0.0, data.now)
    result = model.recommend(
        RecommendQuery(cid, k=100, filter_already_seen=True, recent_interactions=[dismissed])
    )
    assert item("a", withheld(3)) not in ids(result)
    assert not {i.item_id for i in history(data, cid)} & set(ids(result))
    assert len(result) == ITEMS_PER_GROUP  # the B items remain


def test_non_positive_weights_are_not_trained_on_but_are_seen():
    base = checkerboard()
    dismiss = [
        Interaction("picky", item("a", i), InteractionType.DISMISS, 0.0, base.now) for i in (0, 1)
    ]
    data = replace(base, interactions=[*base.interactions, *dismiss])
    model = fitted(data)
    assert model.training_state and "picky" not in model.training_state.customer_ids
    result = model.recommend(RecommendQuery("picky", k=100, filter_already_seen=True))
    assert {item("a", 0), item("a", 1)}.isdisjoint(ids(result))
    assert {s.reason for s in result} == {FALLBACK_REASON}


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic", "warp-kos"])
def test_every_loss_fits_and_answers(loss):
    model = fitted(loss=loss, epochs=3)
    assert len(model.recommend(RecommendQuery(customer("b", 2), k=3))) == 3
    if loss == "warp-kos":
        assert model.training_state.sample_weight is None  # k-OS takes no sample weights
    else:
        assert model.training_state.sample_weight is not None


def test_weights_are_scaled_to_mean_one():
    base = checkerboard()
    heavy = [replace(i, weight=5.0) for i in base.interactions[::3]]
    model = fitted(replace(base, interactions=[*base.interactions, *heavy]))
    weights = model.training_state.sample_weight.data
    assert weights.mean() == pytest.approx(1.0) and weights.max() > weights.min()


def test_no_positive_interaction_means_nothing_to_say():
    data = TrainingData(
        interactions=[Interaction("c", "i", InteractionType.DISMISS, 0.0, 1.0)], item_ids=["i"]
    )
    model = fitted(data)
    assert model.recommend(RecommendQuery("c", k=3)) == []
    assert model.similar_items(SimilarItemsQuery("i", k=3)) == []


def test_recommend_from_many_threads(model):
    queries = [
        RecommendQuery(customer(g, c), k=5, customer_features={"group": g})
        for g in "ab"
        for c in range(GROUP_SIZE + 4)  # some of them cold
    ] * 20
    serial = [ids(model.recommend(q)) for q in queries]
    with ThreadPoolExecutor(8) as pool:
        parallel = [ids(r) for r in pool.map(model.recommend, queries)]
    assert parallel == serial


def test_loaded_model_ranks_cold_customers_identically(model, tmp_path):
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightfm.arrays", "lightfm.json"]
    loaded = kosmos_lightfm.create({})
    loaded.load(tmp_path)
    assert loaded.settings == model.settings
    for features in ({"group": "a"}, {"group": "b"}, {}):
        q = RecommendQuery("newcomer", k=10, customer_features=features)
        assert loaded.recommend(q) == model.recommend(q)


def test_load_rejects_an_unknown_format(model, tmp_path):
    model.save(tmp_path)
    meta = tmp_path / "lightfm.json"
    meta.write_text(meta.read_text().replace('"format": 2', '"format": 99'))
    with pytest.raises(ValueError, match="format"):
        kosmos_lightfm.create({}).load(tmp_path)


SERVING_ARRAYS = ("items", "users", "item_unit", "item_inv_norm", "seen_indices", "user_features")


def test_loaded_arrays_are_shared_read_only_maps(model, tmp_path):
    model.save(tmp_path)
    loaded = kosmos_lightfm.create({})
    loaded.load(tmp_path)
    for name in SERVING_ARRAYS:
        array = getattr(loaded._model, name)
        assert is_shared(array), name  # a read-only map of the saved file: no private copy
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 0
    for name in SERVING_ARRAYS:  # the fitted model owns private arrays
        assert not is_shared(getattr(model._model, name)), name


def test_a_format_1_npz_version_still_loads_and_ranks_alike(model, tmp_path):
    model.save(tmp_path)
    # What the previous version wrote: the arrays it had in one lightfm.npz, format 1.
    arrays = load_arrays(tmp_path / "lightfm.arrays")
    old = ("items", "users", "user_bias", "seen_indptr", "seen_indices", "user_features")
    old += ("user_feature_bias", "user_identity_mean", "fallback")
    np.savez(tmp_path / "lightfm.npz", **{name: np.array(arrays[name]) for name in old})
    shutil.rmtree(tmp_path / "lightfm.arrays")
    meta = tmp_path / "lightfm.json"
    meta.write_text(meta.read_text().replace('"format": 2', '"format": 1'))
    loaded = kosmos_lightfm.create({})
    loaded.load(tmp_path)
    assert not is_shared(loaded._model.items)
    for c in (customer("a", 0), customer("b", 2), "newcomer"):
        q = RecommendQuery(c, k=10, customer_features={"group": "a"}, reasons=True)
        assert loaded.recommend(q) == model.recommend(q)
    sq = SimilarItemsQuery(item("b", 1), k=5)
    assert loaded.similar_items(sq) == model.similar_items(sq)


def test_entry_point_is_registered():
    plugins = discover(required=["lightfm"])
    assert plugins["lightfm"].factory is kosmos_lightfm.create
    assert plugins["lightfm"].distribution == "kosmos-lightfm"
    assert ENTRY_POINT_GROUP == "kosmos.recommenders"


def test_settings_are_parsed_from_strings():
    model = kosmos_lightfm.create(
        {
            "loss": "BPR",
            "no_components": "16",
            "epochs": "5",
            "learning_rate": "0.1",
            "item_alpha": "1e-6",
            "user_alpha": "0",
            "max_sampled": "20",
            "random_state": "7",
            "num_threads": "2",
            "use_features": "false",
        }
    )
    assert model.settings == LightFMSettings(
        loss="bpr", no_components=16, epochs=5, learning_rate=0.1, item_alpha=1e-6,
        max_sampled=20, random_state=7, num_threads=2, use_features=False,
    )  # fmt: skip
    assert kosmos_lightfm.create({}).settings == LightFMSettings()


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="no_component"):
        kosmos_lightfm.create({"no_component": "8", "epochs": "3"})


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("loss", "hinge"),
        ("epochs", "0"),
        ("epochs", "ten"),
        ("no_components", "-1"),
        ("learning_rate", "0"),
        ("item_alpha", "-0.1"),
        ("use_features", "maybe"),
        ("num_threads", "0"),
    ],
)
def test_bad_setting_value_is_rejected_naming_it(setting, value):
    with pytest.raises(ValueError, match=setting):
        kosmos_lightfm.create({setting: value})
