"""The kept list's row codec (`kosmos.store._lists`), beyond the contract both stores pass."""

from __future__ import annotations

import json
import math

import numpy as np

from kosmos.recommendation import pages
from kosmos.store._lists import list_row, read_list
from kosmos.store.records import RecommendationList


def test_a_list_an_earlier_release_kept_with_a_nan_score_still_reads() -> None:
    # The standard library wrote a NaN score as the bare word NaN, which is not JSON.
    text = json.dumps([["i1", math.nan, "r", "als", "popular", [], ""]], separators=(",", ":"))
    assert "NaN" in text
    kept = read_list(("acme", "r1", "alice", "", "", "", text, 1.0, 2.0))
    assert math.isnan(pages.from_document(kept.offers[0])["score"])


def test_a_written_row_is_plain_json_the_standard_library_reads() -> None:
    record = RecommendationList(
        "acme", "r1", "alice", (("i1", 0.5, "r", "m", "k", ("e",), ""),), 1.0, 2.0
    )
    row = list_row(record)
    assert json.loads(row[6]) == [["i1", 0.5, "r", "m", "k", ["e"], ""]]
    assert read_list(row).offers == (["i1", 0.5, "r", "m", "k", ["e"], ""],)


def test_scores_of_any_float_type_round_trip_and_non_finite_ones_come_back_nan() -> None:
    class Score(float):
        pass

    scores = [np.float64(0.1) + np.float64(0.2), np.float32(0.25), Score(1e-300), 7.0]
    odd = [math.nan, math.inf, -math.inf]
    offers = tuple((f"i{n}", s, "r", "m", "k", (), "") for n, s in enumerate(scores + odd))
    kept = read_list(list_row(RecommendationList("acme", "r1", "alice", offers, 1.0, 2.0)))
    read = [pages.from_document(d)["score"] for d in kept.offers]
    assert read[: len(scores)] == [float(s) for s in scores]  # exactly
    assert all(math.isnan(s) for s in read[len(scores) :])
