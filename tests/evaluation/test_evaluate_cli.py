"""`kosmos evaluate` end to end on a small synthetic shop, and the runner under it."""

from __future__ import annotations

import math

import pytest

from kosmos.cli import main
from kosmos.evaluation import (
    Dataset,
    build_queries,
    evaluate,
    markdown_table,
    score,
    synthetic,
    temporal_split,
)
from kosmos.plugin import Interaction, InteractionType, discover
from kosmos.plugin.routing import Routing

INSTALLED = discover()
HAS_LIGHTFM = "lightfm" in INSTALLED
SMALL = ["--dataset", "synthetic", "--customers", "120", "--items", "40", "--seed", "3"]


def kosmos(capsys, monkeypatch, *args):
    monkeypatch.setenv("COLUMNS", "220")  # rich wraps to the terminal; give the table room
    code = main(["evaluate", *args], env={})
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_synthetic_prints_the_table(capsys, monkeypatch):
    recommenders = "popularity,lightfm" if HAS_LIGHTFM else "popularity"
    routing = "warm=lightfm,popularity;cold=popularity" if HAS_LIGHTFM else "popularity"
    args = [*SMALL, "--recommenders", recommenders, "--routing", routing, "--markdown"]
    if HAS_LIGHTFM:
        args += ["--set", "lightfm.epochs=2", "--set", "lightfm.no_components=8"]
    code, out, err = kosmos(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "synthetic shop (seed 3)" in out and "test customers" in out
    for heading in ("P@10", "R@10", "NDCG@10", "coverage", "fit s", "warm", "cold"):
        assert heading in out
    assert f"routed {Routing.parse(routing)}" in out
    assert "| `popularity` |" in out  # --markdown
    if HAS_LIGHTFM:
        assert "lightfm.epochs=2" in out and "| `lightfm` |" in out


def test_missing_data_is_one_clear_error(capsys, monkeypatch, tmp_path):
    code, _, err = kosmos(
        capsys, monkeypatch, "--dataset", "online-retail", "--data-dir", str(tmp_path)
    )
    assert code == 2 and "not shipped" in err and "Traceback" not in err
    assert str(tmp_path / "online-retail" / "online_retail.csv.gz") in err.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recommenders", "nosuch"], "'nosuch' is routed to"),
        (["--routing", "warm=popularity"], "no chain for cold customers"),
        (["--set", "popularity"], "NAME.SETTING=VALUE"),
        (["--recommenders", "popularity", "--set", "other.x=1"], "settings given for other"),
        (["--recommenders", "popularity", "--set", "popularity.bogus=1"], "bogus"),
        (["-k", "0"], "-k must be at least 1"),
    ],
)
def test_bad_arguments_exit_2(capsys, monkeypatch, args, message):
    code, _, err = kosmos(capsys, monkeypatch, *SMALL, *args)
    assert code == 2 and message in err.replace("\n", " ")


def test_queries_are_the_services():
    log = [Interaction("ann", f"i{n}", InteractionType.VIEW, 1.0, float(n)) for n in range(30)] + [
        Interaction("ann", "hated", InteractionType.DISMISS, 0.0, 30.0),
        Interaction("ann", "new", InteractionType.PURCHASE, 8.0, 40.0),
        Interaction("bob", "new", InteractionType.PURCHASE, 8.0, 41.0),
    ]
    data = Dataset("t", log, ["new", "hated"], {"bob": {"country": "FR"}})
    split = temporal_split(log, 35.0)
    queries = build_queries(data, split, k=10, recent=25)
    ann, bob = queries["ann"], queries["bob"]
    assert [x.item_id for x in ann.recent_interactions][:3] == ["hated", "i29", "i28"]
    assert len(ann.recent_interactions) == 25  # newest first, capped as the service caps
    assert ann.exclude_item_ids == {"hated"} and ann.filter_already_seen and ann.k == 10
    assert bob.recent_interactions == () and bob.customer_features == {"country": "FR"}


def test_score_counts_a_missing_answer_as_zero():
    log = [
        Interaction("ann", "a", InteractionType.PURCHASE, 1.0, 1.0),
        Interaction("ann", "b", InteractionType.PURCHASE, 1.0, 5.0),
        Interaction("cid", "b", InteractionType.PURCHASE, 1.0, 6.0),
    ]
    split = temporal_split(log, 2.0)
    result = score("x", {"ann": ["b", "c"]}, split, catalog_size=4, k=2, fit_seconds=0.5)
    assert result.scores["warm"].ndcg == 1.0 and result.scores["warm"].precision == 0.5
    assert result.scores["cold"].ndcg == 0.0 and result.scores["cold"].customers == 1
    assert result.scores["all"].ndcg == 0.5 and result.scores["all"].coverage == 0.5
    assert math.isnan(result.recommend_us)


def test_a_chain_serves_each_segment_from_its_own_recommenders():
    data = synthetic(customers=150, items=40, seed=4)
    split = temporal_split(data.interactions, 1_767_225_600.0 - 30 * 86400.0)
    assert split.warm and split.cold
    routing = Routing(warm=("popularity",), cold=("popularity",))
    names = ["popularity", *(["lightfm"] if HAS_LIGHTFM else [])]
    chain = Routing(warm=(names[-1], "popularity"), cold=("popularity",))
    evaluation = evaluate(
        data,
        split,
        INSTALLED,
        names,
        [routing, chain],
        {"lightfm": {"epochs": "2", "no_components": "8"}} if HAS_LIGHTFM else {},
        k=10,
    )
    by_name = {r.name: r for r in evaluation.results}
    assert list(by_name) == [*names, "routed popularity", f"routed {chain}"]
    # One chain of one recommender is that recommender.
    assert by_name["routed popularity"].scores == by_name["popularity"].scores
    # Cold customers get the cold chain; warm ones the first warm recommender (it fills k).
    routed = by_name[f"routed {chain}"].scores
    assert routed["cold"] == by_name["popularity"].scores["cold"]
    assert routed["warm"] == by_name[names[-1]].scores["warm"]
    assert all(r.failures == 0 for r in evaluation.results)
    assert "routed popularity" in markdown_table(evaluation.results, 10)
