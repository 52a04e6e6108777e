"""Property tests (issue 11): over random shops, customers, exclusions, dismissals, linked
devices and consent, through the gRPC API of one real cluster, no offer ever breaks an
exclusion or a consent, every offer carries a structured reason, and the page stays full."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kosmos.common.timestamps import to_timestamp
from kosmos.store import SQLiteStore
from kosmos.v1 import (
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    common_pb2,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    profile_service_pb2,
)
from kosmos.v1 import profile_service_pb2_grpc as profile_grpc
from kosmos.v1 import recommendation_service_pb2 as pb
from kosmos.v1 import recommendation_service_pb2_grpc as rec_grpc
from tests.conftest import start_cluster

CATEGORIES = ("Tea", "Garden", "Toys")
BRANDS = ("Acme", "Zeta")
_SHOPS = itertools.count()


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> Iterator[grpc.Channel]:
    store = SQLiteStore(tmp_path_factory.mktemp("props") / "kosmos.db")
    cluster = start_cluster(store)
    yield cluster.channel
    cluster.close()
    store.close()


def spelled(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.lower(), word.upper(), word.swapcase()])


items = st.lists(
    st.tuples(
        st.sampled_from(CATEGORIES).flatmap(spelled),
        st.sampled_from(BRANDS).flatmap(spelled),
        st.integers(0, 9),
    ),
    min_size=3,
    max_size=30,
)
exclusions = st.lists(
    st.one_of(
        st.tuples(st.just(common_pb2.EXCLUSION_KIND_ITEM), st.integers(0, 29).map(str)),
        st.tuples(
            st.just(common_pb2.EXCLUSION_KIND_CATEGORY),
            st.sampled_from(CATEGORIES).flatmap(spelled),
        ),
        st.tuples(
            st.just(common_pb2.EXCLUSION_KIND_BRAND), st.sampled_from(BRANDS).flatmap(spelled)
        ),
    ).flatmap(lambda kv: st.tuples(st.just(kv[0]), st.just(kv[1]), st.sampled_from([0, 1, -1]))),
    max_size=4,
)
events = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "anon-d"]),
        st.integers(0, 29),
        st.sampled_from(
            [
                common_pb2.INTERACTION_TYPE_VIEW,
                common_pb2.INTERACTION_TYPE_PURCHASE,
                common_pb2.INTERACTION_TYPE_DISMISS,
            ]
        ),
    ),
    max_size=30,
)


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    catalog=items,
    stock=st.lists(st.booleans(), min_size=30, max_size=30),
    excluded=exclusions,
    history=events,
    personal=st.booleans(),
    link=st.booleans(),
    page_size=st.integers(1, 20),
    likes=st.lists(st.sampled_from(CATEGORIES + BRANDS).flatmap(spelled), max_size=2),
)
def test_no_offer_breaks_a_choice_or_a_consent_and_every_offer_has_a_reason(
    channel, catalog, stock, excluded, history, personal, link, page_size, likes
):
    profiles = profile_grpc.ProfileServiceStub(channel)
    recs = rec_grpc.RecommendationServiceStub(channel)
    shop = f"s{next(_SHOPS)}"
    profiles.CreateShop(
        profile_service_pb2.CreateShopRequest(shop_id=shop, shop=common_pb2.Shop()), timeout=5
    )
    n_items = len(catalog)
    in_stock = [stock[n] or n % 3 == 0 for n in range(n_items)]  # at least a third in stock
    catalog_service_pb2_grpc.CatalogServiceStub(channel).UpsertItems(
        catalog_service_pb2.UpsertItemsRequest(
            parent=f"shops/{shop}",
            items=[
                common_pb2.Item(
                    name=f"shops/{shop}/items/{n}",
                    title=f"Item {n}",
                    category=category,
                    brand=brand,
                    price=float(price),
                    out_of_stock=not in_stock[n],
                )
                for n, (category, brand, price) in enumerate(catalog)
            ],
        ),
        timeout=5,
    )
    now = time.time()
    alice = f"shops/{shop}/customers/alice"
    customer = common_pb2.Customer(
        exclusions=[
            common_pb2.Exclusion(
                kind=kind,
                value=value,
                expire_time=to_timestamp(now + 3600 * sign) if sign else None,
            )
            for kind, value, sign in excluded
        ],
        preferences=[
            common_pb2.Preference(
                kind=common_pb2.PREFERENCE_KIND_LIKED_CATEGORY
                if v.casefold() in {c.casefold() for c in CATEGORIES}
                else common_pb2.PREFERENCE_KIND_LIKED_BRAND,
                value=v,
            )
            for v in likes
        ],
    )
    for who in ("alice", "bob"):
        profiles.CreateCustomer(
            profile_service_pb2.CreateCustomerRequest(
                parent=f"shops/{shop}", customer_id=who, customer=customer
            ),
            timeout=5,
        )
    valid = [(who, n, kind) for who, n, kind in history if n < n_items]
    if valid:
        feedback_service_pb2_grpc.FeedbackServiceStub(channel).RecordInteractions(
            feedback_service_pb2.RecordInteractionsRequest(
                parent=f"shops/{shop}",
                request_id=f"{shop}-events",
                interactions=[
                    common_pb2.Interaction(
                        customer=f"shops/{shop}/customers/{who}", item_id=str(n), type=kind
                    )
                    for who, n, kind in valid
                ],
            ),
            timeout=5,
        )
    linked = link and any(who == "anon-d" for who, _, _ in valid)
    if linked:
        profiles.LinkIdentity(
            profile_service_pb2.LinkIdentityRequest(
                customer=alice, linked=f"shops/{shop}/customers/anon-d", source="login"
            ),
            timeout=5,
        )
    if not personal:
        profiles.SetConsent(
            profile_service_pb2.SetConsentRequest(
                customer=alice,
                consent=common_pb2.Consent(
                    purpose=common_pb2.CONSENT_PURPOSE_PERSONALIZATION,
                    granted=False,
                    source="banner",
                ),
            ),
            timeout=5,
        )

    live = [(kind, value) for kind, value, sign in excluded if sign >= 0]
    banned_items = {v for k, v in live if k == common_pb2.EXCLUSION_KIND_ITEM}
    banned_categories = {v.casefold() for k, v in live if k == common_pb2.EXCLUSION_KIND_CATEGORY}
    banned_brands = {v.casefold() for k, v in live if k == common_pb2.EXCLUSION_KIND_BRAND}
    people = {"alice", "anon-d"} if linked else {"alice"}
    dismissed = {
        str(n)
        for who, n, kind in valid
        if who in people and kind == common_pb2.INTERACTION_TYPE_DISMISS
    }

    def allowed(n: int) -> bool:
        category, brand, _ = catalog[n]
        return (
            in_stock[n]
            and str(n) not in banned_items
            and str(n) not in dismissed
            and category.casefold() not in banned_categories
            and brand.casefold() not in banned_brands
        )

    response = recs.Recommend(pb.RecommendRequest(customer=alice, page_size=page_size), timeout=10)
    similar = recs.SimilarItems(
        pb.SimilarItemsRequest(item=f"shops/{shop}/items/0", customer=alice, page_size=page_size),
        timeout=10,
    )
    for offer in [*response.offers, *similar.offers]:
        n = int(offer.item.rsplit("/", 1)[1])
        assert allowed(n), (offer.item, catalog[n], live, dismissed)
        assert offer.explanation.kind != pb.REASON_KIND_UNSPECIFIED
        assert offer.explanation.text and offer.explanation.text == offer.reason
        assert offer.explanation.recommender == offer.recommender != ""
    for offer in response.offers:
        if not personal:
            assert offer.explanation.kind == pb.REASON_KIND_NON_PERSONAL
    # The page stays full while allowed items remain (bought ones may be held back by the
    # seen-item policy and the repurchase cooldown).
    bought = {
        str(n)
        for who, n, kind in valid
        if who in people and kind == common_pb2.INTERACTION_TYPE_PURCHASE
    }
    eligible = [n for n in range(n_items) if allowed(n) and str(n) not in bought]
    assert len(response.offers) >= min(page_size, len(eligible))
