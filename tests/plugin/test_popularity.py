import pytest

from kosmos.plugin import Interaction, InteractionType, RecommendQuery
from kosmos.plugin.testing import RecommenderContract, TrainingData, checkerboard
from kosmos.recommenders.popularity import PopularityRecommender, create


class TestPopularityContract(RecommenderContract):
    personalized = False

    def make_recommender(self):
        return create({})


def test_recent_interactions_tilt_toward_browsed_categories():
    data = checkerboard()
    model = create({})
    model.fit(data)
    plain = model.recommend(RecommendQuery(customer_id="x", k=8))
    browsing_a = [Interaction("x", "a-i0", InteractionType.VIEW, 1.0, data.now)]
    tilted = model.recommend(RecommendQuery(customer_id="x", k=8, recent_interactions=browsing_a))
    assert sum(s.item_id.startswith("a-") for s in tilted) > sum(
        s.item_id.startswith("a-") for s in plain
    )
    assert "browsing" in next(s.reason for s in tilted if s.item_id.startswith("a-"))


def test_recency_weighting_prefers_recent_purchases():
    day = 86400.0
    old = [Interaction(f"c{n}", "old", InteractionType.PURCHASE, 1.0, 0.0) for n in range(3)]
    new = [Interaction(f"d{n}", "new", InteractionType.PURCHASE, 1.0, 60 * day) for n in range(2)]
    model = PopularityRecommender(half_life_days=14)
    model.fit(TrainingData(interactions=old + new, now=60 * day))
    assert [s.item_id for s in model.recommend(RecommendQuery(customer_id="z", k=2))] == [
        "new",
        "old",
    ]


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="half_lif"):
        create({"half_lif": "3"})
