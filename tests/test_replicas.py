"""Two recommendation replicas on one PostgreSQL stay in step (issue 8).

Each replica reads profiles, recent interactions and dismissals from the store on every request
and catches its catalog up from the store's catalog version, so what one replica writes is what
the other serves next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kosmos.client import InteractionInput
from kosmos.common.errors import NotFound
from kosmos.plugin import LoadedPlugin
from kosmos.recommendation.models import ModelHub
from kosmos.recommenders.popularity import create as popularity
from kosmos.store.events import CATALOG, CUSTOMER, HISTORY, MODEL, Event
from kosmos.store.postgres import PostgresStore
from kosmos.store.records import Customer, Interaction, InteractionType, Item, ModelArtifact, Shop
from kosmos.training import train
from kosmos.training.artifacts import StoreArtifacts
from tests.conftest import Cluster, start_cluster
from tests.helpers import item

pytestmark = pytest.mark.postgres
PLUGINS = {"popularity": LoadedPlugin("popularity", popularity, "kosmos")}


@pytest.fixture
def replicas(postgres_url) -> Iterator[tuple[Cluster, Cluster]]:
    stores = [PostgresStore(postgres_url, pool_size=4) for _ in range(2)]
    clusters = [start_cluster(s) for s in stores]
    yield clusters[0], clusters[1]
    for c in clusters:
        c.client.close()
        c.channel.close()
        c.server.stop(None).wait()
    for s in stores:
        s.close()


def offered(cluster: Cluster) -> list[str]:
    page = cluster.client.recommend("acme", "alice", page_size=10)
    return [o.item.rsplit("/", 1)[1] for o in page.offers]


def test_what_one_replica_writes_the_other_serves_next(replicas):
    a, b = replicas
    a.client.create_shop("acme")
    a.client.create_customer("acme", "alice")
    a.client.create_customer("acme", "bob")
    a.client.upsert_items("acme", [item("acme", f"i{n}", category=f"c{n}") for n in range(6)])
    a.client.record_interactions(
        "acme", [InteractionInput("bob", f"i{n}", "purchase", value=1) for n in range(6)]
    )
    assert set(offered(a)) == set(offered(b)) == {f"i{n}" for n in range(6)}

    a.client.record_interactions("acme", [InteractionInput("alice", "i2", "dismiss")])
    assert "i2" not in offered(b)  # feedback through A, the very next Recommend on B

    b.client.upsert_items("acme", [item("acme", "i4", category="c4", available=False)])
    assert "i4" not in offered(a) and "i4" not in offered(b)  # a catalog change reaches both
    b.client.upsert_items("acme", [item("acme", "i9", category="c9", title="New")])
    similar = a.client.similar_items("acme", "i9")  # A knows the item B just created
    assert similar.recommendation_id


def _until(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.02)  # a bounded wait on a condition another thread meets
    return False


def test_events_reach_the_other_replica_through_postgres(postgres_url):
    # LISTEN/NOTIFY: a catalog write, a new current model version and a customer change made
    # through one replica's store reach the other's subscribers; only committed writes do.
    writer = PostgresStore(postgres_url, pool_size=2)
    reader = PostgresStore(postgres_url, pool_size=2)
    try:
        seen: list[Event] = []
        reader.subscribe(seen.append)
        writer.create_shop(Shop("acme"))
        writer.create_customer(Customer("acme", "alice"))
        writer.upsert_items([Item("acme", "i1")])
        writer.delete_customer("acme", "alice")
        with pytest.raises(NotFound):  # a failed write announces nothing
            writer.set_current_model("acme", "als", "missing")
        assert _until(lambda: len(seen) >= 2)
        assert seen[:2] == [Event(CATALOG, "acme"), Event(CUSTOMER, "acme", "alice")]
        writer.put_model_artifact(ModelArtifact("acme", "als", "v1", 1.0, "{}"), b"x")
        writer.set_current_model("acme", "als", "v1")
        assert _until(lambda: Event(MODEL, "acme", "als") in seen)
        assert len(seen) == 3
        # A history import tells every replica's model hub to hold its refits; a replay
        # (nothing stored) and live feedback do not.
        writer.create_customer(Customer("acme", "bob"))
        history = [Interaction("acme", "bob", "i1", InteractionType.VIEW, 1e9)] * 3
        assert writer.import_interactions("acme", "import-1", "h", history) == (3, False)
        assert _until(lambda: Event(HISTORY, "acme") in seen)
        writer.import_interactions("acme", "import-1", "h", history)
        writer.record_interactions("acme", "live-1", "h", history[:1])
        writer.upsert_items([Item("acme", "i2")])  # a later event, to know the others arrived
        assert _until(lambda: seen[-1] == Event(CATALOG, "acme"))
        assert [e.kind for e in seen].count(HISTORY) == 1
    finally:
        writer.close()
        reader.close()


def test_a_new_model_version_is_swapped_in_without_waiting_for_the_poll(postgres_url, tmp_path):
    trainer_store = PostgresStore(postgres_url, pool_size=2)
    replica_store = PostgresStore(postgres_url, pool_size=2)
    try:
        trainer_store.create_shop(Shop("acme"))
        trainer_store.create_customer(Customer("acme", "bob"))
        trainer_store.upsert_items([Item("acme", f"i{n}") for n in range(3)])
        artifacts = StoreArtifacts(trainer_store, tmp_path / "trainer")
        (first,) = train(trainer_store, artifacts, PLUGINS, ["popularity"], {})
        hub = ModelHub(
            replica_store,
            PLUGINS,
            ("popularity",),
            {},
            0,
            artifacts=StoreArtifacts(replica_store, tmp_path / "replica"),
            fit_in_process=(),
            poll_seconds=3600,  # only the event can bring the next version in time
        )
        assert hub.get("acme", "popularity") is not None
        assert hub.version("acme", "popularity") == first.version
        (second,) = train(trainer_store, artifacts, PLUGINS, ["popularity"], {}, force=True)
        assert _until(lambda: hub.version("acme", "popularity") == second.version)
    finally:
        trainer_store.close()
        replica_store.close()


def test_the_event_engine_shows_in_traces(postgres_url, spans):
    # Issue 10: a write inside a trace shows its store call and the publish, in that trace; the
    # replica that hears it has a span for what it did; no customer id in either.
    from opentelemetry import trace

    writer = PostgresStore(postgres_url, pool_size=2)
    reader = PostgresStore(postgres_url, pool_size=2)
    try:
        heard = threading.Event()
        reader.subscribe(lambda event: heard.set() if event.kind == CUSTOMER else None)
        writer.create_shop(Shop("acme"))
        writer.create_customer(Customer("acme", "alice"))
        spans.clear()
        with trace.get_tracer(__name__).start_as_current_span("request") as request:
            writer.delete_customer("acme", "alice")
        assert heard.wait(10)
        finished = spans.get_finished_spans()
        by_name = {s.name: s for s in finished}
        write, publish = by_name["store.delete_customer"], by_name["events.publish"]
        trace_id = request.get_span_context().trace_id
        assert write.context.trace_id == publish.context.trace_id == trace_id
        assert publish.parent.span_id == write.context.span_id
        assert write.attributes["db.system"] == "postgresql"
        assert _until(lambda: "events.deliver" in {s.name for s in spans.get_finished_spans()})
        deliver = [s for s in spans.get_finished_spans() if s.name == "events.deliver"][-1]
        assert deliver.attributes["kosmos.event.kind"] == CUSTOMER
        for span in (write, publish, deliver):
            assert "alice" not in str(dict(span.attributes))
    finally:
        writer.close()
        reader.close()


def test_a_customer_choice_made_on_one_replica_holds_on_the_other_next_request(replicas):
    # Issue 11: consent, exclusions, undo and links are read on every request, not cached.
    from kosmos.v1 import recommendation_service_pb2 as rpb

    a, b = replicas
    a.client.create_shop("acme")
    a.client.create_customer("acme", "alice")
    a.client.create_customer("acme", "bob")
    a.client.upsert_items("acme", [item("acme", f"i{n}", category=f"c{n}") for n in range(6)])
    a.client.record_interactions(
        "acme", [InteractionInput("bob", f"i{n}", "purchase", value=1) for n in range(6)]
    )
    a.client.set_consent("acme", "alice", "personalization", False, "banner")
    kinds = {o.explanation.kind for o in b.client.recommend("acme", "alice").offers}
    assert kinds == {rpb.REASON_KIND_NON_PERSONAL}
    a.client.set_consent("acme", "alice", "personalization", True, "banner")
    kinds = {o.explanation.kind for o in b.client.recommend("acme", "alice").offers}
    assert rpb.REASON_KIND_NON_PERSONAL not in kinds
    a.client.update_customer("acme", "alice", exclusions=[("category", "C3")])
    assert "i3" not in offered(b)
    b.client.record_interactions("acme", [InteractionInput("alice", "i2", "dismiss")])
    assert "i2" not in offered(a)
    b.client.undo_dismissal("acme", "alice", "i2")
    assert "i2" in offered(a)
