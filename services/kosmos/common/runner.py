"""What every ``python -m kosmos.<service>`` does: read the environment once, build, serve."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from kosmos.common import replicas, signing, telemetry
from kosmos.common.auth import Authorizer
from kosmos.common.config import KOSMOS_HTTP_LISTEN, ConfigError, ServerConfig
from kosmos.common.replicas import Heartbeat
from kosmos.common.server import (
    DependencyWatch,
    Service,
    build_server,
    configure_logging,
    serve,
)
from kosmos.store import Store, open_store
from kosmos.web import DEFAULT_WEB_DIR, WebServer, scrape

log = logging.getLogger(__name__)

ServicesFactory = Callable[[Store, Mapping[str, str]], list[Service]]


def run_service(
    service_name: str,
    listen_var: str,
    default_listen: str,
    factory: ServicesFactory,
    env: Mapping[str, str] = os.environ,
) -> None:
    """Serves ``factory``'s services until SIGTERM; exits 2 on bad configuration."""
    try:
        config = ServerConfig.from_env(listen_var, default_listen, env)
        configure_logging(config.log_level, config.log_format)
        telemetry.configure(service_name, env, config.metrics_listen)
        configure_secret(config)
        store = open_store(config.database_url)
        services = factory(store, env)
        server, port, health = build_server(
            config.listen,
            config.workers,
            services,
            auth=Authorizer(store, config.bootstrap_key),
            reflection_enabled=config.reflection,
            tls=config.tls,
        )
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"{service_name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.start()
    host = config.listen.rpartition(":")[0]
    web = start_web(config, port, [s.name for s in services], store)

    def announce() -> None:
        # Tests and scripts read this line to learn the port when they asked for port 0; it
        # comes once SIGTERM is handled, so a stop sent right after it is graceful.
        print(f"{service_name} listening on {host}:{port}", flush=True)
        if telemetry.metrics_address():
            print(f"{service_name} metrics on {telemetry.metrics_address()}", flush=True)
        if web is not None:
            http_host = config.http_listen.rpartition(":")[0]
            print(f"{service_name} http on {http_host}:{web.port}", flush=True)

    stops = [s.stop for s in services if s.stop is not None]
    readiness = [s.ready for s in services if s.ready is not None]

    def check() -> None:
        store.ping()
        if not all(ready() for ready in readiness):
            raise RuntimeError("models are still loading")

    watch = DependencyWatch(health, [s.name for s in services], check)
    watch.start()
    heartbeat = Heartbeat(
        store, [s.name for s in services], lambda: watch.healthy, config.heartbeat_seconds
    )
    heartbeat.start()
    serve(
        server,
        health,
        config.grace_seconds,
        on_stop=[watch.stop, heartbeat.stop, *([web.stop] if web else []), *stops, store.close],
        drain_seconds=config.drain_seconds,
        on_ready=announce,
    )


def start_web(
    config: ServerConfig, grpc_port: int, service_names: list[str], store: Store
) -> WebServer | None:
    """Starts the HTTP port (`KOSMOS_HTTP_LISTEN`) in front of this process's gRPC port, or
    None when it is not configured; exits 2 when it cannot bind. Its ``/replicas`` lists the
    heartbeats in ``store``."""
    if not config.http_listen:
        return None
    # The gateway calls the gRPC port on loopback; with TLS on, it presents KOSMOS_TLS_CA's
    # client settings, as every outgoing call does.
    try:
        web = WebServer(
            config.http_listen,
            f"127.0.0.1:{grpc_port}",
            service_names,
            tls=config.client_tls if config.tls is not None else None,
            metrics=lambda: scrape(telemetry.metrics_address()),
            web_dir=Path(config.web_dir) if config.web_dir else DEFAULT_WEB_DIR,
            replicas=lambda: replicas.listing(store, config.heartbeat_seconds),
        )
    except RuntimeError as exc:
        print(f"configuration error: {KOSMOS_HTTP_LISTEN}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    web.start()
    return web


def configure_secret(config: ServerConfig) -> None:
    """Installs `KOSMOS_SECRET`, or warns that a random one will do only for this process."""
    if config.secret:
        signing.configure(config.secret)
    else:
        log.warning(
            "KOSMOS_SECRET is not set: page tokens and recommendation ids will not outlive"
            " this process, and plugin pseudonyms change at restart"
        )
