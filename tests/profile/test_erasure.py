"""Erasure with a receipt (issue 11), over real gRPC against a real cluster serving ALS from
stored model versions: nothing of the customer stays in any table, stored artifact or loaded
model, and re-creating the same id does not bring their old list back."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import threading
import time
from collections.abc import Iterator

import pytest
from kosmos_implicit import create_als

from kosmos.client import InteractionInput, KosmosRpcError
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import LoadedPlugin
from kosmos.plugin.routing import Routing
from kosmos.recommenders.popularity import create as popularity
from kosmos.store import SQLiteStore
from kosmos.training import train
from kosmos.training.artifacts import Artifacts, StoreArtifacts
from kosmos.v1 import profile_service_pb2, profile_service_pb2_grpc
from kosmos.v1 import recommendation_service_pb2 as rec_pb
from kosmos.v1 import recommendation_service_pb2_grpc as rec_grpc
from tests.conftest import Cluster, start_cluster
from tests.helpers import item

PLUGINS = {
    "als": LoadedPlugin("als", create_als, "kosmos-implicit"),
    "popularity": LoadedPlugin("popularity", popularity, "kosmos"),
}
ALS_SETTINGS = {"als": {"factors": "8", "iterations": "10"}}
NAMES = ["als", "popularity"]


@pytest.fixture
def served(store) -> Iterator[Cluster]:
    chain = ("als", "popularity")
    settings = RecommendationSettings(
        routing=Routing(chain, chain),
        refresh_seconds=0,
        model_store="database",
        plugin_settings=ALS_SETTINGS,
    )
    c = start_cluster(store, settings, PLUGINS)
    yield c
    c.close()


def rows_naming(store: SQLiteStore, needle: str) -> list[str]:
    """Every table cell of the database that holds ``needle`` (text, or inside a packed model
    version's files)."""
    conn = sqlite3.connect(store.path)
    found = []
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608 (names from the schema)
            for cell in row:
                if isinstance(cell, str) and needle in cell:
                    found.append(f"{table}: {cell[:80]}")
                if isinstance(cell, bytes) and _packed_holds(cell, needle.encode()):
                    found.append(f"{table}: a packed model version")
    conn.close()
    return found


def _packed_holds(blob: bytes, needle: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member)
                if f is not None and needle in f.read():
                    return True
    except tarfile.TarError:
        return needle in blob
    return False


def _until(condition, seconds: float = 15.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        threading.Event().wait(0.02)  # a bounded wait on a condition another thread meets
    return False


def offered(c: Cluster, customer: str = "alice") -> list[tuple[str, str]]:
    page = c.client.recommend("acme", customer, page_size=8)
    return [(o.item.rsplit("/", 1)[1], o.recommender) for o in page.offers]


def test_erasure_leaves_nothing_and_a_re_created_id_starts_afresh(served, store, spans):
    c = served
    c.client.create_shop("acme")
    c.client.upsert_items(
        "acme", [item("acme", f"i{n:02d}", category=f"c{n % 4}") for n in range(24)]
    )
    events = []
    for n in range(16):
        c.client.create_customer("acme", f"c{n}")
        events += [InteractionInput(f"c{n}", f"i{(n + k) % 24:02d}", "purchase") for k in range(4)]
    c.client.create_customer("acme", "alice")
    events += [InteractionInput("alice", f"i{k:02d}", "purchase") for k in (1, 5, 9, 13)]
    c.client.record_interactions("acme", events, request_id="batch-1")
    c.client.record_interactions(
        "acme", [InteractionInput("alice", "i17", "view")], request_id="batch-2"
    )
    profiles = profile_service_pb2_grpc.ProfileServiceStub(c.channel)
    c.client.create_customer("acme", "anon-d1")
    profiles.LinkIdentity(
        profile_service_pb2.LinkIdentityRequest(
            customer="shops/acme/customers/alice",
            linked="shops/acme/customers/anon-d1",
            source="login",
        ),
        timeout=5,
    )
    artifacts = StoreArtifacts(store)
    train(store, artifacts, PLUGINS, NAMES, ALS_SETTINGS, ["acme"], evaluate=False)
    train(store, artifacts, PLUGINS, NAMES, ALS_SETTINGS, ["acme"], force=True, evaluate=False)
    assert _until(lambda: all(r == "als" for _, r in offered(c)))
    old = offered(c)
    assert rows_naming(store, "alice")  # the check can fail: her rows and her ALS vector

    receipt = profiles.EraseCustomer(
        profile_service_pb2.EraseCustomerRequest(name="shops/acme/customers/alice"), timeout=10
    ).receipt
    assert receipt.profile_removed
    assert list(receipt.erased_linked) == ["shops/acme/customers/anon-d1"]  # her device
    assert receipt.interactions_removed == 5
    assert receipt.identity_links_removed == 1
    assert receipt.idempotency_records_removed == 1  # batch-2; batch-1 is others' too
    assert len(receipt.model_versions_removed) == 2  # the rollback targets, one per recommender
    assert len(receipt.model_versions_pending) == 2  # the serving ones, until the next fit
    assert receipt.last_artifact_delete_time.seconds > receipt.erase_time.seconds
    # Every table row is gone; only the serving versions (pending) still pack her id.
    assert rows_naming(store, "alice") == ["model_artifacts: a packed model version"] * 2

    # The same id, created again, does not get her old list: the loaded ALS (built before the
    # erasure) may not use the vector it holds for her.
    c.client.create_customer("acme", "alice")
    fresh = offered(c)
    assert fresh != old
    assert {r for _, r in fresh} == {"popularity"}

    # The next fit replaces the pending versions and deletes them: no artifact holds her.
    c.client.delete_customer("acme", "alice")
    results = train(store, artifacts, PLUGINS, NAMES, ALS_SETTINGS, ["acme"], evaluate=False)
    assert all(r.version and not r.skipped for r in results)  # the erasure changed the data
    assert rows_naming(store, "alice") == []
    assert rows_naming(store, "anon-d1") == []
    for name in NAMES:
        assert [v.version for v in artifacts.versions("acme", name)] == [
            artifacts.current("acme", name)
        ]
    # And the replica serves the new version, which has no vector for her.
    c.client.create_customer("acme", "alice")
    new = {r.version for r in results}
    spans.clear()

    def serves_new() -> bool:
        offered(c, "c1")
        versions = {
            s.attributes.get("kosmos.model.version")
            for s in spans.get_finished_spans()
            if s.name == "recommend.recommender" and s.attributes
        }
        return bool(versions & new)

    assert _until(serves_new)
    assert {r for _, r in offered(c)} == {"popularity"}


def test_erasing_an_unknown_customer_returns_an_empty_receipt(kosmos):
    kosmos.client.create_shop("acme")
    profiles = profile_service_pb2_grpc.ProfileServiceStub(kosmos.channel)
    receipt = profiles.EraseCustomer(
        profile_service_pb2.EraseCustomerRequest(name="shops/acme/customers/ghost"), timeout=5
    ).receipt
    assert not receipt.profile_removed and receipt.interactions_removed == 0
    assert receipt.last_artifact_delete_time == receipt.erase_time


def test_explain_names_the_past_items_behind_an_als_offer(served, store):
    c = served
    c.client.create_shop("acme")
    c.client.upsert_items("acme", [item("acme", f"i{n:02d}") for n in range(12)])
    events = [
        InteractionInput(f"c{n}", f"i{(n + k) % 12:02d}", "purchase")
        for n in range(12)
        for k in range(3)
    ]
    for n in range(12):
        c.client.create_customer("acme", f"c{n}")
    c.client.record_interactions("acme", events)
    train(store, StoreArtifacts(store), PLUGINS, NAMES, ALS_SETTINGS, ["acme"], evaluate=False)
    assert _until(lambda: offered(c, "c0")[0][1] == "als")
    top = c.client.recommend("acme", "c0", page_size=1).offers[0]
    stub = rec_grpc.RecommendationServiceStub(c.channel)
    found = stub.Explain(
        rec_pb.RecommendationServiceExplainRequest(
            customer="shops/acme/customers/c0", item=top.item
        ),
        timeout=10,
    )
    assert found.offered and found.rank == 1 and found.offer.recommender == "als"
    bought = {f"shops/acme/items/i{k:02d}" for k in range(3)}
    assert found.contributions and {x.item for x in found.contributions} <= bought


def test_a_version_fitted_before_an_erasure_is_never_rolled_back_to(store, tmp_path):
    chain = ("popularity",)
    settings = RecommendationSettings(
        routing=Routing(chain, chain), refresh_seconds=0, model_dir=str(tmp_path / "models")
    )
    c = start_cluster(store, settings, PLUGINS)
    try:
        c.client.create_shop("acme")
        c.client.upsert_items("acme", [item("acme", "i00")])
        c.client.create_customer("acme", "alice")
        c.client.record_interactions("acme", [InteractionInput("alice", "i00", "purchase")])
        artifacts = Artifacts(tmp_path / "models")
        for force in (False, True):
            train(store, artifacts, PLUGINS, ["popularity"], {}, ["acme"], force=force)
        profiles = profile_service_pb2_grpc.ProfileServiceStub(c.channel)
        profiles.EraseCustomer(
            profile_service_pb2.EraseCustomerRequest(name="shops/acme/customers/alice"), timeout=5
        )
        with pytest.raises(KosmosRpcError) as caught:
            c.client.rollback_model("acme", "popularity")
        assert caught.value.reason == "VERSION_HOLDS_ERASED_DATA"
        # The next fit deletes what was fitted before the erasure, from the model folder too.
        train(store, artifacts, PLUGINS, ["popularity"], {}, ["acme"])
        assert len(artifacts.versions("acme", "popularity")) == 1
    finally:
        c.close()
