"""Issue 9: what a partner's out-of-process plugin sees, checked on the plugin's side of the wire.

Customers arrive as pseudonyms (stable per shop and plugin, unlike across either), and only
the customer features the plugin declared, never contact attributes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc

from kosmos.client import InteractionInput
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import Capabilities, LoadedPlugin
from kosmos.plugin.protocol import (
    Contribution,
    ExplainQuery,
    Interaction,
    InteractionType,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
)
from kosmos.plugin.remote import RemoteRecommender, remote_plugins
from kosmos.plugin.routing import Routing
from kosmos.plugin.serve import build_plugin_server
from kosmos.recommendation import load_plugins
from tests.conftest import start_cluster
from tests.helpers import item

PSEUDONYM = re.compile(r"p-[0-9a-f]{32}")


class Recorder:
    """A partner's plugin that writes down every customer id and feature it is given."""

    capabilities = Capabilities(cold_start=True, partial_fit=True, explain=True)

    def __init__(self) -> None:
        self.customer_ids: list[str] = []
        self.features: list[dict[str, str]] = []
        self.items: list[str] = []
        self.lock = threading.Lock()

    def fit(self, data: TrainingData) -> None:
        with self.lock:
            self.customer_ids += [i.customer_id for i in data.interactions]
            self.customer_ids += list(data.customer_features)
            self.features += [dict(f) for f in data.customer_features.values()]
            self.items = list(data.item_ids)

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        with self.lock:
            self.customer_ids += [i.customer_id for i in interactions]

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        with self.lock:
            self.customer_ids.append(query.customer_id)
            self.customer_ids += [i.customer_id for i in query.recent_interactions]
            self.features.append(dict(query.customer_features))
        return [Scored(i, 1.0) for i in self.items[: query.k]]

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        return []

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        with self.lock:
            self.customer_ids.append(query.customer_id)
        return []

    def save(self, directory: Path) -> None:  # pragma: no cover - never saved remotely
        pass


def serve(recorder: Recorder):
    server, port, _ = build_plugin_server(recorder, "127.0.0.1:0", 2, factory=lambda: recorder)
    server.start()
    return server, f"127.0.0.1:{port}"


def test_the_plugin_sees_pseudonyms_and_only_declared_features(store):
    recorder = Recorder()
    server, target = serve(recorder)
    settings = RecommendationSettings(
        refresh_seconds=0,
        routing=Routing.parse("partner,popularity"),
        remote={"partner": target},
        plugin_settings={"partner": {"customer_features": "tier,email,country"}},
    )
    plugins: dict[str, LoadedPlugin] = {
        **load_plugins(RecommendationSettings()),
        **remote_plugins(settings.remote, 5.0),
    }
    c = start_cluster(store, settings, plugins)
    try:
        client = c.client
        client.create_shop("acme")
        client.upsert_items(
            "acme",
            [item("acme", f"i{n}") for n in range(4)],
        )
        attributes = {
            "email": "alice@example.com",
            "phone": "+44 20 7946 0000",
            "name": "Alice Liddell",
            "tier": "gold",
            "country": "UK",
        }
        client.create_customer("acme", "alice", attributes)
        client.create_customer("acme", "bob", {"tier": "silver", "email": "bob@example.com"})
        client.record_interactions(
            "acme",
            [InteractionInput("alice", "i1", "purchase"), InteractionInput("bob", "i2", "click")],
        )
        offers = client.recommend("acme", "alice", page_size=2, timeout=10)
        assert [o.recommender for o in offers.offers] == ["partner", "partner"]
        client.recommend("acme", "bob", page_size=2, timeout=10)
    finally:
        c.close()
        server.stop(None).wait()

    seen = set(recorder.customer_ids)
    assert seen and all(PSEUDONYM.fullmatch(s) for s in seen), seen
    assert not seen & {"alice", "bob"}
    assert len(seen) == 2  # stable: fit, recent interactions and recommend agree per customer
    everything = repr(recorder.customer_ids) + repr(recorder.features)
    for secret in ("alice", "bob", "example.com", "+44", "Liddell"):
        assert secret not in everything
    assert recorder.features and all(set(f) <= {"tier", "country"} for f in recorder.features)
    assert {"tier": "gold", "country": "UK"} in recorder.features  # declared ones do arrive


def test_pseudonyms_differ_by_plugin_and_shop_and_do_not_reveal_the_id():
    recorder = Recorder()
    server, target = serve(recorder)
    channel = grpc.insecure_channel(target)
    try:
        for name, shop in (("partner", "a"), ("partner", "b"), ("other", "a")):
            remote = RemoteRecommender(target, 5.0, channel, name=name)
            bought = Interaction("alice", "i1", InteractionType.PURCHASE, 1.0, 1_700_000_000.0)
            remote.fit(TrainingData([bought], ["i1"], shop_id=shop))
            remote.recommend(RecommendQuery(customer_id="alice", k=1))
            remote.recommend(RecommendQuery(customer_id="alice", k=1))
            remote.explain(ExplainQuery(customer_id="alice", item_id="i1"))
    finally:
        channel.close()
        server.stop(None).wait()
    ids = recorder.customer_ids
    assert len(ids) == 12  # per plugin and shop: fit, recommend twice, explain
    assert len(set(ids[0:4])) == 1  # stable for one shop and plugin
    assert len({ids[0], ids[4], ids[8]}) == 3  # another shop, another plugin: another id
    assert all("alice" not in i for i in ids)
