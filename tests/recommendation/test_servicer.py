"""RecommendationService over real gRPC with the real popularity plugin."""

from __future__ import annotations

import threading
from collections import Counter

import grpc
import pytest

from kosmos.client import InteractionInput, InvalidArgumentError, NotFoundError
from kosmos.common import deadline
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import Capabilities, LoadedPlugin, RecommendQuery, Scored, Unsupported
from kosmos.plugin.routing import Routing
from kosmos.recommenders.popularity import create as popularity
from kosmos.v1 import recommendation_service_pb2 as pb
from kosmos.v1 import recommendation_service_pb2_grpc
from tests.conftest import start_cluster
from tests.helpers import assert_invalid, item, small_shop


@pytest.fixture
def stub(kosmos):
    return recommendation_service_pb2_grpc.RecommendationServiceStub(kosmos.channel)


@pytest.fixture
def shop(client):
    small_shop(client)
    # Make i00..i05 best sellers, in that order.
    events = [
        InteractionInput("bob", f"i{n:02d}", "purchase") for n in range(6) for _ in range(6 - n)
    ]
    client.record_interactions("acme", events)
    return "acme"


def item_ids(result):
    return [o.item.rsplit("/", 1)[1] for o in result.offers]


def test_offers_carry_item_score_reason_and_recommender(client, shop):
    result = client.recommend(shop, "alice", page_size=5)
    assert len(result.offers) == 5
    assert result.recommendation_id
    for offer in result.offers:
        assert offer.item.startswith("shops/acme/items/")
        assert offer.title.startswith("Item ")
        assert offer.reason
        assert offer.recommender == "popularity"
        assert offer.explanation.kind == pb.REASON_KIND_POPULAR
        assert offer.explanation.recommender == "popularity"
        assert offer.explanation.text == offer.reason
    assert item_ids(result)[0] == "i00"


def test_the_very_next_recommendation_follows_a_click(client, shop):
    def is_garden(item_id):
        return int(item_id[1:]) % 4 == 1

    before = client.recommend(shop, "alice", page_size=8)
    assert not is_garden(item_ids(before)[0])
    client.record_interactions(
        shop, [InteractionInput("alice", "i13", "click"), InteractionInput("alice", "i17", "view")]
    )
    after = client.recommend(shop, "alice", page_size=8)
    assert is_garden(item_ids(after)[0])
    assert "browsing" in after.offers[0].reason


def test_customer_choices_and_business_rules_filter_offers(client, shop):
    client.upsert_items(shop, [item(shop, "i00", available=False)])
    client.update_customer(
        shop, "alice", exclusions=[("category", "Toys"), ("brand", "B1"), ("item", "i04")]
    )
    client.record_interactions(shop, [InteractionInput("alice", "i03", "dismiss")])
    result = client.recommend(shop, "alice", page_size=20, cart_item_ids=["i08"])
    ids = item_ids(result)
    assert ids
    for banned in ("i00", "i03", "i04", "i08"):
        assert banned not in ids
    for n in map(lambda i: int(i[1:]), ids):
        assert n % 4 != 2  # Toys
        assert n % 3 != 1  # brand B1


def test_just_bought_items_are_not_offered_again(client, shop):
    client.record_interactions(shop, [InteractionInput("alice", "i00", "purchase")])
    assert "i00" not in item_ids(client.recommend(shop, "alice", page_size=10))
    client.create_customer(shop, "carol")
    assert "i00" in item_ids(client.recommend(shop, "carol", page_size=10))


def test_pages_have_variety(client, shop):
    result = client.recommend(shop, "alice", page_size=8)
    per_category = Counter(int(i[1:]) % 4 for i in item_ids(result))
    assert max(per_category.values()) <= 3


def test_pagination_continues_the_same_list(client, shop):
    first = client.recommend(shop, "alice", page_size=5)
    second = client.recommend(shop, "alice", page_size=5, page_token=first.next_page_token)
    assert first.next_page_token
    assert second.recommendation_id == first.recommendation_id
    assert not set(item_ids(first)) & set(item_ids(second))
    with pytest.raises(InvalidArgumentError) as caught:
        client.recommend(shop, "bob", page_size=5, page_token=first.next_page_token)
    assert caught.value.field_violations[0].field == "page_token"


def test_similar_items(client, shop):
    result = client.similar_items(shop, "i04", page_size=4)
    ids = item_ids(result)
    assert ids and "i04" not in ids
    for offer in result.offers:
        assert offer.explanation.kind == pb.REASON_KIND_SIMILAR_TO
        assert list(offer.explanation.evidence_items) == ["shops/acme/items/i04"]
    assert all(int(i[1:]) % 4 == 0 for i in ids)  # same category, Kitchen
    client.update_customer(shop, "alice", exclusions=[("item", ids[0])])
    assert ids[0] not in item_ids(client.similar_items(shop, "i04", customer_id="alice"))


def test_unknown_customer_shop_and_item(client, shop):
    with pytest.raises(NotFoundError) as caught:
        client.recommend(shop, "carol")
    assert caught.value.reason == "CUSTOMER_NOT_FOUND"
    with pytest.raises(NotFoundError) as caught:
        client.recommend("nope", "carol")
    assert caught.value.reason == "SHOP_NOT_FOUND"
    with pytest.raises(NotFoundError) as caught:
        client.similar_items(shop, "ghost")
    assert caught.value.reason == "ITEM_NOT_FOUND"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.RecommendRequest(), "customer"),
        (pb.RecommendRequest(customer="shops/acme/alice"), "customer"),
        (pb.RecommendRequest(customer="shops/acme/customers/alice", page_size=-1), "page_size"),
        (
            pb.RecommendRequest(customer="shops/acme/customers/alice", page_token="nope"),
            "page_token",
        ),
        (
            pb.RecommendRequest(
                customer="shops/acme/customers/alice",
                context=pb.RecommendationContext(cart_item_ids=["ok", ""]),
            ),
            "context.cart_item_ids[1]",
        ),
        (
            pb.RecommendRequest(
                customer="shops/acme/customers/alice",
                context=pb.RecommendationContext(channel="x" * 65),
            ),
            "context.channel",
        ),
    ],
)
def test_recommend_rejects_bad_input(stub, request_, field):
    assert_invalid(stub.Recommend, request_, field)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.SimilarItemsRequest(), "item"),
        (pb.SimilarItemsRequest(item="shops/acme/customers/x"), "item"),
        (
            pb.SimilarItemsRequest(item="shops/acme/items/x", customer="shops/other/customers/a"),
            "customer",
        ),
        (pb.SimilarItemsRequest(item="shops/acme/items/x", page_size=-3), "page_size"),
    ],
)
def test_similar_items_rejects_bad_input(stub, request_, field):
    assert_invalid(stub.SimilarItems, request_, field)


# -- the chain, with partner-style plugins written here ------------------------------------


class Broken:
    """A partner plugin that fails on every request."""

    capabilities = Capabilities()

    def fit(self, data):
        pass

    def recommend(self, query):
        raise RuntimeError("model file corrupted")

    def similar_items(self, query):
        raise RuntimeError("model file corrupted")

    def partial_fit(self, interactions):
        raise Unsupported("partial_fit")

    def explain(self, query):
        raise Unsupported("explain")

    def save(self, directory):
        pass

    def load(self, directory):
        pass


class DeadlineWatcher(Broken):
    """Records the deadline it sees, and answers with one item."""

    seen: list[float | None] = []

    def recommend(self, query: RecommendQuery):
        self.seen.append(deadline.remaining())
        return [Scored("i23", 99.0, "Because the watcher says so")]


def plugins(**factories):
    loaded = {n: LoadedPlugin(n, f, "tests") for n, f in factories.items()}
    loaded["popularity"] = LoadedPlugin("popularity", popularity, "kosmos")
    return loaded


def test_a_failing_recommender_is_skipped_for_the_next(store):
    settings = RecommendationSettings(routing=Routing.parse("broken,popularity"), refresh_seconds=0)
    c = start_cluster(store, settings, plugins(broken=lambda s: Broken()))
    try:
        small_shop(c.client)
        result = c.client.recommend("acme", "alice", page_size=3)
        assert [o.recommender for o in result.offers] == ["popularity"] * 3
    finally:
        c.client.close()
        c.server.stop(None).wait()


def test_the_callers_deadline_reaches_the_recommender(store):
    settings = RecommendationSettings(
        routing=Routing.parse("watcher,popularity"), refresh_seconds=0
    )
    DeadlineWatcher.seen = []
    c = start_cluster(store, settings, plugins(watcher=lambda s: DeadlineWatcher()))
    try:
        small_shop(c.client)
        result = c.client.recommend("acme", "alice", page_size=3, timeout=2.0)
        assert result.offers[0].recommender == "watcher"
        assert result.offers[0].reason == "Because the watcher says so"
        assert {o.recommender for o in result.offers[1:]} == {"popularity"}
        (left,) = DeadlineWatcher.seen
        # gRPC sends the timeout rounded up to its wire precision: allow that, no more.
        assert left is not None and 0 < left <= 2.05
    finally:
        c.client.close()
        c.server.stop(None).wait()


class Blocking(Broken):
    """Holds the request until released, so the client's deadline passes first."""

    release = threading.Event()

    def recommend(self, query):
        self.release.wait(timeout=10)
        return []


def test_an_expired_deadline_is_deadline_exceeded(store):
    settings = RecommendationSettings(
        routing=Routing.parse("blocking,popularity"), refresh_seconds=0
    )
    c = start_cluster(store, settings, plugins(blocking=lambda s: Blocking()))
    try:
        small_shop(c.client)
        Blocking.release.set()
        c.client.recommend("acme", "alice", page_size=1, timeout=5)  # fits the models
        stub = recommendation_service_pb2_grpc.RecommendationServiceStub(c.channel)
        Blocking.release.clear()
        with pytest.raises(grpc.RpcError) as caught:
            stub.Recommend(pb.RecommendRequest(customer="shops/acme/customers/alice"), timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        Blocking.release.set()
        c.client.close()
        c.server.stop(None).wait()


class Fixed(Broken):
    """Always proposes the same item, so its offers are easy to recognise."""

    def recommend(self, query):
        return [Scored("i21", 5.0, "Because you are new here")]


def test_cold_and_warm_customers_are_routed_to_their_own_chains(store):
    routing = Routing.parse("warm=popularity;cold=fixed,popularity")
    settings = RecommendationSettings(routing=routing, refresh_seconds=0)
    c = start_cluster(store, settings, plugins(fixed=lambda s: Fixed()))
    try:
        small_shop(c.client)
        cold = c.client.recommend("acme", "alice", page_size=3)
        assert cold.offers[0].recommender == "fixed"
        c.client.record_interactions("acme", [InteractionInput("alice", "i02", "view")])
        warm = c.client.recommend("acme", "alice", page_size=3)
        assert {o.recommender for o in warm.offers} == {"popularity"}
    finally:
        c.client.close()
        c.server.stop(None).wait()


class Explaining(Broken):
    """Names the recent item behind its one offer, as factor models do."""

    def recommend(self, query):
        return [
            Scored("i09", 3.0, "Picked for your taste", because_item_id="i05"),
            Scored("i10", 2.0, "Picked for your taste", because_item_id="never-seen"),
        ]


def test_reasons_name_the_recent_item_behind_an_offer(store):
    settings = RecommendationSettings(routing=Routing.parse("explaining"), refresh_seconds=0)
    c = start_cluster(store, settings, plugins(explaining=lambda s: Explaining()))
    try:
        small_shop(c.client)
        c.client.record_interactions("acme", [InteractionInput("alice", "i05", "purchase")])
        offers = c.client.recommend("acme", "alice", page_size=2).offers
        assert [o.reason for o in offers] == [
            "Because you bought Item i05",
            "Picked for your taste",
        ]
        # The structured reason: kind, evidence and recommender (issue 11).
        first, second = (o.explanation for o in offers)
        assert first.kind == pb.REASON_KIND_BECAUSE_YOU_BOUGHT
        assert list(first.evidence_items) == ["shops/acme/items/i05"]
        assert first.recommender == "explaining" and first.text == offers[0].reason
        assert second.kind == pb.REASON_KIND_PICKED_FOR_YOU and not second.evidence_items
        c.client.record_interactions("acme", [InteractionInput("alice", "i05", "view")])
        offers = c.client.recommend("acme", "alice", page_size=1).offers
        assert offers[0].reason == "Because you viewed Item i05"  # what they did last
    finally:
        c.client.close()
        c.server.stop(None).wait()
