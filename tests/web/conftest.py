"""A real cluster with its HTTP port (`kosmos.web.WebServer`), two shops and their keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kosmos.common.config import RecommendationSettings
from kosmos.web import WebServer
from tests.conftest import Cluster, prometheus_text, start_cluster
from tests.helpers import small_shop

HOSTED = [
    "kosmos.v1.ProfileService",
    "kosmos.v1.CatalogService",
    "kosmos.v1.FeedbackService",
    "kosmos.v1.RecommendationService",
    "kosmos.v1.ApiKeyService",
    "kosmos.v1.ShopSettingsService",
    "kosmos.v1.ModelService",
    "kosmos.v1.MerchantRulesService",
    "kosmos.v1.ExperimentService",
]
"""What `kosmos.cluster.services` hosts (a test in test_node_client checks it)."""


@dataclass
class Web:
    base: str
    cluster: Cluster
    storefront: str
    """A storefront key of shop acme."""
    admin: str
    """An admin key of shop acme."""
    other: str
    """A storefront key of shop other."""


@pytest.fixture
def web(store, tmp_path) -> Iterator[Web]:
    # A model directory, so that ModelService trains and lists versions.
    settings = RecommendationSettings(refresh_seconds=0, model_dir=str(tmp_path / "models"))
    cluster = start_cluster(store, settings)
    small_shop(cluster.client, "acme")
    small_shop(cluster.client, "other")
    keys = cluster.client
    web = Web(
        base="",
        cluster=cluster,
        storefront=keys.create_api_key("storefront", "acme", "web").secret,
        admin=keys.create_api_key("admin", "acme", "web").secret,
        other=keys.create_api_key("storefront", "other", "web").secret,
    )
    server = WebServer("127.0.0.1:0", cluster.address, HOSTED, metrics=prometheus_text)
    server.start()
    web.base = f"http://127.0.0.1:{server.port}"
    yield web
    server.stop()
    cluster.close()
