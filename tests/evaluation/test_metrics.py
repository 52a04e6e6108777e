"""Ranking metrics on cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from kosmos.evaluation import (
    catalog_coverage,
    dcg_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

L2, L3, L4, L5 = (math.log2(n) for n in (2, 3, 4, 5))  # discounts of ranks 1-4


def test_two_hits_among_four():
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "x"}
    assert precision_at_k(ranked, relevant, 4) == 0.5
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    # Hits at ranks 2 and 4; the ideal puts three hits at ranks 1-3.
    assert dcg_at_k(ranked, relevant, 4) == pytest.approx(1 / L3 + 1 / L5)
    ideal = 1 / L2 + 1 / L3 + 1 / L4
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx((1 / L3 + 1 / L5) / ideal)
    # By hand: (0.630930 + 0.430677) / (1 + 0.630930 + 0.5) = 0.498189
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(0.498189, abs=1e-6)


def test_only_the_first_k_count():
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "x"}
    assert precision_at_k(ranked, relevant, 2) == 0.5
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    # The ideal DCG at k=2 has two hits, though three items are relevant.
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx((1 / L3) / (1 / L2 + 1 / L3))


def test_ideal_dcg_stops_at_the_relevant_count():
    # Two relevant items found at ranks 1 and 2 of ten: a perfect answer, whatever k is.
    assert ndcg_at_k(["x", "y", "a", "b"], {"x", "y"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "x"], {"x"}, 10) == pytest.approx(1 / L3)


def test_short_and_empty_answers():
    # An empty slot is a miss: precision divides by k, not by the answer's length.
    assert precision_at_k(["x"], {"x"}, 10) == 0.1
    assert recall_at_k(["x"], {"x"}, 10) == 1.0
    assert precision_at_k([], {"x"}, 10) == 0.0
    assert ndcg_at_k([], {"x"}, 10) == 0.0
    assert recall_at_k(["x"], set(), 10) == 0.0
    assert ndcg_at_k(["x"], set(), 10) == 0.0


def test_catalog_coverage():
    rankings = [["a", "b", "c"], ["b", "d"], []]
    assert catalog_coverage(rankings, 10, 1) == pytest.approx(0.2)  # a, b
    assert catalog_coverage(rankings, 10, 2) == pytest.approx(0.3)  # a, b, d
    assert catalog_coverage(rankings, 4, 3) == 1.0
    assert catalog_coverage([], 4, 3) == 0.0


@pytest.mark.parametrize(
    "metric", [precision_at_k, recall_at_k, dcg_at_k, ndcg_at_k], ids=lambda f: f.__name__
)
def test_k_must_be_positive(metric):
    with pytest.raises(ValueError, match="k must be at least 1"):
        metric(["a"], {"a"}, 0)


def test_coverage_needs_a_catalog():
    with pytest.raises(ValueError, match="catalog_size"):
        catalog_coverage([["a"]], 0, 1)
