"""Experiments through the gRPC API (issue 13): deterministic splits, variants in responses,
attribution of feedback, and a report that detects a real difference and not a null one."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from kosmos.client import InteractionInput
from kosmos.datasets import generate
from kosmos.experiments.domain import bucket_of
from kosmos.store import SQLiteStore
from kosmos.v1 import (
    common_pb2,
    experiment_service_pb2,
    experiment_service_pb2_grpc,
    rules_service_pb2,
    shop_settings_service_pb2,
)
from tests.conftest import start_cluster
from tests.helpers import assert_code, assert_invalid, small_shop

ex = experiment_service_pb2
ru = rules_service_pb2


def experiment(*variants: ex.Variant, holdout: float = 0.0, placements=()) -> ex.Experiment:
    return ex.Experiment(variants=variants, holdout_fraction=holdout, placements=placements)


def test_customers_split_deterministically_and_responses_name_the_variant(kosmos):
    client = kosmos.client
    small_shop(client)
    for n in range(60):
        client.create_customer("acme", f"c{n:02d}")
    created = client.create_experiment(
        "acme",
        "ab",
        experiment(ex.Variant(variant_id="control"), ex.Variant(variant_id="b"), holdout=0.2),
    )
    assert created.name == "shops/acme/experiments/ab"
    assert created.state == ex.EXPERIMENT_STATE_RUNNING
    seen: dict[str, str] = {}
    for n in range(60):
        customer = f"c{n:02d}"
        for _ in range(2):
            page = client.recommend("acme", customer, page_size=3)
            assert page.experiment == "shops/acme/experiments/ab"
            assert seen.setdefault(customer, page.variant) == page.variant  # the same each time
    counts = {v: list(seen.values()).count(v) for v in ("control", "b", "holdout")}
    assert all(counts[v] > 0 for v in counts) and sum(counts.values()) == 60
    # The split is the documented hash: below the holdout fraction is the holdout.
    assert all((bucket_of("ab", c) < 0.2) == (v == "holdout") for c, v in seen.items())
    client.end_experiment("acme", "ab")
    after = client.recommend("acme", "c00", page_size=3)
    assert (after.experiment, after.variant) == ("", "")


def test_a_variant_applies_its_own_rules_and_weights(kosmos):
    client = kosmos.client
    small_shop(client)
    pin = ru.MerchantRule(
        rule_id="pin", action=ru.RULE_ACTION_PIN, match=ru.ItemMatch(item_ids=["i23"]), slot=1
    )
    client.create_experiment(
        "acme",
        "pin-test",
        experiment(
            ex.Variant(variant_id="a"), ex.Variant(variant_id="b", weight=1e-9, rules=[pin])
        ),
    )
    # Weights decide: with b's weight near 0 everyone is in a, who gets no pin.
    page = client.recommend("acme", "alice", page_size=3)
    assert page.variant == "a" and page.offers[0].item != "shops/acme/items/i23"
    client.end_experiment("acme", "pin-test")
    client.create_experiment(
        "acme", "pin-all", experiment(ex.Variant(variant_id="b", rules=[pin]), placements=["home"])
    )
    page = client.recommend("acme", "alice", page_size=3, page="home")
    assert page.variant == "b" and page.offers[0].item == "shops/acme/items/i23"
    assert client.recommend("acme", "alice", page_size=3).variant == ""  # another placement


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (experiment(), "experiment.variants"),
        (experiment(ex.Variant(variant_id="holdout")), "experiment.variants[0].variant_id"),
        (
            experiment(ex.Variant(variant_id="a"), ex.Variant(variant_id="a")),
            "experiment.variants[1].variant_id",
        ),
        (
            experiment(ex.Variant(variant_id="a", routing="no_such")),
            "experiment.variants[0].routing",
        ),
        (experiment(ex.Variant(variant_id="a"), holdout=0.9), "experiment.holdout_fraction"),
        (
            experiment(
                ex.Variant(variant_id="a"),
                ex.Variant(
                    variant_id="b",
                    plugin_settings={
                        "popularity": shop_settings_service_pb2.PluginSettings(
                            values={"no_such_setting": "3"}
                        )
                    },
                ),
            ),
            "experiment.variants[1].plugin_settings['popularity']",
        ),
        (
            experiment(
                ex.Variant(
                    variant_id="a",
                    plugin_settings={
                        "popularity": shop_settings_service_pb2.PluginSettings(
                            values={"half_life_days": "-1"}
                        )
                    },
                )
            ),
            "experiment.variants[0].plugin_settings['popularity']",
        ),
        (
            experiment(
                ex.Variant(
                    variant_id="a",
                    plugin_settings={
                        "no_such": shop_settings_service_pb2.PluginSettings(values={"k": "1"})
                    },
                )
            ),
            "experiment.variants[0].plugin_settings['no_such']",
        ),
        (
            experiment(
                ex.Variant(
                    variant_id="a",
                    rules=[ru.MerchantRule(rule_id="x", action=ru.RULE_ACTION_BOOST)],
                )
            ),
            "experiment.variants[0].rules[0].factor",
        ),
    ],
)
def test_a_bad_experiment_is_refused_naming_its_field(kosmos, bad, field):
    small_shop(kosmos.client)
    stub = experiment_service_pb2_grpc.ExperimentServiceStub(kosmos.channel)
    request = ex.CreateExperimentRequest(parent="shops/acme", experiment_id="e1", experiment=bad)
    assert_invalid(stub.CreateExperiment, request, field)
    ok = ex.CreateExperimentRequest(
        parent="shops/acme", experiment_id="e1", experiment=experiment(ex.Variant(variant_id="a"))
    )
    stub.CreateExperiment(ok, timeout=5)
    assert_code(stub.CreateExperiment, ok, grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_EXISTS")
    missing = ex.GetExperimentReportRequest(name="shops/acme/experiments/nope")
    assert_code(stub.GetExperimentReport, missing, grpc.StatusCode.NOT_FOUND)


# -- the simulated shop ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic shop (kosmos.datasets.synthetic) loaded through the API."""
    c = start_cluster(SQLiteStore(tmp_path_factory.mktemp("experiments") / "k.db"))
    shop = generate(customers=400, items=120, days=30, seed=11)
    client = c.client
    client.create_shop("synth")
    client.upsert_items(
        "synth",
        [
            common_pb2.Item(
                name=f"shops/synth/items/{i.item_id}",
                title=i.title,
                category=i.category,
                brand=i.brand,
                price=i.price,
                out_of_stock=not i.available,
            )
            for i in shop.items
        ],
    )
    client.create_customers(
        "synth",
        [
            common_pb2.Customer(
                name=f"shops/synth/customers/{cu.customer_id}", attributes=cu.attributes
            )
            for cu in shop.customers
        ],
    )
    events = [
        common_pb2.Interaction(
            customer=f"shops/synth/customers/{e.customer_id}",
            item_id=e.item_id,
            type=int(e.type),
            value=e.value,
        )
        for e in shop.interactions
    ]
    for e, m in zip(shop.interactions, events, strict=True):
        m.event_time.FromSeconds(int(e.time))
    for n in range(0, len(events), 10_000):
        client.import_interactions("synth", events[n : n + 10_000], request_id=f"load-{n}")
    yield c, shop
    c.close()


def simulate(client, shop, experiment_id: str, placement: str, likes: str, seed: int) -> None:
    """Every customer is served two lists on ``placement`` and sees the first five offers. A
    shopper clicks an offer with probability 0.04, or 0.25 if it is in ``likes``; buys a
    clicked offer with probability 0.4. So a variant that shows more of ``likes`` sells more."""
    rng = random.Random(seed)
    category = {i.item_id: i.category for i in shop.items}
    for cu in shop.customers:
        for _ in range(2):
            page = client.recommend("synth", cu.customer_id, page_size=5, page=placement)
            assert page.experiment == f"shops/synth/experiments/{experiment_id}"
            shown = [o.item.rsplit("/", 1)[1] for o in page.offers]
            client.record_impressions("synth", cu.customer_id, page.recommendation_id, shown)
            events = []
            for item_id in shown:
                p = 0.25 if category[item_id] == likes else 0.04
                if rng.random() < p:
                    rid = page.recommendation_id
                    events.append(
                        InteractionInput(cu.customer_id, item_id, "click", recommendation_id=rid)
                    )
                    if rng.random() < 0.4:
                        events.append(
                            InteractionInput(
                                cu.customer_id, item_id, "purchase", value=1, recommendation_id=rid
                            )
                        )
            if events:
                client.record_interactions("synth", events)


def test_an_experiment_detects_a_real_difference_and_an_aa_test_does_not(synthetic):
    c, shop = synthetic
    client = c.client
    likes = "Home"
    boost = ru.MerchantRule(
        rule_id="home-first",
        action=ru.RULE_ACTION_BOOST,
        match=ru.ItemMatch(categories=[likes]),
        factor=20,
    )
    client.create_experiment(
        "synth",
        "boost-home",
        experiment(
            ex.Variant(variant_id="control"),
            ex.Variant(variant_id="home", rules=[boost]),
            holdout=0.1,
            placements=["home"],
        ),
    )
    client.create_experiment(
        "synth",
        "a-a",
        experiment(ex.Variant(variant_id="a1"), ex.Variant(variant_id="a2"), placements=["email"]),
    )
    simulate(client, shop, "boost-home", "home", likes, seed=1)
    simulate(client, shop, "a-a", "email", likes, seed=2)

    report = client.experiment_report("synth", "boost-home", confidence_level=0.95)
    by = {v.variant_id: v for v in report.variants}
    assert [v.variant_id for v in report.variants] == ["control", "home", "holdout"]
    assert report.control_variant_id == "control" and report.confidence_level == 0.95
    control, home = by["control"], by["home"]
    assert control.impressions > 1000 and home.impressions > 1000
    assert by["holdout"].customers > 0
    assert home.conversion_rate.value > control.conversion_rate.value
    assert home.conversion_rate.significant and home.conversion_rate.p_value < 0.05
    assert home.conversion_rate.test == "two-proportion z-test"
    assert home.click_through_rate.significant
    assert home.revenue > control.revenue
    assert home.revenue_per_customer.test == "Welch t-test"
    ci = home.conversion_rate
    assert ci.ci_low <= ci.value <= ci.ci_high and ci.difference_ci_low > 0

    aa = client.experiment_report("synth", "a-a")
    a1, a2 = aa.variants
    assert a1.impressions > 1000 and a2.impressions > 1000
    for metric in ("click_through_rate", "conversion_rate", "add_to_cart_rate"):
        estimate = getattr(a2, metric)
        assert not estimate.significant, (metric, estimate)
        assert estimate.difference_ci_low <= 0 <= estimate.difference_ci_high
    assert not a2.revenue_per_customer.significant


def test_a_variant_routes_its_customers_to_its_own_chain(tmp_path):
    pytest.importorskip("kosmos_scenarios")  # the trending plugin (plugins/scenarios)
    from kosmos.common.config import RecommendationSettings
    from kosmos.plugin.routing import Routing

    # The shop's routing fits trending for a placement, so a variant may route to it.
    settings = RecommendationSettings(
        routing=Routing.parse("warm=popularity;cold=popularity;deals=trending,popularity"),
        refresh_seconds=0,
    )
    c = start_cluster(SQLiteStore(tmp_path / "k.db"), settings)
    try:
        client = c.client
        small_shop(client)
        client.record_interactions(
            "acme", [InteractionInput("bob", f"i{n:02d}", "purchase") for n in range(10)]
        )
        assert {o.recommender for o in client.recommend("acme", "alice").offers} == {"popularity"}
        client.create_experiment(
            "acme",
            "chains",
            experiment(ex.Variant(variant_id="trend", routing="trending,popularity")),
        )
        page = client.recommend("acme", "alice", page_size=5)
        assert page.variant == "trend"
        assert page.offers[0].recommender == "trending"
    finally:
        c.close()


# -- per-variant plugin settings -------------------------------------------------------------


def decaying_shop(client) -> None:
    """i01 sold much 40 days ago, i02 a little today: popularity's ``half_life_days`` decides
    which leads (14 days: i01; 1 day: i02)."""
    small_shop(client)
    old = datetime.now(UTC) - timedelta(days=40)
    client.record_interactions(
        "acme",
        [InteractionInput("bob", "i01", "purchase", value=1, event_time=old)] * 30
        + [InteractionInput("alice", "i02", "purchase", value=1)] * 3,
    )
    for n in range(40):
        client.create_customer("acme", f"c{n:02d}")


def fresh_variant(experiment_id: str = "decay") -> ex.Experiment:
    settings = shop_settings_service_pb2.PluginSettings(values={"half_life_days": "1"})
    return experiment(
        ex.Variant(variant_id="control"),
        ex.Variant(variant_id="fresh", plugin_settings={"popularity": settings}),
    )


def test_a_variant_with_its_own_plugin_settings_serves_its_own_model(kosmos):
    client = kosmos.client
    decaying_shop(client)
    first = "shops/acme/items/i01"
    # Before the experiment everyone gets the shop's model (fitted now, on the first call).
    assert client.recommend("acme", "c00", page_size=3).offers[0].item == first
    created = client.create_experiment("acme", "decay", fresh_variant())
    assert created.variants[1].plugin_settings["popularity"].values == {"half_life_days": "1"}
    stub = experiment_service_pb2_grpc.ExperimentServiceStub(kosmos.channel)
    got = stub.GetExperiment(ex.GetExperimentRequest(name=created.name), timeout=5)
    assert got.experiment.variants[1].plugin_settings == created.variants[1].plugin_settings
    served: dict[str, list[str]] = {"control": [], "fresh": []}
    variant_of: dict[str, str] = {}
    clicks, impressions = {"control": 0, "fresh": 0}, {"control": 0, "fresh": 0}
    for n in range(40):
        customer = f"c{n:02d}"
        page = client.recommend("acme", customer, page_size=3)
        served[page.variant].append(page.offers[0].item)
        variant_of[customer] = page.variant
        assert page.offers[0].recommender == "popularity"
        if n < 20:
            continue  # c00-c19 see nothing (no rotation): they are served again below
        # The others see the page and the fresh ones click its first offer.
        shown = [o.item.rsplit("/", 1)[1] for o in page.offers]
        client.record_impressions("acme", customer, page.recommendation_id, shown)
        impressions[page.variant] += len(shown)
        if page.variant == "fresh":
            client.record_interactions(
                "acme",
                [
                    InteractionInput(
                        customer, shown[0], "click", recommendation_id=page.recommendation_id
                    )
                ],
            )
            clicks["fresh"] += 1
    # The variant's model (half-life 1 day) leads with today's seller, the control with the
    # shop's (14 days) with the old one: a measurably different list.
    assert served["control"] and served["fresh"]
    assert set(served["control"]) == {first}
    assert set(served["fresh"]) == {"shops/acme/items/i02"}
    report = {v.variant_id: v for v in client.experiment_report("acme", "decay").variants}
    assert report["fresh"].customers == len(served["fresh"])
    assert report["control"].customers == len(served["control"])
    for variant in ("control", "fresh"):
        assert report[variant].impressions == impressions[variant] > 0
        assert report[variant].clicks == clicks[variant]
    assert report["fresh"].click_through_rate.value > report["control"].click_through_rate.value
    # Ended, the experiment's model is gone: everyone is served from the shop's again.
    client.end_experiment("acme", "decay")
    assert "fresh" in [variant_of[f"c{n:02d}"] for n in range(20)]
    for n in range(20):
        page = client.recommend("acme", f"c{n:02d}", page_size=3)
        assert page.variant == "" and page.offers[0].item == first
