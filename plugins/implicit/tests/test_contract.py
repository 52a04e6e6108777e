"""The shared conformance suite, run against every model this package registers."""

import kosmos_implicit

from kosmos.plugin.testing import RecommenderContract


class TestALS(RecommenderContract):
    def make_recommender(self):
        return kosmos_implicit.create_als({})  # the defaults: 64 factors, 15 iterations


class TestALSWithIndex(RecommenderContract):
    def make_recommender(self):
        # Issue 12: every answer comes through the ANN index (the contract's catalogs are tiny).
        return kosmos_implicit.create_als({"ann_min_items": "1"})


class TestBPR(RecommenderContract):
    def make_recommender(self):
        # The production default (learning rate 0.005) learns too little from 24 customers in
        # 100 epochs; a faster rate makes the tiny checkerboard exact. Seeded, one thread.
        return kosmos_implicit.create_bpr({"factors": "16", "learning_rate": "0.05"})


class TestItemItemCosine(RecommenderContract):
    def make_recommender(self):
        return kosmos_implicit.create_item_item({})


class TestItemItemBM25(RecommenderContract):
    def make_recommender(self):
        return kosmos_implicit.create_item_item({"similarity": "bm25"})
