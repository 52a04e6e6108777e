"""Issue 11 in the request path, over real gRPC against a real cluster: the customer's stated
choices (hard, case-insensitive, expiring exclusions; preferences that move the ranking; undo
a dismissal), consent, anonymous ids and identity links, structured reasons and Explain."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kosmos.client import InteractionInput
from kosmos.common.timestamps import to_timestamp
from kosmos.v1 import (
    common_pb2,
    profile_service_pb2,
    profile_service_pb2_grpc,
    recommendation_service_pb2_grpc,
)
from kosmos.v1 import recommendation_service_pb2 as pb
from tests.helpers import assert_invalid, item, small_shop, status_of

ALICE = "shops/acme/customers/alice"


@pytest.fixture
def profiles(kosmos):
    return profile_service_pb2_grpc.ProfileServiceStub(kosmos.channel)


@pytest.fixture
def recs(kosmos):
    return recommendation_service_pb2_grpc.RecommendationServiceStub(kosmos.channel)


@pytest.fixture
def shop(client):
    small_shop(client)
    # i00..i11 are best sellers in that order (bob's purchases); i12..i23 have no sales.
    events = [
        InteractionInput("bob", f"i{n:02d}", "purchase") for n in range(12) for _ in range(12 - n)
    ]
    client.record_interactions("acme", events)
    return "acme"


def category_of(item_id: str) -> str:
    return ("Kitchen", "Garden", "Toys", "Books")[int(item_id[1:]) % 4]


def brand_of(item_id: str) -> str:
    return f"B{int(item_id[1:]) % 3}"


def ids(response) -> list[str]:
    return [o.item.rsplit("/", 1)[1] for o in response.offers]


def recommend(recs, customer: str = ALICE, size: int = 10) -> pb.RecommendResponse:
    return recs.Recommend(pb.RecommendRequest(customer=customer, page_size=size), timeout=10)


def update(profiles, paths: list[str], **fields) -> common_pb2.Customer:
    response = profiles.UpdateCustomer(
        profile_service_pb2.UpdateCustomerRequest(
            customer=common_pb2.Customer(name=ALICE, **fields),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        ),
        timeout=5,
    )
    return response.customer


def exclusion(kind, value: str, expire: float | None = None) -> common_pb2.Exclusion:
    e = common_pb2.Exclusion(kind=kind, value=value)
    if expire is not None:
        e.expire_time.CopyFrom(to_timestamp(expire))
    return e


def test_exclusions_are_case_insensitive_hard_and_expire(profiles, recs, shop):
    later = time.time() + 3600
    stored = update(
        profiles,
        ["exclusions"],
        exclusions=[
            exclusion(common_pb2.EXCLUSION_KIND_CATEGORY, "toys"),  # the catalog says "Toys"
            exclusion(common_pb2.EXCLUSION_KIND_BRAND, "b1", expire=later),
            exclusion(common_pb2.EXCLUSION_KIND_CATEGORY, "GARDEN", expire=time.time() - 1),
        ],
    )
    # The lapsed exclusion is dropped on write; the others keep their expiry.
    assert [(e.value, e.HasField("expire_time")) for e in stored.exclusions] == [
        ("toys", False),
        ("b1", True),
    ]
    offered = ids(recommend(recs, size=20))
    assert offered
    assert not [i for i in offered if category_of(i) == "Toys" or brand_of(i) == "B1"]
    assert any(category_of(i) == "Garden" for i in offered)


def test_the_page_stays_full_when_exclusions_remove_most_candidates(profiles, recs, shop):
    update(
        profiles,
        ["exclusions"],
        exclusions=[
            exclusion(common_pb2.EXCLUSION_KIND_CATEGORY, c) for c in ("kitchen", "garden", "toys")
        ],
    )
    # Only the 6 Books items are left; the first ask (k = 2*6+10) mostly brings others.
    offered = ids(recommend(recs, size=6))
    assert sorted(offered) == ["i03", "i07", "i11", "i15", "i19", "i23"]


def test_undo_dismissal_brings_the_item_back(client, profiles, recs, shop):
    client.record_interactions(shop, [InteractionInput("alice", "i00", "dismiss")])
    assert "i00" not in ids(recommend(recs))
    undo = profile_service_pb2.UndoDismissalRequest(customer=ALICE, item_id="i00")
    assert profiles.UndoDismissal(undo, timeout=5).restored_count == 1
    assert "i00" in ids(recommend(recs))
    assert profiles.UndoDismissal(undo, timeout=5).restored_count == 0  # idempotent
    # A retry of a request whose dismissal was undone answers, with what is left (it failed
    # INTERNAL once: the replay no longer lined up with the request).
    again = [InteractionInput("alice", "i01", "dismiss"), InteractionInput("alice", "i02", "view")]
    client.record_interactions(shop, again, request_id="undo-1")
    profiles.UndoDismissal(
        profile_service_pb2.UndoDismissalRequest(customer=ALICE, item_id="i01"), timeout=5
    )
    replay = client.record_interactions(shop, again, request_id="undo-1")
    assert [i.item_id for i in replay] == ["i02"]
    assert "i01" in ids(recommend(recs, size=24))


def mean_rank(offered: list[str], wanted) -> float:
    ranks = [n for n, i in enumerate(offered) if wanted(i)]
    return sum(ranks) / len(ranks)


def test_preferences_move_the_ranking_measurably(profiles, recs, shop):
    before = ids(recommend(recs, size=24))

    def garden(i: str) -> bool:
        return category_of(i) == "Garden"

    update(
        profiles,
        ["preferences", "price_range"],
        preferences=[
            common_pb2.Preference(kind=common_pb2.PREFERENCE_KIND_LIKED_CATEGORY, value="garden"),
            common_pb2.Preference(kind=common_pb2.PREFERENCE_KIND_DISLIKED_BRAND, value="B0"),
        ],
        price_range=common_pb2.PriceRange(min_price=0, max_price=100),
    )
    response = recommend(recs, size=24)
    after = ids(response)
    # Liked Garden moves up, disliked brand B0 moves down: by more than a position on average.
    assert mean_rank(after, garden) < mean_rank(before, garden) - 1
    b0 = lambda i: brand_of(i) == "B0"  # noqa: E731
    assert mean_rank(after, b0) > mean_rank(before, b0) + 1
    told = [o for o in response.offers if o.explanation.kind == pb.REASON_KIND_YOU_TOLD_US]
    assert told and all("garden" in o.reason for o in told)
    # A price range nobody's item fits (all cost 9.5) ranks everything alike: no change.
    update(profiles, ["price_range"], price_range=common_pb2.PriceRange(min_price=50))
    assert ids(recommend(recs, size=24)) == after


def test_without_personalization_consent_offers_are_non_personal(profiles, recs, client, shop):
    client.record_interactions(shop, [InteractionInput("alice", "i13", "click")])
    personal = recommend(recs)
    assert any(o.explanation.kind != pb.REASON_KIND_NON_PERSONAL for o in personal.offers)
    changed = profiles.SetConsent(
        profile_service_pb2.SetConsentRequest(
            customer=ALICE,
            consent=common_pb2.Consent(
                purpose=common_pb2.CONSENT_PURPOSE_PERSONALIZATION,
                granted=False,
                source="cookie-banner",
            ),
        ),
        timeout=5,
    )
    assert changed.consent.update_time.seconds > 0
    response = recommend(recs)
    assert len(response.offers) == 10
    assert {o.explanation.kind for o in response.offers} == {pb.REASON_KIND_NON_PERSONAL}
    assert all(o.reason and not o.explanation.evidence_items for o in response.offers)
    # Her exclusions still hold: they are a restriction she asked for, not personalization.
    update(profiles, ["exclusions"], exclusions=[exclusion(common_pb2.EXCLUSION_KIND_ITEM, "i00")])
    assert "i00" not in ids(recommend(recs))
    history = profiles.ListConsentChanges(
        profile_service_pb2.ListConsentChangesRequest(customer=ALICE), timeout=5
    )
    assert [(c.granted, c.source) for c in history.changes] == [(False, "cookie-banner")]
    got = profiles.GetCustomer(profile_service_pb2.GetCustomerRequest(name=ALICE), timeout=5)
    by_purpose = {c.purpose: c for c in got.customer.consents}
    assert not by_purpose[common_pb2.CONSENT_PURPOSE_PERSONALIZATION].granted
    assert by_purpose[common_pb2.CONSENT_PURPOSE_TRAINING].source == "default"


def test_an_anonymous_id_shops_and_its_history_counts_once_linked(client, profiles, recs, shop):
    device = "shops/acme/customers/anon-7f3a"
    # Before it is known: it gets offers and sends feedback (no CUSTOMER_NOT_FOUND).
    assert len(recommend(recs, customer=device).offers) == 10
    garden = [f"i{n:02d}" for n in (13, 17, 21)]
    client.record_interactions(shop, [InteractionInput("anon-7f3a", i, "click") for i in garden])
    before = ids(recommend(recs))
    assert category_of(before[0]) != "Garden"
    link = profiles.LinkIdentity(
        profile_service_pb2.LinkIdentityRequest(customer=ALICE, linked=device, source="login"),
        timeout=5,
    )
    assert link.link.linked == device
    linked = recommend(recs)
    assert category_of(ids(linked)[0]) == "Garden"  # the device's clicks count at once
    # Its dismissals hold for her too, on product pages as well (a property test found
    # SimilarItems reading only her own).
    similar = recs.SimilarItems(
        pb.SimilarItemsRequest(item="shops/acme/items/i00", customer=ALICE, page_size=20),
        timeout=5,
    )
    shown = ids(similar)[0]
    client.record_interactions(shop, [InteractionInput("anon-7f3a", shown, "dismiss")])
    similar = recs.SimilarItems(
        pb.SimilarItemsRequest(item="shops/acme/items/i00", customer=ALICE, page_size=20),
        timeout=5,
    )
    assert shown not in ids(similar)
    client.undo_dismissal(shop, "anon-7f3a", shown)
    profiles.UnlinkIdentity(
        profile_service_pb2.UnlinkIdentityRequest(customer=ALICE, linked=device), timeout=5
    )
    assert ids(recommend(recs)) == before  # both histories as they were
    assert category_of(ids(recommend(recs, customer=device))[0]) == "Garden"


def test_withdrawing_link_consent_unlinks_and_refuses_new_links(client, profiles, recs, shop):
    device = "shops/acme/customers/anon-9"
    client.record_interactions(shop, [InteractionInput("anon-9", "i13", "click")])
    request = profile_service_pb2.LinkIdentityRequest(customer=ALICE, linked=device, source="login")
    profiles.LinkIdentity(request, timeout=5)
    withdrawn = profiles.SetConsent(
        profile_service_pb2.SetConsentRequest(
            customer=ALICE,
            consent=common_pb2.Consent(
                purpose=common_pb2.CONSENT_PURPOSE_CROSS_DEVICE_LINKING,
                granted=False,
                source="settings",
            ),
        ),
        timeout=5,
    )
    assert withdrawn.unlinked_count == 1
    links = profiles.ListIdentityLinks(
        profile_service_pb2.ListIdentityLinksRequest(customer=ALICE), timeout=5
    )
    assert not links.links
    with pytest.raises(grpc.RpcError) as caught:
        profiles.LinkIdentity(request, timeout=5)
    code, reason, _ = status_of(caught.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_LINKING_CONSENT")


def test_explain_gives_the_structured_reason_or_says_why_not(client, profiles, recs, shop):
    client.record_interactions(shop, [InteractionInput("alice", "i13", "click")])
    offered = recommend(recs, size=5).offers[0]
    found = recs.Explain(
        pb.RecommendationServiceExplainRequest(customer=ALICE, item=offered.item), timeout=5
    )
    assert found.offered and found.rank == 1
    assert found.offer.explanation == offered.explanation
    assert not found.applied_preferences
    liked = category_of(offered.item.rsplit("/", 1)[1])
    update(
        profiles,
        ["preferences"],
        preferences=[
            common_pb2.Preference(kind=common_pb2.PREFERENCE_KIND_LIKED_CATEGORY, value=liked)
        ],
    )
    found = recs.Explain(
        pb.RecommendationServiceExplainRequest(customer=ALICE, item=offered.item), timeout=5
    )
    assert list(found.applied_preferences) == [f"You like {liked}: ranked higher"]
    update(profiles, ["exclusions"], exclusions=[exclusion(common_pb2.EXCLUSION_KIND_BRAND, "b0")])
    with pytest.raises(grpc.RpcError) as caught:
        recs.Explain(
            pb.RecommendationServiceExplainRequest(customer=ALICE, item="shops/acme/items/i00"),
            timeout=5,
        )
    assert status_of(caught.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "EXCLUDED")
    with pytest.raises(grpc.RpcError) as caught:
        recs.Explain(
            pb.RecommendationServiceExplainRequest(customer=ALICE, item="shops/acme/items/zz"),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_bad_input_names_the_field(profiles, recs, shop, client):
    client.upsert_items(shop, [item(shop, "i00")])
    cases = [
        (
            profiles.UpdateCustomer,
            profile_service_pb2.UpdateCustomerRequest(
                customer=common_pb2.Customer(name=ALICE, preferences=[common_pb2.Preference()]),
                update_mask=field_mask_pb2.FieldMask(paths=["preferences"]),
            ),
            "customer.preferences[0].kind",
        ),
        (
            profiles.UpdateCustomer,
            profile_service_pb2.UpdateCustomerRequest(
                customer=common_pb2.Customer(
                    name=ALICE, price_range=common_pb2.PriceRange(min_price=5, max_price=2)
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["price_range"]),
            ),
            "customer.price_range.max_price",
        ),
        (
            profiles.SetConsent,
            profile_service_pb2.SetConsentRequest(
                customer=ALICE,
                consent=common_pb2.Consent(purpose=common_pb2.CONSENT_PURPOSE_TRAINING),
            ),
            "consent.source",
        ),
        (
            profiles.SetConsent,
            profile_service_pb2.SetConsentRequest(
                customer=ALICE, consent=common_pb2.Consent(source="x")
            ),
            "consent.purpose",
        ),
        (
            profiles.LinkIdentity,
            profile_service_pb2.LinkIdentityRequest(
                customer=ALICE, linked="shops/other/customers/x", source="login"
            ),
            "linked",
        ),
        (
            profiles.CorrectTaste,
            profile_service_pb2.CorrectTasteRequest(
                customer=ALICE, kind=common_pb2.PREFERENCE_KIND_DISLIKED_BRAND, value="B1"
            ),
            "kind",
        ),
        (
            recs.Explain,
            pb.RecommendationServiceExplainRequest(customer=ALICE, item="shops/other/items/i00"),
            "item",
        ),
    ]
    for call, request, field in cases:
        assert_invalid(call, request, field)
