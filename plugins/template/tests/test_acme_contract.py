"""The template's tests: the shared conformance suite, plus what this model promises itself.

Keep the file name unique to your plugin (pytest may collect every plugin's tests in one run).
"""

from importlib.metadata import entry_points

import acme_kosmos_recs
import pytest

from kosmos.plugin import ENTRY_POINT_GROUP, Interaction, InteractionType, RecommendQuery
from kosmos.plugin.testing import RecommenderContract, checkerboard


class TestAcmeContract(RecommenderContract):
    """Every behaviour Kosmos relies on: k, exclusions, already-seen, save/load, partial_fit..."""

    def make_recommender(self):
        return acme_kosmos_recs.create({})


def test_the_entry_point_is_registered():
    (ep,) = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == "acme_example"]
    assert ep.load() is acme_kosmos_recs.create


def test_a_click_a_second_ago_already_counts():
    data = checkerboard()
    model = acme_kosmos_recs.create({})
    model.fit(data)
    fresh = [Interaction("newcomer", "b-i0", InteractionType.CLICK, 1.0, data.now)]
    result = model.recommend(RecommendQuery("newcomer", k=3, recent_interactions=fresh))
    assert all(s.item_id.startswith("b-") for s in result)
    assert result[0].reason == "Popular in cat-b, a favourite of yours"


def test_settings_are_checked():
    assert acme_kosmos_recs.create({"popularity_weight": "0"}).popularity_weight == 0.0
    with pytest.raises(ValueError, match="unknown settings"):
        acme_kosmos_recs.create({"factors": "8"})
    with pytest.raises(ValueError):
        acme_kosmos_recs.create({"popularity_weight": "-1"})
