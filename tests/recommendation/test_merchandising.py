"""Merchant rules, stable pages, impressions and rotation, through the gRPC API (issue 13)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections import Counter

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kosmos.client import InteractionInput
from kosmos.store import SQLiteStore
from kosmos.v1 import (
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    recommendation_service_pb2,
    rules_service_pb2,
    rules_service_pb2_grpc,
    shop_settings_service_pb2,
)
from tests.conftest import start_cluster
from tests.helpers import assert_invalid, item, small_shop, status_of

pb = rules_service_pb2
CATEGORIES = ("Kitchen", "Garden", "Toys", "Books")


def ids(page) -> list[str]:
    return [o.item.rsplit("/", 1)[1] for o in page.offers]


def shop_with_history(client, shop: str = "acme", items: int = 40) -> None:
    """``items`` items over four categories; bob bought each a different number of times, so
    popularity ranks them in a known order (i00 first)."""
    client.create_shop(shop)
    client.upsert_items(
        shop,
        [
            item(
                shop,
                f"i{n:02d}",
                category=CATEGORIES[n % 4],
                brand=f"B{n % 3}",
                price=float(n + 1),
            )
            for n in range(items)
        ],
    )
    for customer in ("alice", "bob", "carol"):
        client.create_customer(shop, customer)
    client.record_interactions(
        shop,
        [
            InteractionInput("bob", f"i{n:02d}", "purchase")
            for n in range(items)
            for _ in range(items - n)
        ],
    )


@pytest.fixture
def shop(kosmos):
    shop_with_history(kosmos.client)
    return kosmos


def rule(rule_id: str, action: int, **kw) -> pb.MerchantRule:
    return pb.MerchantRule(rule_id=rule_id, action=action, **kw)


# -- merchant rules --------------------------------------------------------------------------


def test_rules_are_validated_versioned_and_count_at_the_next_request(shop):
    client = shop.client
    before = ids(client.recommend("acme", "alice", page_size=10))
    assert before[0] == "i00"
    stored = client.update_merchant_rules(
        "acme",
        [
            rule("no-toys", pb.RULE_ACTION_EXCLUDE, match=pb.ItemMatch(categories=["Toys"])),
            rule("cheap", pb.RULE_ACTION_FILTER, match=pb.ItemMatch(max_price=30.0)),
        ],
    )
    assert stored.revision == 1 and stored.name == "shops/acme/rules"
    after = client.recommend("acme", "alice", page_size=10)
    offered = ids(after)
    assert offered and all(int(i[1:]) % 4 != 2 for i in offered)  # no Toys
    assert all(int(i[1:]) + 1 <= 30 for i in offered)  # price band
    # A new revision replaces the set; the old one stays readable.
    client.update_merchant_rules("acme", [])
    assert ids(client.recommend("acme", "alice", page_size=10)) == before
    old = client.get_merchant_rules("acme", revision=1)
    assert [r.rule_id for r in old.rules] == ["no-toys", "cheap"]
    assert client.get_merchant_rules("acme").revision == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (rule("", pb.RULE_ACTION_EXCLUDE), "rules.rules[0].rule_id"),
        (rule("x", pb.RULE_ACTION_UNSPECIFIED), "rules.rules[0].action"),
        (rule("x", pb.RULE_ACTION_BOOST, factor=0.0), "rules.rules[0].factor"),
        (rule("x", pb.RULE_ACTION_PIN), "rules.rules[0].match.item_ids"),
        (
            rule("x", pb.RULE_ACTION_FILTER, match=pb.ItemMatch(min_price=5, max_price=2)),
            "rules.rules[0].match.max_price",
        ),
        (
            rule("x", pb.RULE_ACTION_EXCLUDE, placements=["Home Page"]),
            "rules.rules[0].placements[0]",
        ),
        (
            rule("x", pb.RULE_ACTION_PIN, match=pb.ItemMatch(item_ids=["i01"]), slot=500),
            "rules.rules[0].slot",
        ),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(kosmos, bad, field):
    small_shop(kosmos.client)
    stub = rules_service_pb2_grpc.MerchantRulesServiceStub(kosmos.channel)
    request = pb.UpdateMerchantRulesRequest(
        rules=pb.MerchantRules(name="shops/acme/rules", rules=[bad])
    )
    assert_invalid(stub.UpdateMerchantRules, request, field)
    assert kosmos.client.get_merchant_rules("acme").revision == 0  # nothing stored


def test_a_pin_is_placed_at_its_slot_and_says_promoted(shop):
    client = shop.client
    client.update_merchant_rules(
        "acme",
        [
            rule(
                "summer",
                pb.RULE_ACTION_PIN,
                match=pb.ItemMatch(item_ids=["i39", "i38"]),
                slot=2,
                placements=["home"],
            )
        ],
    )
    page = client.recommend("acme", "alice", page_size=10, page="home")
    offered = ids(page)
    assert offered[1:3] == ["i39", "i38"]
    for offer in page.offers[1:3]:
        assert offer.explanation.kind == recommendation_service_pb2.REASON_KIND_PROMOTED
        assert offer.explanation.rule_id == "summer"
    assert page.offers[0].explanation.kind != recommendation_service_pb2.REASON_KIND_PROMOTED
    # Scoped by placement: not on the product page.
    assert "i39" not in ids(client.recommend("acme", "alice", page_size=10, page="product"))


def test_boost_and_bury_move_items_and_a_schedule_bounds_a_rule(shop):
    client = shop.client
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    boost = rule(
        "garden", pb.RULE_ACTION_BOOST, match=pb.ItemMatch(categories=["Garden"]), factor=50
    )
    boost.start_time.FromDatetime(start)
    bury = rule("i00-down", pb.RULE_ACTION_BOOST, match=pb.ItemMatch(item_ids=["i00"]), factor=0.01)
    client.update_merchant_rules("acme", [boost, bury])
    now = ids(client.recommend("acme", "alice", page_size=10))
    assert "i00" not in now  # buried past the first page
    garden = {f"i{n:02d}" for n in range(40) if n % 4 == 1}
    assert not set(now[:3]) <= garden  # the boost has not started
    later = client.recommend(
        "acme", "alice", page_size=3, request_time=start + dt.timedelta(days=1)
    )
    assert ids(later) == ["i01", "i05", "i09"]  # from its start time, garden first


def test_a_rule_change_counts_on_another_replica_at_its_next_request(tmp_path):
    path = tmp_path / "k.db"
    a, b = start_cluster(SQLiteStore(path)), start_cluster(SQLiteStore(path))
    try:
        shop_with_history(a.client)
        assert ids(b.client.recommend("acme", "alice", page_size=5))[0] == "i00"
        a.client.update_merchant_rules(
            "acme", [rule("x", pb.RULE_ACTION_EXCLUDE, match=pb.ItemMatch(item_ids=["i00"]))]
        )
        assert "i00" not in ids(b.client.recommend("acme", "alice", page_size=5))
    finally:
        a.close()
        b.close()


@pytest.fixture(scope="module")
def property_cluster(tmp_path_factory):
    c = start_cluster(SQLiteStore(tmp_path_factory.mktemp("rules-property") / "k.db"))
    shop_with_history(c.client, items=24)
    yield c
    c.close()


ITEM_IDS = [f"i{n:02d}" for n in range(24)]
_match = st.builds(
    lambda items, cats, brands: pb.ItemMatch(item_ids=items, categories=cats, brands=brands),
    st.lists(st.sampled_from(ITEM_IDS), max_size=4, unique=True),
    st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True),
    st.lists(st.sampled_from(["B0", "B1", "B2"]), max_size=1, unique=True),
)


@st.composite
def _rules(draw):
    found = []
    for n in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from(["filter", "exclude", "boost", "pin"]))
        rid = f"r{n}"
        if action == "pin":
            pinned = draw(st.lists(st.sampled_from(ITEM_IDS), min_size=1, max_size=4, unique=True))
            found.append(
                rule(
                    rid,
                    pb.RULE_ACTION_PIN,
                    match=pb.ItemMatch(item_ids=pinned),
                    slot=draw(st.integers(1, 8)),
                )
            )
        elif action == "boost":
            factor = draw(st.sampled_from([0.1, 0.5, 2.0, 20.0]))
            found.append(rule(rid, pb.RULE_ACTION_BOOST, match=draw(_match), factor=factor))
        else:
            kind = pb.RULE_ACTION_FILTER if action == "filter" else pb.RULE_ACTION_EXCLUDE
            found.append(rule(rid, kind, match=draw(_match)))
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rules=_rules(),
    items=st.lists(st.sampled_from(ITEM_IDS), max_size=5, unique=True),
    categories=st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True),
    brands=st.lists(st.sampled_from(["B0", "B1", "B2"]), max_size=1, unique=True),
    size=st.integers(1, 24),
)
def test_no_rule_breaks_a_customer_exclusion(
    property_cluster, rules, items, categories, brands, size
):
    client = property_cluster.client
    client.update_merchant_rules("acme", rules)
    exclusions = [
        *(("item", i) for i in items),
        *(("category", c) for c in categories),
        *(("brand", b) for b in brands),
    ]
    client.update_customer("acme", "alice", exclusions=exclusions)
    for placement in ("", "home"):
        for o in client.recommend("acme", "alice", page_size=size, page=placement).offers:
            n = int(o.item.rsplit("/", 1)[1][1:])
            assert f"i{n:02d}" not in items
            assert CATEGORIES[n % 4] not in categories
            assert f"B{n % 3}" not in brands


# -- stable pages ----------------------------------------------------------------------------


def walk(client, size: int, customer: str = "alice", between=None) -> list[list[str]]:
    pages, token = [], ""
    while True:
        page = client.recommend("acme", customer, page_size=size, page_token=token)
        pages.append(ids(page))
        if between is not None:
            between(page)
        token = page.next_page_token
        if not token:
            return pages


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sizes=st.lists(st.integers(1, 17), min_size=1, max_size=3))
def test_pages_of_any_size_never_repeat_and_together_are_one_list(property_cluster, sizes):
    client = property_cluster.client
    client.update_merchant_rules("acme", [])
    client.update_customer("acme", "carol", exclusions=[])
    lists = []
    for size in sizes:
        pages = walk(client, size, customer="carol")
        flat = [i for p in pages for i in p]
        assert len(flat) == len(set(flat))
        assert all(len(p) == size for p in pages[:-1])
        lists.append(flat)
    # The same list whatever the page size: top-k is prefix-stable.
    assert all(x == lists[0] for x in lists)


def test_a_shop_keeps_as_long_a_list_as_it_sets(shop):
    # A shop that never pages far keeps a shorter list (less work per first page, issue 12);
    # the pages are still one list, and a first page larger than the list still comes whole.
    client = shop.client
    whole = [i for p in walk(client, 7) for i in p]
    assert len(whole) == 40  # alice has none of the 40 items: the catalog ends the list
    twelve = shop_settings_service_pb2.ShopSettings(list_length=12)
    client.update_shop_settings("acme", twelve, ["list_length"])
    assert client.get_shop_settings("acme").list_length == 12
    pages = walk(client, 5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [i for p in pages for i in p] == whole[:12]  # the same ranking, cut at 12
    assert ids(client.recommend("acme", "alice", page_size=20)) == whole[:20]
    similar = [i for p in walk_similar(client, 2) for i in p]  # 9 of i00's category
    client.update_shop_settings(
        "acme", shop_settings_service_pb2.ShopSettings(list_length=4), ["list_length"]
    )
    assert [i for p in walk_similar(client, 2) for i in p] == similar[:4]
    client.update_shop_settings("acme", shop_settings_service_pb2.ShopSettings(), ["list_length"])
    assert [i for p in walk(client, 7) for i in p] == whole  # back to the cluster's 50


def walk_similar(client, size: int, between=None) -> list[list[str]]:
    pages, token, rid = [], "", ""
    while True:
        page = client.similar_items("acme", "i00", page_size=size, page_token=token)
        assert rid in ("", page.recommendation_id)  # one list behind every page
        rid = page.recommendation_id
        pages.append(ids(page))
        if between is not None:
            between()
        token = page.next_page_token
        if not token:
            return pages


@pytest.mark.parametrize("sizes", [(1, 4, 17), (2, 3)])
def test_similar_items_pages_never_repeat_and_together_are_one_list(shop, sizes):
    client = shop.client
    lists = []
    for size in sizes:
        pages = walk_similar(client, size)
        flat = [i for p in pages for i in p]
        assert len(flat) == len(set(flat)) and "i00" not in flat
        assert all(len(p) == size for p in pages[:-1])
        lists.append(flat)
    # The same list whatever the page size: top-k is prefix-stable.
    assert all(x == lists[0] for x in lists) and len(lists[0]) == 9  # i04, i08 ... i36

    # An item back in stock between pages does not shift the pages of the list kept: page 2
    # neither repeats page 1's last offer nor brings the item in.
    client.upsert_items("acme", [item("acme", "i04", category="Kitchen", available=False)])
    listed = walk_similar(client, 20)[0]
    assert "i04" not in listed
    back = iter([lambda: client.upsert_items("acme", [item("acme", "i04", category="Kitchen")])])
    pages = walk_similar(client, 3, between=lambda: next(back, lambda: None)())
    assert [i for p in pages for i in p] == listed


def test_clicks_between_pages_never_bring_an_item_back(shop):
    client = shop.client

    def click_first(page):
        if page.offers:
            client.record_interactions(
                "acme",
                [
                    InteractionInput(
                        "alice", ids(page)[0], "click", recommendation_id=page.recommendation_id
                    )
                ],
            )

    pages = walk(client, 10, between=click_first)
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) and len(pages) > 2


def test_the_variety_cap_holds_in_every_page(shop):
    client = shop.client
    client.update_shop_settings(
        "acme", shop_settings_service_pb2.ShopSettings(max_per_category=2), ["max_per_category"]
    )
    # Most of the best sellers in one category: the cap must hold on page 2 too.
    pages = walk(client, 8)
    flat = [i for p in pages for i in p]
    assert len(flat) >= 32
    for start in range(0, 32 - 8 + 1):
        window = Counter(CATEGORIES[int(i[1:]) % 4] for i in flat[start : start + 8])
        assert max(window.values()) <= 2, (start, window)


def test_another_replica_serves_page_two_from_the_same_list(tmp_path):
    path = tmp_path / "k.db"
    a, b = start_cluster(SQLiteStore(path)), start_cluster(SQLiteStore(path))
    try:
        shop_with_history(a.client)
        first = a.client.recommend("acme", "alice", page_size=5)
        # New events between the pages change the next list, not this one.
        a.client.record_interactions(
            "acme", [InteractionInput("carol", "i39", "purchase") for _ in range(100)]
        )
        second = b.client.recommend("acme", "alice", page_size=5, page_token=first.next_page_token)
        again = a.client.recommend("acme", "alice", page_size=5, page_token=first.next_page_token)
        assert len(ids(second)) == 5 and not set(ids(first)) & set(ids(second))
        assert ids(second) == ids(again)
        assert second.recommendation_id == first.recommendation_id
    finally:
        a.close()
        b.close()


def test_a_busy_store_never_holds_a_shopper_up_for_the_list(shop):
    page_before = shop.client.recommend("acme", "alice", page_size=5)
    other = sqlite3.connect(shop.store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock (a long import)
    try:
        page = shop.client.recommend("acme", "alice", page_size=5, timeout=5)
        # Served, the same offers, with a next page: the list is written behind the page.
        assert ids(page) == ids(page_before) and page.next_page_token
        rest = shop.client.recommend("acme", "alice", page_size=5, page_token=page.next_page_token)
        assert len(ids(rest)) == 5 and not set(ids(rest)) & set(ids(page))  # read from memory
    finally:
        other.execute("ROLLBACK")
        other.close()
    shop.store._lists.flush()  # once the lock is free the list reaches the file
    from kosmos.store.sqlite import SQLiteStore

    elsewhere = SQLiteStore(shop.store.path)  # another process on the same file
    try:
        kept = elsewhere.get_recommendation_list("acme", page.recommendation_id, time.time())
        assert kept is not None and [d[0] for d in kept.offers[5:10]] == ids(rest)
    finally:
        elsewhere.close()


# -- impressions and rotation ----------------------------------------------------------------


def test_impressions_are_validated_and_stored_once(shop):
    client = shop.client
    page = client.recommend("acme", "alice", page_size=5)
    assert client.record_impressions("acme", "alice", page.recommendation_id, ids(page)) == 5
    assert client.record_impressions("acme", "alice", page.recommendation_id, ids(page)) == 0
    # Never a positive signal: no interaction was stored.
    assert list(client.list_interactions("acme", "alice")) == []
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(shop.channel)
    forged = feedback_service_pb2.RecordImpressionsRequest(
        parent="shops/acme",
        impressions=[
            feedback_service_pb2.Impression(
                customer="shops/acme/customers/alice",
                recommendation_id="0123456789abcdef.5f000000.00",
                item_ids=["i01"],
            )
        ],
    )
    assert_invalid(stub.RecordImpressions, forged, "impressions[0].recommendation_id")
    unknown = feedback_service_pb2.RecordImpressionsRequest(
        parent="shops/acme",
        impressions=[
            feedback_service_pb2.Impression(
                customer="shops/acme/customers/nobody",
                recommendation_id=page.recommendation_id,
                item_ids=["i01"],
            )
        ],
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.RecordImpressions(unknown, timeout=5)
    assert status_of(caught.value)[0] == grpc.StatusCode.NOT_FOUND


def test_shown_and_ignored_items_sink_unless_engaged(shop):
    client = shop.client
    first = client.recommend("acme", "alice", page_size=4)
    top = ids(first)
    for _ in range(3):
        page = client.recommend("acme", "alice", page_size=4)
        client.record_impressions("acme", "alice", page.recommendation_id, ids(page))
    # She clicked the second one: it was not ignored.
    client.record_interactions("acme", [InteractionInput("alice", top[1], "click")])
    after = ids(client.recommend("acme", "alice", page_size=40))
    assert top[1] == after[0]
    for ignored in (top[0], top[2], top[3]):
        assert after.index(ignored) > top.index(ignored)


def test_a_stated_novelty_preference_sets_how_hard_items_rotate(shop):
    client = shop.client
    for customer in ("alice", "carol"):
        page = client.recommend("acme", customer, page_size=4)
        client.record_impressions("acme", customer, page.recommendation_id, ids(page))
    client.update_customer("acme", "alice", attributes={"novelty": "0"})
    client.update_customer("acme", "carol", attributes={"novelty": "1"})
    same = ids(client.recommend("acme", "alice", page_size=8))
    rotated = ids(client.recommend("acme", "carol", page_size=8))
    assert same[:4] == ["i00", "i01", "i02", "i03"]  # rotation off for her
    assert rotated.index("i00") > 0


# -- context ---------------------------------------------------------------------------------


def test_channel_reaches_the_plugins_and_popularity_learns_per_channel(kosmos):
    client = kosmos.client
    small_shop(client)
    # i01 sells on the web, i02 (less overall) in the app; events name their channel.
    client.record_interactions(
        "acme",
        [InteractionInput("bob", "i01", "purchase", channel="web") for _ in range(40)]
        + [InteractionInput("bob", "i02", "purchase", channel="app", device="mobile")] * 25,
    )
    stored = next(iter(client.list_interactions("acme", "bob")))
    assert (stored.channel, stored.device) == ("app", "mobile")
    assert ids(client.recommend("acme", "alice", page_size=3, channel="web"))[0] == "i01"
    assert ids(client.recommend("acme", "alice", page_size=3, channel="app"))[0] == "i02"
    assert ids(client.recommend("acme", "alice", page_size=3))[0] == "i01"


def test_a_customer_who_dismisses_a_lot_is_learned_to_want_more_novelty(shop):
    client = shop.client
    client.record_interactions(
        "acme", [InteractionInput("carol", f"i{n:02d}", "dismiss") for n in range(20, 40)]
    )
    for customer in ("alice", "carol"):
        page = client.recommend("acme", customer, page_size=4)
        assert ids(page) == ["i00", "i01", "i02", "i03"]
        client.record_impressions("acme", customer, page.recommendation_id, ids(page))
    # No stated preference: alice's is 0.5, carol's 0.5 + 0.5 × 20 / 30 (20 dismissals).
    calm = ids(client.recommend("acme", "alice", page_size=20))
    keen = ids(client.recommend("acme", "carol", page_size=20))
    assert 0 < calm.index("i00") < keen.index("i00")
