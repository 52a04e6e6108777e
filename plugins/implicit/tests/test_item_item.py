"""Item-item neighbours beyond the contract: request-time rows, explain, persistence."""

import kosmos_implicit
import pytest
from kosmos_implicit._common import REASON_NEIGHBOURS, REASON_RECENT

from kosmos.plugin import (
    ExplainQuery,
    Interaction,
    InteractionType,
    RecommendQuery,
    SimilarItemsQuery,
)
from kosmos.plugin.testing import checkerboard, history


def ids(scored):
    return [s.item_id for s in scored]


@pytest.fixture(scope="module")
def data():
    return checkerboard()


@pytest.fixture(params=["cosine", "bm25"])
def model(request, data):
    m = kosmos_implicit.create_item_item({"similarity": request.param})
    m.fit(data)
    return m


def test_recent_interactions_count_at_once(model, data):
    c = "a-c6"
    before = model.recommend(RecommendQuery(c, k=12, recent_interactions=history(data, c)))
    assert all(x.startswith("a-") for x in ids(before))
    assert {s.reason for s in before} == {REASON_NEIGHBOURS}
    click = Interaction(c, "b-i0", InteractionType.CLICK, 1.0, data.now + 60)
    after = model.recommend(RecommendQuery(c, k=12, recent_interactions=[click, *history(data, c)]))
    assert any(x.startswith("b-") for x in ids(after))
    assert {s.reason for s in after} == {REASON_RECENT}


def test_an_unknown_customer_is_served_from_recent_interactions(model, data):
    recent = [Interaction("stranger", "b-i3", InteractionType.VIEW, 1.0, data.now + 1)]
    result = model.recommend(
        RecommendQuery("stranger", k=3, recent_interactions=recent, filter_already_seen=True)
    )
    assert len(result) == 3 and all(x.startswith("b-") and x != "b-i3" for x in ids(result))
    assert model.recommend(RecommendQuery("stranger", k=3)) == []


def test_explain_adds_up_to_the_score(model, data):
    c = "b-c4"
    top = model.recommend(RecommendQuery(c, k=1, filter_already_seen=True))[0]
    contributions = model.explain(ExplainQuery(c, top.item_id, history(data, c)))
    weights = [x.weight for x in contributions]
    assert weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(top.score, rel=1e-5)
    assert all(x.item_id.startswith("b-") for x in contributions)


def test_similar_items_are_neighbours_without_the_item_itself(model):
    result = model.similar_items(SimilarItemsQuery("a-i3", k=20))
    assert sorted(ids(result)) == [f"a-i{n}" for n in range(8) if n != 3]
    assert model.similar_items(SimilarItemsQuery("unsold", k=3)) == []


def test_partial_fit_then_save_and_load(model, data, tmp_path):
    model.partial_fit(
        [Interaction("newcomer", "a-i0", InteractionType.PURCHASE, 1.0, data.now + 60)]
    )
    assert ids(model.recommend(RecommendQuery("newcomer", k=3)))
    model.save(tmp_path)
    loaded = kosmos_implicit.create_item_item({})  # similarity comes from the saved model
    loaded.load(tmp_path)
    assert loaded.settings["similarity"] == model.settings["similarity"]
    for q in (RecommendQuery("newcomer", k=5), RecommendQuery("b-c1", k=9)):
        assert loaded.recommend(q) == model.recommend(q)
    assert loaded.similar_items(SimilarItemsQuery("b-i2", k=4)) == model.similar_items(
        SimilarItemsQuery("b-i2", k=4)
    )


def test_cosine_and_bm25_weigh_differently(data):
    cosine = kosmos_implicit.create_item_item({"similarity": "cosine"})
    bm25 = kosmos_implicit.create_item_item({"similarity": "bm25"})
    cosine.fit(data)
    bm25.fit(data)
    q = SimilarItemsQuery("a-i0", k=3)
    assert [s.score for s in cosine.similar_items(q)] != [s.score for s in bm25.similar_items(q)]
