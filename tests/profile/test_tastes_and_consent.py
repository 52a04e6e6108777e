"""Issue 11 on the profile side, over real gRPC: "what we think you like" with its evidence and
its correction, and training consent keeping a customer's events out of every model."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from kosmos.client import InteractionInput
from kosmos.common.timestamps import to_seconds
from kosmos.training.data import training_data
from kosmos.v1 import common_pb2, profile_service_pb2, profile_service_pb2_grpc
from tests.helpers import small_shop

ALICE = "shops/acme/customers/alice"


@pytest.fixture
def profiles(kosmos):
    return profile_service_pb2_grpc.ProfileServiceStub(kosmos.channel)


@pytest.fixture
def shop(client):
    small_shop(client)
    client.record_interactions(
        "acme",
        [InteractionInput("bob", f"i{n:02d}", "purchase") for n in range(8) for _ in range(8 - n)],
    )
    return "acme"


def tastes(profiles) -> profile_service_pb2.GetTastesResponse:
    return profiles.GetTastes(profile_service_pb2.GetTastesRequest(customer=ALICE), timeout=5)


def test_inferred_tastes_carry_evidence_and_a_correction_holds_next_request(client, profiles, shop):
    now = time.time()
    # Garden (i01, i05, i09: category index 1) clicked three times, newest i09; one Toys view.
    client.record_interactions(
        shop,
        [
            InteractionInput("alice", "i01", "click", event_time=_dt(now - 300)),
            InteractionInput("alice", "i05", "click", event_time=_dt(now - 200)),
            InteractionInput("alice", "i09", "click", event_time=_dt(now - 100)),
            InteractionInput("alice", "i02", "view", event_time=_dt(now - 50)),
        ],
    )
    found = tastes(profiles)
    categories = [t for t in found.inferred if t.kind == common_pb2.PREFERENCE_KIND_LIKED_CATEGORY]
    assert [t.value for t in categories] == ["Garden", "Toys"]
    garden = categories[0]
    assert garden.weight > 0.5
    assert [e.item for e in garden.evidence] == [f"shops/acme/items/i{n:02d}" for n in (9, 5, 1)]
    assert abs(to_seconds(garden.evidence[0].event_time) - (now - 100)) < 0.01
    assert any(t.kind == common_pb2.PREFERENCE_KIND_LIKED_BRAND for t in found.inferred)
    before = client.recommend(shop, "alice", page_size=8)
    assert int(before.offers[0].item.rsplit("/i", 1)[1]) % 4 == 1  # her clicks lead: Garden

    corrected = profiles.CorrectTaste(
        profile_service_pb2.CorrectTasteRequest(
            customer=ALICE, kind=common_pb2.PREFERENCE_KIND_LIKED_CATEGORY, value="garden"
        ),
        timeout=5,
    )
    assert [(p.kind, p.value) for p in corrected.customer.preferences] == [
        (common_pb2.PREFERENCE_KIND_DISLIKED_CATEGORY, "garden")
    ]
    found = tastes(profiles)
    assert "Garden" not in [t.value for t in found.inferred]
    assert [p.value for p in found.stated] == ["garden"]
    after = client.recommend(shop, "alice", page_size=8)
    garden_ranks = [
        n for n, o in enumerate(after.offers) if int(o.item.rsplit("/i", 1)[1]) % 4 == 1
    ]
    assert not garden_ranks or garden_ranks[0] >= 2  # her Garden clicks no longer lead


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_without_training_consent_events_never_enter_a_model(client, kosmos, profiles, shop):
    client.record_interactions(shop, [InteractionInput("alice", "i13", "click")])
    assert "alice" in {i.customer_id for i in training_data(kosmos.store, shop, 0).interactions}
    profiles.SetConsent(
        profile_service_pb2.SetConsentRequest(
            customer=ALICE,
            consent=common_pb2.Consent(
                purpose=common_pb2.CONSENT_PURPOSE_TRAINING, granted=False, source="settings"
            ),
        ),
        timeout=5,
    )
    client.record_interactions(shop, [InteractionInput("alice", "i17", "click")])
    data = training_data(kosmos.store, shop, 0)  # what the trainer and the holdout fit on
    assert "alice" not in {i.customer_id for i in data.interactions}
    assert "bob" in {i.customer_id for i in data.interactions}
    # Her own requests still follow her history (kept for her own personalization).
    first = client.recommend(shop, "alice", page_size=5).offers[0]
    assert int(first.item.rsplit("/i", 1)[1]) % 4 == 1


def test_the_python_client_covers_the_customer_rpcs(client, shop):
    stored = client.set_preferences(
        shop, "alice", [("liked_category", "Garden")], price_range=(0.0, 50.0)
    )
    assert stored.preferences[0].kind == common_pb2.PREFERENCE_KIND_LIKED_CATEGORY
    assert stored.price_range.max_price == 50.0
    with pytest.raises(ValueError, match="liked_category"):
        client.set_preferences(shop, "alice", [("loved", "Garden")])
    client.record_interactions(shop, [InteractionInput("alice", "i00", "dismiss")])
    assert client.undo_dismissal(shop, "alice", "i00") == 1
    client.record_interactions(shop, [InteractionInput("anon-c", "i13", "click")])
    assert client.link_identity(shop, "alice", "anon-c", "login").linked.endswith("/anon-c")
    assert [t.value for t in client.get_tastes(shop, "alice").inferred][:1] == ["Garden"]
    client.correct_taste(shop, "alice", "category", "Garden")
    assert "Garden" not in [t.value for t in client.get_tastes(shop, "alice").inferred]
    client.set_consent(shop, "alice", "cross_device_linking", False, "settings")
    assert not client.unlink_identity(shop, "alice", "anon-c")  # withdrawing unlinked it
    assert [c.source for c in client.list_consent_changes(shop, "alice")] == ["settings"]
    top = client.recommend(shop, "alice", page_size=1).offers[0].item.rsplit("/", 1)[1]
    assert client.explain(shop, "alice", top).rank == 1
    receipt = client.erase_customer(shop, "alice")
    assert receipt.profile_removed and receipt.consents_removed == 1
    assert receipt.interactions_removed == 0  # her one event, the dismissal, was undone
