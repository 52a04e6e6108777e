"""What every ``python -m kosmos.<service>`` does: read the environment once, build, serve.

With ``KOSMOS_PROCESSES`` above 1 the process becomes a supervisor (`kosmos.common._processes`)
that forks that many servers sharing the port; each one then runs exactly what a single
process runs, so one process and several differ only in who holds the port.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kosmos.common import replicas, signing, telemetry
from kosmos.common._processes import supervise
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
    except (ConfigError, ValueError) as exc:
        print(f"{service_name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if config.processes == 1:
        _serve_one(service_name, config, factory, env)
        return

    def serve_child(child: ServerConfig, ready: Callable[[Sequence[str]], None]) -> None:
        _serve_one(service_name, child, factory, env, ready=ready, reuse_port=True)

    try:
        if config.database_url.startswith("sqlite:///"):
            # One process creates and migrates the file before the others open it: SQLite
            # answers "locked" at once, without waiting, to two connections that both switch a
            # new file to WAL. (PostgreSQL migrations wait on an advisory lock instead.)
            open_store(config.database_url).close()
        code = supervise(service_name, config, serve_child)
    except (ValueError, RuntimeError, OSError) as exc:  # the port or the file is unusable
        print(f"{service_name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    raise SystemExit(code)


def _serve_one(
    service_name: str,
    config: ServerConfig,
    factory: ServicesFactory,
    env: Mapping[str, str],
    *,
    ready: Callable[[Sequence[str]], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """One server process; ``ready``, when given, runs instead of printing the listening line
    (a supervised process: the supervisor announces the port once all are up)."""
    try:
        telemetry.configure(service_name, env, config.metrics_listen)
        configure_secret(config)
        store = open_store(config.database_url)
        services = factory(store, env)
        server, port, health = build_server(
            config.listen,
            config.workers,
            services,
            auth=Authorizer(store, config.bootstrap_key, config.auth_cache_seconds),
            reflection_enabled=config.reflection,
            tls=config.tls,
            reuse_port=reuse_port,
        )
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"{service_name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.start()
    host = config.listen.rpartition(":")[0]
    web = start_web(config, port, [s.name for s in services], store)

    def announce() -> None:
        lines = []
        if telemetry.metrics_address():
            lines.append(f"metrics on {telemetry.metrics_address()}")
        if web is not None:
            lines.append(f"http on {config.http_listen.rpartition(':')[0]}:{web.port}")
        if ready is not None:  # a supervised process: the supervisor prints for all
            ready(lines)
            return
        # Tests and scripts read this line to learn the port when they asked for port 0; it
        # comes once SIGTERM is handled, so a stop sent right after it is graceful.
        print(f"{service_name} listening on {host}:{port}", flush=True)
        for line in lines:
            print(f"{service_name} {line}", flush=True)

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
