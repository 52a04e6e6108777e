"""Registration and settings: what the core sees before any model is fitted."""

from importlib.metadata import entry_points

import kosmos_implicit
import pytest

from kosmos.plugin import (
    Interaction,
    InteractionType,
    Recommender,
    RecommendQuery,
    SimilarItemsQuery,
    TrainingData,
    discover,
)


def test_entry_points_are_registered():
    # Needs `pip install -e plugins/implicit`: the core finds these only through metadata.
    found = {ep.name: ep for ep in entry_points(group="kosmos.recommenders")}
    assert {"als", "bpr", "item_item"} <= set(found)
    assert found["als"].value == "kosmos_implicit:create_als"
    assert found["bpr"].value == "kosmos_implicit:create_bpr"
    assert found["item_item"].value == "kosmos_implicit:create_item_item"
    assert found["als"].dist is not None and found["als"].dist.name == "kosmos-implicit"


def test_the_registry_loads_them_and_they_build():
    plugins = discover(required=["als", "bpr", "item_item"])
    for name in ("als", "bpr", "item_item"):
        assert plugins[name].distribution == "kosmos-implicit"
        assert isinstance(plugins[name].factory({}), Recommender)


@pytest.mark.parametrize(
    ("factory", "settings", "named"),
    [
        (kosmos_implicit.create_als, {"factors": "8", "learning_rate": "0.1"}, "learning_rate"),
        (kosmos_implicit.create_bpr, {"alpha": "2", "factorz": "3"}, "factorz"),
        (kosmos_implicit.create_item_item, {"random_state": "1"}, "random_state"),
    ],
)
def test_unknown_settings_are_rejected_by_name(factory, settings, named):
    with pytest.raises(ValueError, match=named):
        factory(settings)


@pytest.mark.parametrize(
    ("factory", "settings", "named"),
    [
        (kosmos_implicit.create_als, {"factors": "0"}, "factors"),
        (kosmos_implicit.create_als, {"alpha": "lots"}, "alpha"),
        (kosmos_implicit.create_bpr, {"learning_rate": "-1"}, "learning_rate"),
        (kosmos_implicit.create_item_item, {"similarity": "jaccard"}, "similarity"),
        (kosmos_implicit.create_item_item, {"b": "1.5"}, "b"),
    ],
)
def test_bad_values_are_rejected_by_name(factory, settings, named):
    with pytest.raises(ValueError, match=named):
        factory(settings)


def test_settings_come_from_env_names_in_any_case():
    model = kosmos_implicit.create_item_item({"K": "7", "SIMILARITY": "BM25"})
    assert model.settings["k"] == 7
    assert model.settings["similarity"] == "bm25"


def test_defaults():
    als = kosmos_implicit.create_als({}).settings
    assert (als["factors"], als["regularization"], als["alpha"], als["iterations"]) == (
        64,
        0.01,
        1.0,
        15,
    )
    bpr = kosmos_implicit.create_bpr({}).settings
    assert (bpr["factors"], bpr["learning_rate"], bpr["regularization"], bpr["iterations"]) == (
        64,
        0.005,
        0.01,
        100,
    )
    item_item = kosmos_implicit.create_item_item({}).settings
    assert (item_item["k"], item_item["similarity"]) == (50, "cosine")
    assert als["random_state"] == bpr["random_state"] == 42


@pytest.mark.parametrize(
    "factory",
    [kosmos_implicit.create_als, kosmos_implicit.create_bpr, kosmos_implicit.create_item_item],
)
def test_no_interactions_means_empty_answers(factory):
    model = factory({})
    model.fit(TrainingData(interactions=[], item_ids=["x", "y"]))
    recent = [Interaction("anyone", "x", InteractionType.VIEW, 1.0, 5.0)]
    assert model.recommend(RecommendQuery("anyone", k=3, recent_interactions=recent)) == []
    assert model.similar_items(SimilarItemsQuery("x", k=3)) == []
