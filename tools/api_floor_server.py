"""``Recommend`` with the domain taken out: the API's own floor, for ``tools/bench.py``.

One server process built as the cluster builds its own (`kosmos.common.server.build_server`:
admission, tracing at ``KOSMOS_TRACE_SAMPLE_RATIO``, metrics, errors, API keys checked against
the store, limits) hosting the real `RecommendationServicer` (request validation, the page
token, the response messages). Only what answers behind the servicer differs: each customer's
first page was computed once at start by the real domain on the bench's loaded shop, and every
``Recommend`` returns it again. What a ``Recommend`` costs here is what the transport and the
API cost with a domain that costs nothing: the least any domain could make of the whole RPC.

Reads the cluster's environment (``KOSMOS_DATABASE_URL`` and the rest) with
``KOSMOS_API_FLOOR_LISTEN`` as the address; prints ``api-floor listening on host:port`` once
it serves; stops on SIGTERM.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from kosmos.common import telemetry
from kosmos.common.auth import Authorizer
from kosmos.common.config import RecommendationSettings, ServerConfig
from kosmos.common.runner import configure_secret
from kosmos.common.server import Service, build_server, serve
from kosmos.recommendation import SERVICE_NAME, Context, build
from kosmos.recommendation.domain import OfferPage
from kosmos.recommendation.servicer import RecommendationServicer
from kosmos.store import open_store
from kosmos.v1 import recommendation_service_pb2_grpc


class _Answered:
    """Stands where `Recommendations` does, with each customer's page computed already."""

    def __init__(self, pages: dict[tuple[str, str], OfferPage]) -> None:
        self.pages = pages

    def recommend(self, shop_id: str, customer_id: str, *_: Any, **__: Any) -> OfferPage:
        return self.pages[shop_id, customer_id]


def main() -> int:
    env = os.environ
    config = ServerConfig.from_env("KOSMOS_API_FLOOR_LISTEN", "127.0.0.1:0", env)
    telemetry.configure("kosmos-api-floor", env)
    configure_secret(config)
    store = open_store(config.database_url)
    built = build(store, RecommendationSettings.from_env(env))
    context = Context("", "", "", frozenset())
    pages = {}
    for shop_id in store.list_shop_ids():
        after = ""
        while customers := store.list_customers(shop_id, after, 500):
            for c in customers:
                page = built.recommendations.recommend(shop_id, c.customer_id, context, 10, 0)
                pages[shop_id, c.customer_id] = page
            after = customers[-1].customer_id
    built.models.stop()
    servicer = RecommendationServicer(_Answered(pages))  # type: ignore[arg-type]

    def register(server: Any) -> None:
        recommendation_service_pb2_grpc.add_RecommendationServiceServicer_to_server(
            servicer, server
        )

    server, port, health = build_server(
        config.listen,
        config.workers,
        [Service(SERVICE_NAME, register)],
        auth=Authorizer(store, config.bootstrap_key, config.auth_cache_seconds),
        reflection_enabled=False,
    )
    server.start()
    host = config.listen.rpartition(":")[0]
    serve(
        server,
        health,
        config.grace_seconds,
        on_ready=lambda: print(f"api-floor listening on {host}:{port}", flush=True),
    )
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
