"""``python -m kosmos.oteldemo``: the OpenTelemetry demo's recommendation service, on Kosmos.

Reads `KOSMOS_OTELDEMO_LISTEN`, `KOSMOS_OTELDEMO_SHOP`, `KOSMOS_TARGET` (the cluster) and
`KOSMOS_API_KEY` (a storefront key of that shop), and `KOSMOS_TLS_CA` and friends for the hop
to the cluster. Prints ``oteldemo listening on HOST:PORT`` once serving.
"""

from __future__ import annotations

import os
import sys

from kosmos.client import KosmosClient
from kosmos.common import telemetry
from kosmos.common.config import (
    KOSMOS_API_KEY,
    KOSMOS_LOG_LEVEL,
    KOSMOS_OTELDEMO_LISTEN,
    KOSMOS_OTELDEMO_SHOP,
    KOSMOS_TARGET,
    client_tls_from_env,
)
from kosmos.common.server import configure_logging, serve
from kosmos.oteldemo import DEFAULT_LISTEN, DEFAULT_SHOP, build_adapter


def main() -> None:
    env = os.environ
    configure_logging(env.get(KOSMOS_LOG_LEVEL, "INFO"))
    telemetry.configure("kosmos-oteldemo", env)
    listen = env.get(KOSMOS_OTELDEMO_LISTEN) or DEFAULT_LISTEN
    shop = env.get(KOSMOS_OTELDEMO_SHOP) or DEFAULT_SHOP
    if not env.get(KOSMOS_API_KEY):
        print(f"oteldemo: configuration error: {KOSMOS_API_KEY} is not set", file=sys.stderr)
        raise SystemExit(2)
    client = KosmosClient(
        env.get(KOSMOS_TARGET) or "localhost:50051",
        api_key=env[KOSMOS_API_KEY],
        tls=client_tls_from_env(env),
    )
    try:
        server, port, health = build_adapter(listen, client, shop)
    except RuntimeError as exc:
        print(f"oteldemo: configuration error: {KOSMOS_OTELDEMO_LISTEN}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    server.start()
    host = listen.rpartition(":")[0]
    serve(
        server,
        health,
        grace_seconds=5.0,
        on_stop=[client.close],
        on_ready=lambda: print(f"oteldemo listening on {host}:{port}", flush=True),
    )


if __name__ == "__main__":
    main()
