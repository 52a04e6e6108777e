"""What every ``python -m kosmos.<service>`` does: read the environment once, build, serve.

With ``KOSMOS_PROCESSES`` above 1 the process becomes a supervisor (`kosmos.common._processes`)
that forks that many servers sharing the port; each one then runs exactly what a single
process runs, so one process and several differ only in who holds the port.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping

from kosmos.common import signing, telemetry
from kosmos.common._processes import supervise
from kosmos.common.auth import Authorizer
from kosmos.common.config import ConfigError, ServerConfig
from kosmos.common.server import (
    DependencyWatch,
    Service,
    build_server,
    configure_logging,
    serve,
)
from kosmos.store import Store, open_store

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

    def serve_child(child: ServerConfig, ready: Callable[[], None]) -> None:
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
    ready: Callable[[], None] | None = None,
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
            auth=Authorizer(store, config.bootstrap_key),
            reflection_enabled=config.reflection,
            tls=config.tls,
            reuse_port=reuse_port,
        )
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"{service_name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.start()
    host = config.listen.rpartition(":")[0]

    def announce() -> None:
        if ready is not None:
            if telemetry.metrics_address():
                log.info("metrics on %s", telemetry.metrics_address())
            ready()
            return
        # Tests and scripts read this line to learn the port when they asked for port 0; it
        # comes once SIGTERM is handled, so a stop sent right after it is graceful.
        print(f"{service_name} listening on {host}:{port}", flush=True)
        if telemetry.metrics_address():
            print(f"{service_name} metrics on {telemetry.metrics_address()}", flush=True)

    stops = [s.stop for s in services if s.stop is not None]
    readiness = [s.ready for s in services if s.ready is not None]

    def check() -> None:
        store.ping()
        if not all(ready() for ready in readiness):
            raise RuntimeError("models are still loading")

    watch = DependencyWatch(health, [s.name for s in services], check)
    watch.start()
    serve(
        server,
        health,
        config.grace_seconds,
        on_stop=[watch.stop, *stops, store.close],
        drain_seconds=config.drain_seconds,
        on_ready=announce,
    )


def configure_secret(config: ServerConfig) -> None:
    """Installs `KOSMOS_SECRET`, or warns that a random one will do only for this process."""
    if config.secret:
        signing.configure(config.secret)
    else:
        log.warning(
            "KOSMOS_SECRET is not set: page tokens and recommendation ids will not outlive"
            " this process, and plugin pseudonyms change at restart"
        )
