"""The shared conformance suite, run against the ranker over numpy-only sources."""

import kosmos_ranker

from kosmos.plugin.testing import RecommenderContract


class TestRankerContract(RecommenderContract):
    def make_recommender(self):
        return kosmos_ranker.create({"sources": "popularity,bought_together,buy_again"})
