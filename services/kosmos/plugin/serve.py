"""Serves an in-process `Recommender` over ``RecommenderPluginService``.

A Python partner can run their plugin in its own process (own dependencies, own release cycle,
own scaling), and the conformance suite can run over the wire through `RemoteRecommender`::

    python -m kosmos.plugin.serve popularity --listen 127.0.0.1:50070

The first line on stdout is ``<name> plugin listening on HOST:PORT`` (scripts and tests read the
port from it when they asked for port 0); SIGTERM turns health NOT_SERVING, lets in-flight calls
finish, and exits. Settings come from ``KOSMOS_PLUGIN__<NAME>__<SETTING>`` as in the service.

Models are per shop: each ``Fit`` builds a fresh instance for its shop and swaps it in for that
shop only, and a query for a shop never fitted is ``FAILED_PRECONDITION``. An empty ``shop`` on
the wire is the default shop, so older callers keep working.

The server is `kosmos.common.server.build_server`'s, so health, reflection, tracing, the
caller's deadline (`kosmos.common.deadline.remaining`) and error mapping come with it:
`Unsupported` is ``UNIMPLEMENTED`` and `NotFitted` is ``FAILED_PRECONDITION``, exactly what
`RemoteRecommender` maps back.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1.health import HealthServicer

from kosmos.common import telemetry
from kosmos.common.config import KOSMOS_PLUGIN_PREFIX, KOSMOS_REFLECTION, server_tls_from_env
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import parse_shop
from kosmos.common.server import Service, build_server, configure_logging, serve
from kosmos.common.timestamps import to_seconds
from kosmos.common.tls import TlsFiles
from kosmos.plugin.protocol import (
    ExplainQuery,
    Interaction,
    InteractionType,
    NotFitted,
    Recommender,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
)
from kosmos.plugin.registry import PluginLoadError, discover
from kosmos.v1 import recommender_plugin_service_pb2 as pb
from kosmos.v1 import recommender_plugin_service_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "RecommenderPluginServicer", "build_plugin_server", "main"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RecommenderPluginService"].full_name


def _interaction(message: pb.PluginInteraction, field: str) -> Interaction:
    if message.type == 0:
        raise InvalidArgument(f"{field}.type", "UNSPECIFIED_ENUM", "must be set")
    if message.type not in InteractionType._value2member_map_:
        raise InvalidArgument(f"{field}.type", "UNKNOWN_ENUM", f"unknown value {message.type}")
    if not message.customer_id or not message.item_id:
        which = "customer_id" if not message.customer_id else "item_id"
        raise InvalidArgument(f"{field}.{which}", "MISSING_FIELD", "is required")
    return Interaction(
        customer_id=message.customer_id,
        item_id=message.item_id,
        type=InteractionType(message.type),
        weight=message.weight,
        time=to_seconds(message.event_time),
        value=message.value,
        channel=message.channel,
        device=message.device,
    )


def _interactions(messages: Iterable[pb.PluginInteraction], field: str) -> list[Interaction]:
    return [_interaction(m, f"{field}[{n}]") for n, m in enumerate(messages)]


def _shop(name: str) -> str:
    """``shops/{shop}`` → shop id; empty is the default shop ``""``."""
    return parse_shop(name, "shop") if name else ""


def _required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    return value


def _k(k: int) -> int:
    if k < 1:
        raise InvalidArgument("k", "INVALID_VALUE", "must be at least 1")
    return k


def _scored(items: Sequence[Scored]) -> list[pb.ScoredItem]:
    return [
        pb.ScoredItem(
            item_id=s.item_id, score=s.score, reason=s.reason, because_item_id=s.because_item_id
        )
        for s in items
    ]


class RecommenderPluginServicer(pb_grpc.RecommenderPluginServiceServicer):
    """Proto ↔ contract for one recommender; errors are left to the server's interceptor.

    Args:
        recommender: Answers ``GetCapabilities``; without ``factory``, the one instance that
            serves every shop, refitted in place by each ``Fit``.
        factory: Makes a fresh instance for each ``Fit``, swapped in once fitted for that
            ``Fit``'s shop only, as the recommendation service does; a shop never fitted is
            `NotFitted`.
    """

    def __init__(
        self, recommender: Recommender, factory: Callable[[], Recommender] | None = None
    ) -> None:
        self._recommender = recommender
        self._factory = factory
        self._models: dict[str, Recommender] = {}  # shop id → its model, with a factory
        self._fit_lock = threading.Lock()  # One Fit at a time: the last one wins, whole.

    def _model(self, shop_name: str) -> Recommender:
        shop = _shop(shop_name)
        if self._factory is None:
            return self._recommender
        model = self._models.get(shop)
        if model is None:
            raise NotFitted()
        return model

    def GetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        c = self._recommender.capabilities
        return pb.GetCapabilitiesResponse(
            capabilities=pb.Capabilities(
                cold_start=c.cold_start, partial_fit=c.partial_fit, explain=c.explain
            )
        )

    def Fit(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        interactions: list[Interaction] = []
        item_ids: list[str] = []
        customer_features: dict[str, dict[str, str]] = {}
        item_features: dict[str, dict[str, str]] = {}
        shop = ""
        now: float | None = None
        for n, chunk in enumerate(request_iterator):
            if n == 0:
                shop = _shop(chunk.shop)
                now = to_seconds(chunk.now_time) if chunk.HasField("now_time") else None
            interactions.extend(_interactions(chunk.interactions, f"requests[{n}].interactions"))
            item_ids.extend(chunk.item_ids)
            customer_features.update((f.id, dict(f.values)) for f in chunk.customer_features)
            item_features.update((f.id, dict(f.values)) for f in chunk.item_features)
        data = TrainingData(
            interactions=interactions,
            item_ids=item_ids,
            customer_features=customer_features,
            item_features=item_features,
            # Without a reference time, the newest interaction is the best guess.
            now=max((i.time for i in interactions), default=0.0) if now is None else now,
            shop_id=shop,
        )
        with self._fit_lock:
            if self._factory is None:
                self._recommender.fit(data)
            else:
                model = self._factory()
                model.fit(data)
                self._models[shop] = model  # One assignment: a query in flight keeps its model.
        return pb.FitResponse()

    def PartialFit(self, request: Any, context: Any) -> Any:  # noqa: N802
        self._model(request.shop).partial_fit(_interactions(request.interactions, "interactions"))
        return pb.PartialFitResponse()

    def Recommend(self, request: Any, context: Any) -> Any:  # noqa: N802
        query = RecommendQuery(
            customer_id=_required(request.customer_id, "customer_id"),
            k=_k(request.k),
            exclude_item_ids=frozenset(request.exclude_item_ids),
            filter_already_seen=request.filter_already_seen,
            recent_interactions=_interactions(request.recent_interactions, "recent_interactions"),
            customer_features=dict(request.customer_features),
            context=dict(request.context),
        )
        items = _scored(self._model(request.shop).recommend(query))
        return pb.RecommenderPluginServiceRecommendResponse(items=items)

    def SimilarItems(self, request: Any, context: Any) -> Any:  # noqa: N802
        query = SimilarItemsQuery(
            item_id=_required(request.item_id, "item_id"),
            k=_k(request.k),
            exclude_item_ids=frozenset(request.exclude_item_ids),
        )
        items = _scored(self._model(request.shop).similar_items(query))
        return pb.RecommenderPluginServiceSimilarItemsResponse(items=items)

    def Explain(self, request: Any, context: Any) -> Any:  # noqa: N802
        query = ExplainQuery(
            customer_id=_required(request.customer_id, "customer_id"),
            item_id=_required(request.item_id, "item_id"),
            recent_interactions=_interactions(request.recent_interactions, "recent_interactions"),
        )
        found = self._model(request.shop).explain(query)
        return pb.ExplainResponse(
            contributions=[pb.Contribution(item_id=c.item_id, weight=c.weight) for c in found]
        )


def build_plugin_server(
    recommender: Recommender,
    listen: str,
    workers: int = 8,
    *,
    factory: Callable[[], Recommender] | None = None,
    tls: TlsFiles | None = None,
    reflection_enabled: bool = False,
) -> tuple[grpc.Server, int, HealthServicer]:
    """Builds a server that serves ``recommender`` over ``RecommenderPluginService``.

    Args:
        recommender: The recommender to serve (unfitted until the first ``Fit``).
        listen: ``host:port`` to bind; port 0 picks a free port.
        workers: Threads serving RPCs.
        factory: Makes a fresh instance per ``Fit``, one model per shop (see
            `RecommenderPluginServicer`).
        tls: Serve TLS, and with a client CA require Kosmos's client certificate (mTLS);
            ``python -m kosmos.plugin.serve`` reads ``KOSMOS_TLS_CERT`` and friends.
        reflection_enabled: Serve gRPC reflection (``KOSMOS_REFLECTION=true``).

    Returns:
        The server (not started), the bound port, and its health servicer.
    """
    servicer = RecommenderPluginServicer(recommender, factory)

    def register(server: grpc.Server) -> None:
        pb_grpc.add_RecommenderPluginServiceServicer_to_server(servicer, server)

    return build_server(
        listen,
        workers,
        [Service(SERVICE_NAME, register)],
        tls=tls,
        reflection_enabled=reflection_enabled,
    )


def plugin_settings(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """Plugin ``name``'s ``KOSMOS_PLUGIN__<NAME>__<SETTING>`` values, setting names lowercased."""
    prefix = f"{KOSMOS_PLUGIN_PREFIX}{name.upper()}__"
    return {
        key[len(prefix) :].lower(): value
        for key, value in env.items()
        if key.upper().startswith(prefix) and len(key) > len(prefix)
    }


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> None:
    """``python -m kosmos.plugin.serve NAME``: serves an installed plugin until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m kosmos.plugin.serve",
        description="Serve an installed recommender plugin over RecommenderPluginService.",
    )
    parser.add_argument("name", help="the plugin's entry-point name (group kosmos.recommenders)")
    parser.add_argument("--listen", default="127.0.0.1:50070", help="host:port; port 0: a free one")
    parser.add_argument("--workers", type=int, default=8, help="threads serving RPCs")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds to drain on SIGTERM")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    name: str = args.name
    configure_logging(args.log_level.upper())
    telemetry.configure(f"kosmos-plugin-{name}", env)
    try:
        plugin = discover(required=[name])[name]
        settings = plugin_settings(name, env)

        def fresh() -> Recommender:
            return plugin.factory(settings)

        server, port, health = build_plugin_server(
            fresh(),
            args.listen,
            args.workers,
            factory=fresh,
            tls=server_tls_from_env(env),
            reflection_enabled=env.get(KOSMOS_REFLECTION, "").strip().lower() == "true",
        )
    except (PluginLoadError, ValueError, RuntimeError, OSError) as exc:
        print(f"{name} plugin: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.start()
    host = args.listen.rpartition(":")[0]
    print(f"{name} plugin listening on {host}:{port}", flush=True)
    serve(server, health, args.grace)


if __name__ == "__main__":
    main()
