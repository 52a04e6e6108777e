"""The served path in `kosmos evaluate`: the domain code behind Recommend scores what the
plugins score when it has nothing to add, and applies the seen-item policy when asked (issue 7)."""

from __future__ import annotations

from kosmos.cli import main
from kosmos.evaluation import evaluate, synthetic, temporal_split
from kosmos.evaluation.runner import training_data
from kosmos.evaluation.served import ServedPath
from kosmos.evaluation.split import quantile_cutoff
from kosmos.plugin import InteractionType, discover
from kosmos.plugin.routing import Routing
from kosmos.recommendation.seen import Repeat, SeenPolicy

INSTALLED = discover()
TOUCHED = frozenset(set(InteractionType) - {InteractionType.DISMISS})


def shop(new_items_only=True):
    dataset = synthetic(150, 40, 3)
    cutoff = quantile_cutoff(dataset.interactions, 0.8)
    return dataset, temporal_split(dataset.interactions, cutoff, new_items_only=new_items_only)


def ndcg(evaluation, name, population="all"):
    return next(r for r in evaluation.results if r.name == name).scores[population].ndcg


def test_served_equals_plugins_when_the_service_adds_nothing():
    dataset, split = shop()
    routing = Routing.parse("warm=als,popularity;cold=popularity")
    evaluation = evaluate(
        dataset,
        split,
        INSTALLED,
        ["popularity", "als"],
        [routing],
        {"als": {"factors": "8", "iterations": "5"}},
        served=SeenPolicy(owned_types=TOUCHED, repeat_purchase=Repeat.NEVER),
        max_per_category=1000,  # no variety cap: the page is the chain's top k
    )
    for name in ("popularity", "als", f"routed {routing}"):
        for population in ("warm", "cold"):
            assert ndcg(evaluation, f"served {name}", population) == ndcg(
                evaluation, name, population
            )
    assert ndcg(evaluation, "als") > 0


def test_the_served_path_stores_only_training_data_and_applies_the_policy():
    dataset, split = shop(new_items_only=False)
    with ServedPath(dataset, split, Routing(), SeenPolicy(repeat_purchase=Repeat.NEVER)) as path:
        path.load()
        customer = sorted(split.warm)[0]
        stored = path.store.list_interactions(dataset.name, customer, None, 10_000)
        train = [i for i in split.train if i.customer_id == customer]
        assert len(stored) == len(train)
        assert max(i.event_time for i in stored) < split.now
        popularity = INSTALLED["popularity"].factory({})
        data = training_data(dataset, split)
        popularity.fit(data)
        got = path.rankings({"popularity": popularity}, data, [customer], 10)[customer]
        bought = {
            i.item_id for i in train if i.type in (InteractionType.PURCHASE, InteractionType.RATING)
        }
        assert got and not bought & set(got)
        path.policy = SeenPolicy(repeat_purchase=Repeat.ALWAYS)
        again = path.rankings({"popularity": popularity}, data, [customer], 40)[customer]
        assert bought & set(again)


def test_evaluate_prints_served_against_plugins(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    args = ["--dataset", "synthetic", "--customers", "120", "--items", "40", "--seed", "3"]
    code = main(["evaluate", *args, "--recommenders", "popularity", "--repeats"], env={})
    out = capsys.readouterr().out
    assert code == 0
    assert "served popularity" in out
    assert "served − plugins" in out
