"""The ranker through the path a shop uses: the trainer publishes it, the service serves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kosmos.client import InteractionInput
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import discover
from kosmos.plugin.routing import Routing
from kosmos.store import SQLiteStore
from kosmos.training import Artifacts, train
from tests.conftest import start_cluster
from tests.helpers import small_shop

SOURCES = ["popularity", "buy_again", "bought_together"]


def test_the_trainer_publishes_the_ranker_and_the_service_serves_it(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "kosmos.db")
    plugins = {
        n: p
        for n, p in discover(required=["ranker", *SOURCES]).items()
        if n in ["ranker", *SOURCES]
    }
    settings = RecommendationSettings(
        routing=Routing.parse("ranker,popularity"),
        refresh_seconds=0,
        model_dir=str(tmp_path / "models"),
        fit_in_process=frozenset(),
    )
    c = start_cluster(store, settings, plugins)
    try:
        small_shop(c.client)
        start = datetime.now(UTC) - timedelta(days=30)
        events = [
            InteractionInput(who, item, "purchase", 1.0, start + timedelta(days=day))
            for day in range(0, 28, 7)
            for who, item in (("bob", "i05"), ("bob", "i06"), ("alice", "i01"), ("alice", "i02"))
        ]
        c.client.record_interactions("acme", events)
        ranker_settings = {"ranker": {"sources": ",".join(SOURCES)}}
        (result,) = train(
            store, Artifacts(tmp_path / "models"), plugins, ["ranker"], ranker_settings
        )
        assert result.version and not result.error, result.error
        folder = Artifacts(tmp_path / "models").folder("acme", "ranker", result.version)
        assert {p.name for p in (folder / "sources").iterdir()} == set(SOURCES)
        offers = c.client.recommend("acme", "bob", page_size=4).offers
        assert offers and all(o.recommender == "ranker" for o in offers)
    finally:
        c.client.close()
        c.channel.close()
        c.server.stop(None).wait()
        store.close()
