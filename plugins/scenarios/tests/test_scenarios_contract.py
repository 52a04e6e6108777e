"""The shared conformance suite, run against every scenario this package registers."""

import kosmos_scenarios

from kosmos.plugin.testing import RecommenderContract


class TestBuyAgainContract(RecommenderContract):
    # Its own items only: with filter_already_seen it falls back to the shop's staples.
    personalized = False

    def make_recommender(self):
        return kosmos_scenarios.create_buy_again({})


class TestBoughtTogetherContract(RecommenderContract):
    def make_recommender(self):
        return kosmos_scenarios.create_bought_together({})


class TestTrendingContract(RecommenderContract):
    personalized = False

    def make_recommender(self):
        return kosmos_scenarios.create_trending({})


class TestNewArrivalsContract(RecommenderContract):
    personalized = False

    def make_recommender(self):
        return kosmos_scenarios.create_new_arrivals({})
