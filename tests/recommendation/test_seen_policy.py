"""The seen-item policy through Recommend: what a customer has is not offered again in "for
you" unless the shop's customers buy it again; the buy-again placement wants exactly those; the
request's time is the "now" of cooldowns (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kosmos.client import InteractionInput
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import Interaction, InteractionType
from kosmos.plugin.routing import Routing
from kosmos.recommendation.seen import Repeat, SeenPolicy, learn_repeatable
from tests.conftest import start_cluster
from tests.helpers import small_shop

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
NOW = datetime(2025, 10, 9, 12, tzinfo=UTC)


def ids(result):
    return [o.item.rsplit("/", 1)[1] for o in result.offers]


@pytest.fixture
def shop(kosmos):
    """i00..i05 are best sellers; i00 is bought again and again by its buyers, the rest once."""
    client = kosmos.client
    small_shop(client)
    events = []
    for n in range(6):
        for b in range(6 - n + 5):
            buyer = f"b{n}-{b}"
            client.create_customer("acme", buyer)
            events.append(
                InteractionInput(buyer, f"i{n:02d}", "purchase", event_time=NOW - 30 * DAY)
            )
            if n == 0:
                events.append(InteractionInput(buyer, "i00", "purchase", event_time=NOW - 9 * DAY))
    client.record_interactions("acme", events)
    return "acme"


def test_owned_items_stay_out_of_for_you_unless_bought_again(client, shop):
    client.record_interactions(
        shop,
        [
            InteractionInput("alice", item, "purchase", event_time=NOW - 20 * DAY)
            for item in ("i00", "i01", "i02")
        ]
        + [InteractionInput("alice", "i03", "rating", value=4, event_time=NOW - 20 * DAY)],
    )
    offered = ids(client.recommend(shop, "alice", page_size=10, request_time=NOW))
    assert "i00" in offered  # its buyers buy it again
    for owned in ("i01", "i02", "i03"):  # bought or rated once: had, not wanted again
        assert owned not in offered
    assert ids(client.recommend(shop, "bob", page_size=10, request_time=NOW))[:3] == [
        "i00",
        "i01",
        "i02",
    ]


def test_buy_again_placement_skips_the_policy(store):
    routing = Routing.parse("warm=popularity;cold=popularity;buy_again=popularity")
    settings = RecommendationSettings(refresh_seconds=0, routing=routing)
    c = start_cluster(store, settings)
    try:
        small_shop(c.client)
        c.client.record_interactions(
            "acme", [InteractionInput("alice", "i07", "purchase", event_time=NOW - 20 * DAY)]
        )
        assert "i07" not in ids(c.client.recommend("acme", "alice", page_size=24))
        again = ids(c.client.recommend("acme", "alice", page="buy_again", page_size=24))
        assert "i07" in again
    finally:
        c.client.close()
        c.server.stop(None).wait()


def test_request_time_is_the_now_of_the_repurchase_cooldown(client, shop):
    bought = NOW - 2 * HOUR
    client.record_interactions(
        shop, [InteractionInput("alice", "i00", "purchase", event_time=bought)]
    )
    # i00 is bought again by its buyers, so the policy lets it back once the cooldown is over.
    assert "i00" not in ids(client.recommend(shop, "alice", page_size=10, request_time=NOW))
    later = NOW + 2 * DAY
    assert "i00" in ids(client.recommend(shop, "alice", page_size=10, request_time=later))


def test_items_on_the_page_are_not_offered(client, shop):
    offered = ids(client.recommend(shop, "bob", page_size=10, item_ids=["i00", "i01"]))
    assert offered and not {"i00", "i01"} & set(offered)


def purchase(customer, item, day):
    when = (NOW + day * DAY).timestamp()
    return Interaction(customer, item, InteractionType.PURCHASE, 1.0, when, 1.0)


def test_learned_repeatables_need_enough_buyers_and_a_rate():
    rows = [purchase(f"c{n}", "tea", 0) for n in range(10)]
    rows += [purchase(f"c{n}", "tea", 30) for n in range(4)]  # 4 of 10 buy it again
    rows += [purchase(f"c{n}", "kettle", 0) for n in range(10)]
    rows += [purchase("c1", "kettle", 0.01)]  # same basket, a few minutes later: one occasion
    rows += [purchase("c1", "green-tea", 0), purchase("c1", "green-tea", 20)]  # one buyer only
    policy = SeenPolicy(repurchase_threshold=0.3, min_buyers=5)
    learned = learn_repeatable(rows, policy, {"tea": "Tea", "green-tea": "Tea"})
    assert learned == {"tea", "green-tea"}  # green tea takes its category's rate
    assert learn_repeatable(rows, SeenPolicy(repurchase_threshold=0.5)) == frozenset()


def test_policy_modes():
    owned = {"a", "b"}
    assert SeenPolicy().excluded(owned, frozenset({"a"})) == {"b"}
    assert SeenPolicy().excluded(owned, frozenset(), placement="buy_again") == frozenset()
    assert SeenPolicy(repeat_purchase=Repeat.ALWAYS).excluded(owned, frozenset()) == frozenset()
    never = SeenPolicy(repeat_purchase=Repeat.NEVER, repeatable_item_ids=frozenset({"b"}))
    assert never.excluded(owned, frozenset({"a"})) == {"a"}
    with pytest.raises(ValueError):
        SeenPolicy(repurchase_threshold=2)
