"""What the HTTP port costs: Recommend over gRPC, Connect JSON, Connect binary and gRPC-Web.

One cluster and its HTTP port (`kosmos.web.WebServer`) in this process, a synthetic shop loaded
through the API, one client calling one request at a time on a kept-alive connection (gRPC:
a channel; HTTP: http.client), so each figure is a round trip's latency through that path,
client and server sharing this process's GIL. The floor of each path is health's Check.

    .venv/bin/python tools/bench_http.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from kosmos import cluster
from kosmos.client import KosmosClient
from kosmos.common.auth import Authorizer, with_key
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import build_server
from kosmos.datasets import generate
from kosmos.demo import SHOP, load
from kosmos.store import SQLiteStore
from kosmos.v1 import recommendation_service_pb2 as rpb
from kosmos.v1 import recommendation_service_pb2_grpc as rgrpc
from kosmos.web import WebServer

RECOMMEND = "/kosmos.v1.RecommendationService/Recommend"
CHECK = "/grpc.health.v1.Health/Check"


def timed(call: Callable[[int], object], n: int) -> np.ndarray:
    for i in range(min(50, n)):
        call(i)  # warm up: connections, the shop's catalog and models
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        call(i)
        out[i] = time.perf_counter() - start
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=2000)
    args = p.parse_args()
    console = Console()
    operator = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "kosmos.db")
        services = cluster.services(store, RecommendationSettings(refresh_seconds=0))
        server, port, _health = build_server(
            "127.0.0.1:0", 8, services, auth=Authorizer(store, operator)
        )
        server.start()
        address = f"127.0.0.1:{port}"
        web = WebServer("127.0.0.1:0", address, [s.name for s in services])
        web.start()
        with KosmosClient(address, api_key=operator, timeout=60) as client:
            load(client, generate(customers=300, items=200, days=30, seed=3), console)
            key = client.create_api_key("storefront", SHOP, "bench").secret
        customers = [f"c-{n:05d}" for n in range(1, 300)]

        def message(i: int) -> rpb.RecommendRequest:
            return rpb.RecommendRequest(
                customer=f"shops/{SHOP}/customers/{customers[i % len(customers)]}", page_size=10
            )

        channel = with_key(grpc.insecure_channel(address), key)
        stub = rgrpc.RecommendationServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        conn = http.client.HTTPConnection("127.0.0.1", web.port)
        auth = {"authorization": f"Bearer {key}"}

        def post(path: str, body: bytes, content_type: str) -> bytes:
            conn.request("POST", path, body, {"content-type": content_type, **auth})
            answer = conn.getresponse()
            data = answer.read()
            assert answer.status == 200, data
            return data

        def frame(payload: bytes) -> bytes:
            return b"\x00" + struct.pack(">I", len(payload)) + payload

        def as_json(i: int) -> bytes:
            body = {"customer": message(i).customer, "pageSize": 10}
            return json.dumps(body).encode()

        paths: list[tuple[str, Callable[[int], object], Callable[[int], object]]] = [
            (
                "gRPC (HTTP/2)",
                lambda i: stub.Recommend(message(i), timeout=10),
                lambda _i: health.Check(health_pb2.HealthCheckRequest(), timeout=10),
            ),
            (
                "Connect JSON (HTTP/1.1)",
                lambda i: post(RECOMMEND, as_json(i), "application/json"),
                lambda _i: post(CHECK, b"{}", "application/json"),
            ),
            (
                "Connect binary (HTTP/1.1)",
                lambda i: post(RECOMMEND, message(i).SerializeToString(), "application/proto"),
                lambda _i: post(CHECK, b"", "application/proto"),
            ),
            (
                "gRPC-Web (HTTP/1.1)",
                lambda i: post(
                    RECOMMEND, frame(message(i).SerializeToString()), "application/grpc-web+proto"
                ),
                lambda _i: post(CHECK, frame(b""), "application/grpc-web+proto"),
            ),
        ]
        table = Table(title=f"Recommend (10 offers) and health Check, {args.requests} each")
        for column in ("path", "Recommend p50 ms", "p99 ms", "Check p50 ms", "p99 ms"):
            table.add_column(column, justify="left" if column == "path" else "right")
        for name, recommend, check in paths:
            r = timed(recommend, args.requests) * 1000
            c = timed(check, args.requests) * 1000
            table.add_row(
                name,
                f"{np.percentile(r, 50):.2f}",
                f"{np.percentile(r, 99):.2f}",
                f"{np.percentile(c, 50):.2f}",
                f"{np.percentile(c, 99):.2f}",
            )
        console.print(table)
        conn.close()
        channel.close()
        web.stop()
        server.stop(None).wait()
        store.close()


if __name__ == "__main__":
    main()
