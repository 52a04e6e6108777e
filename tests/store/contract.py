"""The Store contract: one suite every store runs, through public methods only.

Shaped after OpenTelemetry's shared SQLAlchemy test mixin: a store's test module subclasses
`StoreContract` and supplies a ``store`` fixture (built with ``lock_timeout=LOCK_TIMEOUT``) and
`hold_write_lock`, which makes another client of the same database hold what a write needs.
The contract pins the error translation every store owes its callers (issue 8): a lock held too
long or a lost connection is `Unavailable` (retryable, nothing committed), the caller's deadline
running out is `DeadlineExceeded`, and no wait outlasts the caller's deadline.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from contextlib import AbstractContextManager

import numpy as np
import pytest

from kosmos.common.deadline import deadline_scope
from kosmos.common.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    NotFound,
    Unavailable,
)
from kosmos.recommendation import pages
from kosmos.store import Store
from kosmos.store.records import (
    ApiKey,
    ConsentPurpose,
    Customer,
    Exclusion,
    ExclusionKind,
    Impression,
    Interaction,
    InteractionType,
    Item,
    ModelArtifact,
    Preference,
    PreferenceKind,
    PriceRange,
    RecommendationList,
    Replica,
    Shop,
    ShopRevisions,
)

# How long a store built for the contract waits for a lock when the caller set no deadline.
LOCK_TIMEOUT = 0.5
# Generous bound on "returned promptly" for a 0.3 s deadline on a loaded 2-core machine; the
# bug it guards against waited 30 s.
PROMPT = 3.0


def seed(store: Store, shop: str = "acme") -> None:
    store.create_shop(Shop(shop, "Acme"))
    store.create_customer(
        Customer(shop, "alice", {"a": "1"}, (Exclusion(ExclusionKind.BRAND, "X"),))
    )
    store.create_customer(Customer(shop, "bob"))
    store.upsert_items([Item(shop, f"i{n}", title=f"Item {n}", category="c") for n in range(3)])


def visit(n: int = 0, customer: str = "alice", kind: InteractionType = InteractionType.VIEW):
    return Interaction("acme", customer, f"i{n}", kind, 1000.0 + n)


class StoreContract:
    """Subclass and provide the ``store`` fixture and `hold_write_lock`."""

    def hold_write_lock(self, store: Store) -> AbstractContextManager[None]:
        """While entered, another client holds the lock an interaction write needs."""
        raise NotImplementedError

    def cut_connections(self, store: Store) -> None:
        """Kills the store's connections from the database side (skip where there are none)."""
        pytest.skip("this store has no connection to lose")

    # -- round trips -------------------------------------------------------------------------

    def test_round_trips(self, store: Store) -> None:
        seed(store)
        assert store.get_shop("acme").display_name == "Acme"
        assert store.get_shop("nope") is None
        alice = store.get_customer("acme", "alice")
        assert alice.attributes == {"a": "1"}
        assert alice.exclusions == (Exclusion(ExclusionKind.BRAND, "X"),)
        assert alice.create_time > 0
        assert set(store.get_items("acme", ["i0", "i2", "nope"])) == {"i0", "i2"}
        assert store.get_items("acme", ["i1"])["i1"].title == "Item 1"
        assert store.existing_customer_ids("acme", ["alice", "bob", "carol"]) == {"alice", "bob"}
        assert [c.customer_id for c in store.list_customers("acme", "alice", 10)] == ["bob"]
        assert [i.item_id for i in store.list_items("acme", "", 2)] == ["i0", "i1"]
        assert store.list_shop_ids() == ["acme"]

    def test_creating_twice_is_already_exists(self, store: Store) -> None:
        seed(store)
        with pytest.raises(AlreadyExists):
            store.create_shop(Shop("acme"))
        with pytest.raises(AlreadyExists):
            store.create_customer(Customer("acme", "alice"))

    def test_update_replaces_and_unknown_is_not_found(self, store: Store) -> None:
        seed(store)
        updated = store.update_customer(Customer("acme", "alice", {"b": "2"}))
        assert updated.attributes == {"b": "2"} and updated.exclusions == ()
        assert updated.update_time >= updated.create_time
        with pytest.raises(NotFound):
            store.update_customer(Customer("acme", "zed"))

    def test_shops_do_not_see_each_other(self, store: Store) -> None:
        seed(store)
        seed(store, "other")
        store.record_interactions("acme", "r", "h", [visit(0)])
        assert list(store.iter_interactions("other")) == []
        assert store.list_interactions("other", "alice", None, 10) == []

    # -- interactions ------------------------------------------------------------------------

    def test_record_is_idempotent_and_checks_the_hash(self, store: Store) -> None:
        seed(store)
        stored, replay = store.record_interactions("acme", "r1", "h1", [visit(0), visit(1)])
        assert not replay and stored[0].seq < stored[1].seq
        again, replay = store.record_interactions("acme", "r1", "h1", [visit(0), visit(1)])
        assert replay and again == stored
        with pytest.raises(AlreadyExists):
            store.record_interactions("acme", "r1", "other", [visit(2)])
        assert [i.item_id for i in store.iter_interactions("acme")] == ["i0", "i1"]

    def test_concurrent_retries_store_once(self, store: Store) -> None:
        seed(store)
        barrier = threading.Barrier(8)
        results = []

        def send() -> None:
            barrier.wait(timeout=10)
            results.append(store.record_interactions("acme", "same", "h", [visit(0)]))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 8
        assert sum(not replay for _, replay in results) == 1
        assert len(list(store.iter_interactions("acme"))) == 1

    @pytest.mark.parametrize(
        ("shop", "customer", "item", "kind"),
        [
            ("nope", "alice", "i0", "shop"),
            ("acme", "zed", "i0", "customer"),
            ("acme", "alice", "i9", "item"),
        ],
    )
    def test_unknown_references_store_nothing(
        self, store: Store, shop: str, customer: str, item: str, kind: str
    ) -> None:
        seed(store)
        bad = Interaction(shop, customer, item, InteractionType.VIEW, 1.0)
        with pytest.raises(NotFound) as raised:
            store.record_interactions(shop, "r", "h", [visit(1), bad])
        assert raised.value.resource_type == kind
        assert list(store.iter_interactions("acme")) == []
        # The request id is still free: the corrected batch is stored, not replayed.
        _, replay = store.record_interactions("acme", "r", "h2", [visit(1)])
        assert not replay

    def test_list_interactions_pages_newest_first(self, store: Store) -> None:
        seed(store)
        stored, _ = store.record_interactions("acme", "r", "h", [visit(n) for n in range(3)])
        first = store.list_interactions("acme", "alice", None, 2)
        assert [i.item_id for i in first] == ["i2", "i1"]
        rest = store.list_interactions("acme", "alice", first[-1].seq, 2)
        assert [i.item_id for i in rest] == ["i0"]
        assert [i.seq for i in store.iter_interactions("acme")] == [i.seq for i in stored]

    def test_reading_a_shops_interactions_spans_many_fetches_in_order(self, store: Store) -> None:
        seed(store)
        events = [visit(n % 3, "alice" if n % 2 else "bob") for n in range(12_001)]
        for start in range(0, len(events), 4000):  # more than two fetches of 5,000
            store.record_interactions("acme", f"r{start}", "h", events[start : start + 4000])
        seqs = [i.seq for i in store.iter_interactions("acme")]
        assert len(seqs) == len(events) and seqs == sorted(seqs)
        assert [i.seq for i in store.iter_interactions("acme", after_seq=seqs[6000])] == seqs[6001:]
        # Abandoned halfway (a model fold-in stops early), the read gives its connection back.
        for _ in range(20):
            reader = store.iter_interactions("acme")
            next(reader)
            reader.close()
        assert len(list(store.iter_interactions("acme"))) == len(events)

    def test_reading_a_shops_interactions_of_some_types_only(self, store: Store) -> None:
        seed(store)
        kinds = [InteractionType.VIEW, InteractionType.PURCHASE, InteractionType.CLICK] * 4
        events = [
            Interaction("acme", "alice", f"i{n % 3}", kind, 1_700_000_000.0 + n)
            for n, kind in enumerate(kinds)
        ]
        stored, _ = store.record_interactions("acme", "r", "h", events)
        bought = [i.seq for i in stored if i.type is InteractionType.PURCHASE]
        only = store.iter_interactions("acme", types=(InteractionType.PURCHASE,))
        assert [i.seq for i in only] == bought
        both = (InteractionType.PURCHASE, InteractionType.CLICK)
        assert [i.seq for i in store.iter_interactions("acme", stored[5].seq, both)] == [
            i.seq for i in stored[6:] if i.type in both
        ]
        assert list(store.iter_interactions("acme", types=())) == []

    def test_training_rows_are_the_interactions_as_plain_rows(self, store: Store) -> None:
        seed(store)
        events = [
            Interaction("acme", "alice" if n % 3 else "bob", f"i{n % 3}", kind, 1e9 - n, n / 2)
            for n, kind in enumerate(list(InteractionType) * 1100)  # more than one fetch
        ]
        events[5] = dataclasses.replace(events[5], channel="app", device="phone")
        for start in range(0, len(events), 3000):
            store.record_interactions("acme", f"r{start}", "h", events[start : start + 3000])
        rows = list(store.iter_training_rows("acme"))
        assert rows == [
            (
                i.customer_id,
                i.item_id,
                int(i.type),
                i.value,
                i.event_time,
                i.channel,
                i.device,
                i.seq,
            )
            for i in store.iter_interactions("acme")
        ]
        assert len(rows) == len(events) and rows[5][5:7] == ("app", "phone")

    def test_delete_customer_erases_their_interactions(self, store: Store) -> None:
        seed(store)
        store.record_interactions("acme", "r", "h", [visit(0), visit(1, "bob")])
        assert store.delete_customer("acme", "alice")
        assert [i.customer_id for i in store.iter_interactions("acme")] == ["bob"]
        assert store.get_customer("acme", "alice") is None
        assert not store.delete_customer("acme", "alice")

    # -- hot path ----------------------------------------------------------------------------

    def test_catalog_changes_bring_only_what_changed(self, store: Store) -> None:
        seed(store)
        assert store.catalog_changes("nope", -1) is None
        full = store.catalog_changes("acme", -1)
        assert [i.item_id for i in full.items] == ["i0", "i1", "i2"]
        assert full.version == store.catalog_version("acme")
        assert store.catalog_changes("acme", full.version).items == []
        store.upsert_items([Item("acme", "i1", title="New", available=False)])
        delta = store.catalog_changes("acme", full.version)
        assert delta.version > full.version
        assert [(i.item_id, i.title, i.available) for i in delta.items] == [("i1", "New", False)]
        assert store.catalog_version("acme") == delta.version

    def test_dismissals_and_the_combined_read(self, store: Store) -> None:
        seed(store)
        store.record_interactions(
            "acme",
            "r",
            "h",
            [visit(0), visit(1, kind=InteractionType.DISMISS), visit(2), visit(2, "bob")],
        )
        assert store.dismissed_item_ids("acme", "alice") == {"i1"}
        inputs = store.recommend_inputs("acme", "alice", 2)
        assert inputs.customer == store.get_customer("acme", "alice")
        assert [i.item_id for i in inputs.recent] == ["i2", "i1"]  # newest first, limited
        assert inputs.dismissed_item_ids == {"i1"}
        assert store.recommend_inputs("acme", "zed", 2) is None
        assert store.recommend_inputs("nope", "alice", 2) is None
        fresh = store.recommend_inputs("acme", "bob", 5)
        assert [i.item_id for i in fresh.recent] == ["i2"] and fresh.dismissed_item_ids == set()
        # What the customer owns, over the whole history, for the seen-item policy (issue 7).
        store.record_interactions(
            "acme", "r2", "h2", [visit(0, kind=InteractionType.PURCHASE), visit(2, "alice")]
        )
        owned = store.recommend_inputs("acme", "alice", 1, {InteractionType.PURCHASE})
        assert owned.owned_item_ids == {"i0"} and len(owned.recent) == 1
        touched = {InteractionType.VIEW, InteractionType.PURCHASE}
        assert store.recommend_inputs("acme", "alice", 1, touched).owned_item_ids == {"i0", "i2"}
        assert store.recommend_inputs("acme", "alice", 1).owned_item_ids == set()

    # -- API keys ------------------------------------------------------------------------------

    def test_api_keys_are_stored_hashed_listed_and_revoked(self, store: Store) -> None:
        made = store.create_api_key(ApiKey("k1", "acme", "storefront", "h1", "shop front"))
        store.create_api_key(ApiKey("k2", "", "operator", "h2"))
        store.create_api_key(ApiKey("k3", "acme", "admin", "h3"))
        assert made.create_time > 0 and made.revoke_time is None
        assert store.get_api_key("k1") == made
        assert store.get_api_key("nope") is None
        assert [k.key_id for k in store.list_api_keys("acme", "", 10)] == ["k1", "k3"]
        assert [k.key_id for k in store.list_api_keys("", "", 10)] == ["k2"]
        assert [k.key_id for k in store.list_api_keys(None, "k1", 10)] == ["k2", "k3"]
        with pytest.raises(AlreadyExists):
            store.create_api_key(ApiKey("k1", "other", "admin", "h9"))
        revoked = store.revoke_api_key("k1")
        assert revoked is not None and revoked.revoke_time is not None
        again = store.revoke_api_key("k1")
        assert again is not None and again.revoke_time == revoked.revoke_time  # once
        assert store.revoke_api_key("nope") is None

    # -- deadlines and error translation ------------------------------------------------------

    def test_an_expired_deadline_starts_no_work(self, store: Store) -> None:
        seed(store)
        with deadline_scope(-1.0):
            with pytest.raises(DeadlineExceeded):
                store.record_interactions("acme", "late", "h", [visit(0)])
            with pytest.raises(DeadlineExceeded):
                store.upsert_items([Item("acme", "late")])
            with pytest.raises(DeadlineExceeded):
                store.recommend_inputs("acme", "alice", 5)
            with pytest.raises(DeadlineExceeded):
                store.catalog_changes("acme", -1)
        assert list(store.iter_interactions("acme")) == []
        assert store.get_items("acme", ["late"]) == {}

    def test_a_held_lock_costs_no_more_than_the_deadline(self, store: Store) -> None:
        # Issue 8: a 0.2 s deadline waited 30 s for another writer's lock, and a batch whose
        # caller had given up was committed once the lock came free.
        seed(store)
        with self.hold_write_lock(store):
            started = time.monotonic()
            with deadline_scope(0.3), pytest.raises(DeadlineExceeded):
                store.record_interactions("acme", "r", "h", [visit(0)])
            assert time.monotonic() - started < PROMPT
        assert list(store.iter_interactions("acme")) == []  # nothing committed behind our back
        _, replay = store.record_interactions("acme", "r", "h", [visit(0)])
        assert not replay

    def test_a_lock_held_too_long_is_retryable(self, store: Store) -> None:
        seed(store)
        with self.hold_write_lock(store):
            started = time.monotonic()
            with pytest.raises(Unavailable) as raised:
                store.record_interactions("acme", "r", "h", [visit(0)])
            assert time.monotonic() - started < LOCK_TIMEOUT + PROMPT
        assert raised.value.code == "UNAVAILABLE"
        assert list(store.iter_interactions("acme")) == []

    def test_a_lost_connection_is_retryable_and_heals(self, store: Store) -> None:
        seed(store)
        store.get_customer("acme", "alice")  # a pooled connection exists
        self.cut_connections(store)
        outcomes = []
        for _ in range(3):  # the first call may find the dead connection; later ones heal
            try:
                outcomes.append(store.get_customer("acme", "alice") is not None)
            except Unavailable:
                outcomes.append(False)
        assert outcomes[-1] is True
        stored, _ = store.record_interactions("acme", "after", "h", [visit(0)])
        assert stored

    # -- model artifacts and data versions ----------------------------------------------------

    def test_model_versions_travel_through_the_store(self, store: Store) -> None:
        seed(store)
        assert store.current_model("acme", "als") is None and store.model_recommenders("acme") == []
        for n, version in enumerate(("v1", "v2")):
            store.put_model_artifact(
                ModelArtifact("acme", "als", version, 100.0 + n, f'{{"n": {n}}}'), bytes([n]) * 3
            )
        with pytest.raises(AlreadyExists):
            store.put_model_artifact(ModelArtifact("acme", "als", "v1", 1.0, "{}"), b"")
        assert [a.version for a in store.model_artifacts("acme", "als")] == ["v1", "v2"]
        assert store.model_blob("acme", "als", "v2") == b"\x01\x01\x01"
        assert store.model_blob("acme", "als", "v9") is None
        store.set_current_model("acme", "als", "v2")
        store.set_current_model("acme", "als", "v1")  # a rollback
        assert store.current_model("acme", "als") == "v1"
        with pytest.raises(NotFound):
            store.set_current_model("acme", "als", "v9")
        store.delete_model_artifacts("acme", "als", ["v2"])
        assert [a.version for a in store.model_artifacts("acme", "als")] == ["v1"]
        assert store.model_recommenders("acme") == ["als"]
        assert store.model_artifacts("other", "als") == []

    def test_data_version_moves_only_when_the_data_does(self, store: Store) -> None:
        seed(store)
        first = store.data_version("acme")
        assert store.data_version("acme") == first
        store.record_interactions("acme", "r", "h", [visit(0)])
        second = store.data_version("acme")
        assert second != first
        store.upsert_items([Item("acme", "i7")])
        third = store.data_version("acme")
        assert third != second
        store.update_customer(Customer("acme", "bob", {"tier": "gold"}))
        assert store.data_version("acme") != third

    # -- issue 11: the customer's own world ------------------------------------------------

    def test_choices_round_trip_with_expiry(self, store: Store) -> None:
        seed(store)
        store.update_customer(
            Customer(
                "acme",
                "alice",
                exclusions=(Exclusion(ExclusionKind.CATEGORY, "Toys", 5000.0),),
                preferences=(Preference(PreferenceKind.LIKED_BRAND, "Acme", None),),
                price_range=PriceRange(5.0, 20.0, 6000.0),
            )
        )
        got = store.get_customer("acme", "alice")
        assert got is not None
        assert got.exclusions == (Exclusion(ExclusionKind.CATEGORY, "Toys", 5000.0),)
        assert got.preferences == (Preference(PreferenceKind.LIKED_BRAND, "Acme", None),)
        assert got.price_range == PriceRange(5.0, 20.0, 6000.0)
        assert not got.anonymous

    def test_recent_is_event_time_and_undo_dismissal(self, store: Store) -> None:
        seed(store)
        late = Interaction("acme", "alice", "i1", InteractionType.VIEW, 3000.0)
        backfilled = Interaction("acme", "alice", "i2", InteractionType.VIEW, 10.0)
        dismiss = Interaction("acme", "alice", "i0", InteractionType.DISMISS, 2000.0)
        store.record_interactions("acme", "r1", "h1", [late, dismiss])
        store.record_interactions("acme", "r2", "h2", [backfilled])  # arrives last
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None
        assert [i.item_id for i in inputs.recent] == ["i1", "i0", "i2"]
        assert inputs.dismissed_item_ids == {"i0"}
        assert store.undo_dismissal("acme", "alice", "i0") == 1
        assert store.undo_dismissal("acme", "alice", "i0") == 0
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None and not inputs.dismissed_item_ids

    def test_consent_history_and_training_filter(self, store: Store) -> None:
        seed(store)
        store.record_interactions("acme", "r", "h", [visit(0), visit(1, "bob")])
        before = store.data_version("acme")
        consent, unlinked = store.set_consent(
            "acme", "alice", ConsentPurpose.TRAINING, False, "settings"
        )
        assert (consent.granted, consent.source, unlinked) == (False, "settings", 0)
        assert consent.update_time is not None
        assert store.data_version("acme") != before
        assert {i.customer_id for i in store.iter_interactions("acme")} == {"bob"}
        assert [r[0] for r in store.iter_training_rows("acme")] == ["bob"]
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None
        assert inputs.consents == {ConsentPurpose.TRAINING: False}
        assert inputs.mask_time == consent.update_time
        assert [i.item_id for i in inputs.recent] == ["i0"]  # kept for her own requests
        store.set_consent("acme", "alice", ConsentPurpose.TRAINING, True, "banner")
        assert {i.customer_id for i in store.iter_interactions("acme")} == {"alice", "bob"}
        changes = store.list_consent_changes("acme", "alice", None, 10)
        assert [(c.granted, c.source) for c in changes] == [(True, "banner"), (False, "settings")]
        assert store.list_consent_changes("acme", "alice", changes[0].seq, 10) == changes[1:]
        current = store.consents("acme", "alice")
        assert current[ConsentPurpose.TRAINING].source == "banner"
        assert current[ConsentPurpose.PERSONALIZATION].update_time is None  # the default
        with pytest.raises(NotFound):
            store.set_consent("acme", "carol", ConsentPurpose.TRAINING, False, "x")

    def test_identity_links_merge_history_and_follow_consent(self, store: Store) -> None:
        seed(store)
        assert store.ensure_anonymous_customers("acme", ["anon-1", "alice"]) == ["anon-1"]
        device = store.get_customer("acme", "anon-1")
        assert device is not None and device.anonymous
        store.record_interactions(
            "acme",
            "r",
            "h",
            [
                Interaction("acme", "anon-1", "i2", InteractionType.VIEW, 50.0),
                Interaction("acme", "anon-1", "i1", InteractionType.DISMISS, 60.0),
            ],
        )
        store.link_identity("acme", "alice", "anon-1", "login")
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None
        assert inputs.linked_ids == ("anon-1",)
        assert {i.item_id for i in inputs.recent} == {"i1", "i2"}
        assert inputs.dismissed_item_ids == {"i1"}
        assert [link.linked_id for link in store.list_identity_links("acme", "alice", "", 5)] == [
            "anon-1"
        ]
        assert store.unlink_identity("acme", "alice", "anon-1")
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None and not inputs.recent and not inputs.linked_ids
        store.link_identity("acme", "alice", "anon-1", "login")
        _, unlinked = store.set_consent(
            "acme", "anon-1", ConsentPurpose.CROSS_DEVICE_LINKING, False, "banner"
        )
        assert unlinked == 1
        assert store.list_identity_links("acme", "alice", "", 5) == []
        with pytest.raises(FailedPrecondition):
            store.link_identity("acme", "alice", "anon-1", "login")
        with pytest.raises(NotFound):
            store.link_identity("acme", "alice", "ghost", "login")

    def test_erasure_removes_every_row_and_masks_the_id(self, store: Store) -> None:
        seed(store)
        store.ensure_anonymous_customers("acme", ["anon-1"])
        store.record_interactions("acme", "mine", "h1", [visit(0), visit(1)])
        store.record_interactions("acme", "mixed", "h2", [visit(2), visit(0, "bob")])
        store.set_consent("acme", "alice", ConsentPurpose.PERSONALIZATION, True, "banner")
        store.link_identity("acme", "alice", "anon-1", "login")
        for n, version in enumerate(("v1", "v2")):
            store.put_model_artifact(
                ModelArtifact("acme", "als", version, time.time() - 10 + n, "{}"), b"x"
            )
        store.set_current_model("acme", "als", "v2")
        erased = store.erase_customer("acme", "alice")
        assert erased.profile_removed
        assert erased.interactions_removed == 3
        assert erased.identity_links_removed == 1
        assert erased.consents_removed == 1
        assert erased.idempotency_records_removed == 1  # "mixed" keeps its record (bob's)
        assert erased.model_versions_removed == ("als/v1",)
        assert erased.model_versions_pending == ("als/v2",)
        assert [a.version for a in store.model_artifacts("acme", "als")] == ["v2"]
        assert store.get_customer("acme", "alice") is None
        assert store.list_interactions("acme", "alice", None, 10) == []
        assert store.list_consent_changes("acme", "alice", None, 10) == []
        assert store.list_identity_links("acme", "alice", "", 10) == []
        assert store.get_customer("acme", "anon-1") is not None  # the device stays, unlinked
        assert [i.customer_id for i in store.iter_interactions("acme")] == ["bob"]
        # The retry of the request that held only her events is new again, not a replay.
        _, replay = store.record_interactions("acme", "mine", "h1", [visit(0, "bob")])
        assert not replay
        latest = store.latest_mask_time("acme")
        assert latest == erased.erase_time
        store.create_customer(Customer("acme", "alice"))
        inputs = store.recommend_inputs("acme", "alice", 10)
        assert inputs is not None and inputs.mask_time == erased.erase_time
        again = store.erase_customer("acme", "nobody")
        assert not again.profile_removed and again.interactions_removed == 0
        with pytest.raises(NotFound):
            store.erase_customer("nope", "alice")

    # -- issue 13: versioned documents, recommendation lists, impressions --------------------

    def test_documents_are_versioned_per_kind_and_optimistic(self, store: Store) -> None:
        seed(store)
        assert store.document_revisions("acme") == {}
        assert store.get_document("acme", "rules") is None
        first = store.put_document("acme", "rules", {"rules": [{"rule_id": "a"}]})
        second = store.put_document("acme", "rules", {"rules": []}, expected_revision=1)
        store.put_document("acme", "experiments", {"experiments": {}})
        assert (first.revision, second.revision) == (1, 2)
        assert store.document_revisions("acme") == {"rules": 2, "experiments": 1}
        assert store.get_document("acme", "rules").document == {"rules": []}
        assert store.get_document("acme", "rules", 1).document == {"rules": [{"rule_id": "a"}]}
        assert [r.revision for r in store.list_documents("acme", "rules", None, 10)] == [2, 1]
        assert [r.revision for r in store.list_documents("acme", "rules", 2, 10)] == [1]
        with pytest.raises(Aborted):
            store.put_document("acme", "rules", {}, expected_revision=1)
        with pytest.raises(NotFound):
            store.put_document("nope", "rules", {})
        assert store.document_revisions("other") == {}

    def test_the_combined_read_carries_the_shop_revisions_and_impressions(
        self, store: Store
    ) -> None:
        # One round trip per Recommend (issue 12): what the serving caches check comes along.
        seed(store)
        first = store.recommend_inputs("acme", "alice", 5)
        assert first.revisions == ShopRevisions(store.catalog_version("acme"), 0, {})
        assert first.impressions == ()
        store.upsert_items([Item("acme", "i9", title="New")])
        store.put_shop_settings("acme", {"max_per_category": 3})
        store.put_document("acme", "rules", {"rules": []})
        store.put_document("acme", "rules", {"rules": []}, expected_revision=1)
        store.put_document("acme", "experiments", {"experiments": {}})
        shown = [Impression("acme", "alice", "r1", f"i{n}", 1000.0 + n) for n in range(3)]
        shown.append(Impression("acme", "bob", "r2", "i0", 1001.0))
        store.record_impressions("acme", shown)
        later = store.recommend_inputs("acme", "alice", 5, impressions_since=1001.0)
        assert later.revisions == ShopRevisions(
            store.catalog_version("acme"), 1, {"rules": 2, "experiments": 1}
        )
        assert later.revisions.catalog_version > first.revisions.catalog_version
        assert later.impressions == tuple(store.recent_impressions("acme", "alice", 1001.0))
        assert [i.item_id for i in later.impressions] == ["i2", "i1"]  # alice's, newest first
        assert store.recommend_inputs("acme", "alice", 5).impressions == ()  # not asked

    def test_the_combined_read_returns_times_and_values_exactly(self, store: Store) -> None:
        # SQLite's one-statement read carries the history as JSON, whose REALs keep 15
        # significant digits: a timestamp's microseconds would be lost (issue 12).
        seed(store)
        rng = random.Random(12)
        times = [rng.uniform(1.0, 4.0e9) for _ in range(40)] + [1765142400.123456, 0.1 + 0.2]
        values = [rng.uniform(-1e6, 1e6) for _ in range(40)] + [1 / 3, 1e300]
        store.record_interactions(
            "acme",
            "exact",
            "h",
            [
                Interaction(
                    "acme", "alice", f"i{n % 3}", InteractionType.RATING, t, v, "", 0, "web"
                )
                for n, (t, v) in enumerate(zip(times, values, strict=True))
            ],
        )
        store.record_impressions(
            "acme", [Impression("acme", "alice", f"r{n}", "i0", t) for n, t in enumerate(times)]
        )
        inputs = store.recommend_inputs("acme", "alice", 100, impressions_since=0.0)
        assert inputs is not None
        stored = store.list_interactions("acme", "alice", None, 100)
        newest = sorted(stored, key=lambda i: (i.event_time, i.seq), reverse=True)
        assert inputs.recent == newest
        assert sorted(i.event_time for i in inputs.recent) == sorted(times)
        assert sorted(i.value for i in inputs.recent) == sorted(values)
        assert inputs.impressions == tuple(store.recent_impressions("acme", "alice", 0.0))
        assert sorted(i.event_time for i in inputs.impressions) == sorted(times)

    def test_recommendation_lists_are_kept_until_they_expire(self, store: Store) -> None:
        seed(store)
        offers = ({"i": "i1", "s": 1.5, "r": "x", "m": "popularity", "k": "popular"},)
        store.put_recommendation_list(
            RecommendationList("acme", "r1", "alice", offers, 100.0, 200.0, "home", "e", "v")
        )
        kept = store.get_recommendation_list("acme", "r1", 150.0)
        assert kept is not None and kept.offers == offers and kept.variant_id == "v"
        assert (kept.placement, kept.experiment_id, kept.customer_id) == ("home", "e", "alice")
        assert store.get_recommendation_list("acme", "r1", 201.0) is None
        assert store.get_recommendation_list("other", "r1", 150.0) is None

    def test_kept_offers_read_back_as_pages_wrote_them(self, store: Store) -> None:
        # The documents `pages.to_document` makes, with what a plugin may score with: a numpy
        # float, a float subclass, a score that is not finite, text beyond ASCII.
        class Score(float):
            pass

        seed(store)
        scores = [np.float64(0.1) + np.float64(0.2), Score(1e-300), math.nan, -math.inf, 7.0]
        offers = tuple(
            (f"i{n}", s, "Weil du «Tee» gekauft hast 🍵", "als", "because", (f"e{n}",), "")
            for n, s in enumerate(scores)
        )
        store.put_recommendation_list(
            RecommendationList("acme", "r1", "alice", offers, 100.0, 200.0)
        )
        kept = store.get_recommendation_list("acme", "r1", 150.0)
        assert kept is not None and len(kept.offers) == len(offers)
        for written, read in zip(offers, kept.offers, strict=True):
            again = pages.from_document(read)
            assert pages.item_of(read) == written[0]
            assert again["reason"] == written[2] and again["evidence"] == written[5]
            if math.isfinite(written[1]):
                assert again["score"] == float(written[1])  # exactly
            else:  # as written while the list waits for its commit; once kept, not a number
                assert again["score"] == written[1] or math.isnan(again["score"])

    def test_impressions_are_stored_once_and_reported_with_outcomes(self, store: Store) -> None:
        seed(store)
        store.put_recommendation_list(
            RecommendationList("acme", "r1", "alice", (), 100.0, 9e9, "", "e", "v")
        )
        shown = [Impression("acme", "alice", "r1", f"i{n}", 1000.0 + n) for n in range(3)]
        assert store.record_impressions("acme", shown) == 3
        assert store.record_impressions("acme", shown[:2]) == 0
        assert [i.item_id for i in store.recent_impressions("acme", "alice", 1001.0)] == [
            "i2",
            "i1",
        ]
        with pytest.raises(NotFound):
            store.record_impressions("acme", [Impression("acme", "zed", "r1", "i0", 1.0)])
        bought = Interaction("acme", "alice", "i1", InteractionType.PURCHASE, 1500.0, 2.0, "r1")
        # Bob citing alice's list is not alice's list's outcome.
        borrowed = Interaction("acme", "bob", "i2", InteractionType.CLICK, 1500.0, 0.0, "r1")
        store.record_interactions("acme", "q", "h", [bought, borrowed])
        outcomes = store.experiment_outcomes("acme", "e")
        assert outcomes.lists == [("r1", "alice", "v")]
        assert sorted(outcomes.impressions) == [("r1", "i0"), ("r1", "i1"), ("r1", "i2")]
        assert outcomes.interactions == [("r1", "i1", InteractionType.PURCHASE, 2.0, 0.0)]
        # Erasing the customer takes their lists and impressions along.
        store.delete_customer("acme", "alice")
        assert store.recent_impressions("acme", "alice", 0.0) == []
        assert store.get_recommendation_list("acme", "r1", 150.0) is None

    def test_replica_heartbeats_are_listed_refreshed_and_forgotten(self, store: Store) -> None:
        a = Replica("pod-a/1", ("kosmos.v1.ProfileService",), "0.1.0", 100.0, 100.0, "SERVING")
        b = Replica("pod-b/7", ("x", "y"), "0.1.0", 101.0, 101.0, "NOT_SERVING")
        store.beat_replica(a, purge_before=0.0)
        store.beat_replica(b, purge_before=0.0)
        assert store.list_replicas(0.0) == [a, b]
        assert store.list_replicas(100.5) == [b]  # a was last seen before: stale
        # A beat replaces the row: seen again, and its status changed.
        fresh = Replica("pod-a/1", a.services, "0.1.0", 100.0, 110.0, "NOT_SERVING")
        store.beat_replica(fresh, purge_before=0.0)
        assert store.list_replicas(105.0) == [fresh]
        # A beat purges what was not seen since purge_before, whoever it belongs to.
        store.beat_replica(Replica("pod-c/3", (), "", 120.0, 120.0, "SERVING"), purge_before=105.0)
        assert [r.replica_id for r in store.list_replicas(0.0)] == ["pod-a/1", "pod-c/3"]
        assert store.remove_replica("pod-c/3") is True
        assert store.remove_replica("pod-c/3") is False
        assert store.list_replicas(0.0) == [fresh]
