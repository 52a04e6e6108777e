"""``make bench``: Recommend over gRPC on loopback against the floor of the same server stack.

The cluster runs as its own process (``python -m kosmos.cluster``, SQLite, a synthetic shop
loaded through the API). Load comes from separate client processes so the client's GIL is not
the server's. Each phase sends a fixed number of requests; we print p50/p99 latency and
throughput for Recommend and for the floor (``grpc.health.v1.Health/Check``, an empty RPC served
by the same server, thread pool and error interceptor), and their ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from kosmos.client import KosmosClient
from kosmos.datasets import generate
from kosmos.demo import SHOP, load
from kosmos.v1 import recommendation_service_pb2 as rpb
from kosmos.v1 import recommendation_service_pb2_grpc as rgrpc


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: np.ndarray
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000)


def _worker(args: tuple[str, str, int, int, list[str], int, str]) -> list[float]:
    address, kind, threads, per_thread, customers, seed, key = args
    import threading

    from kosmos.common.auth import with_key

    raw = grpc.insecure_channel(address)
    channel = with_key(raw, key)  # a storefront key, as a shop's frontend sends it
    health = health_pb2_grpc.HealthStub(channel)
    recs = rgrpc.RecommendationServiceStub(channel)
    out: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        mine = []
        barrier.wait()
        for _ in range(per_thread):
            if kind == "floor":
                request = health_pb2.HealthCheckRequest(service="")
                started = time.perf_counter()
                health.Check(request, timeout=5)
            else:
                customer = rng.choice(customers)
                request = rpb.RecommendRequest(
                    customer=f"shops/{SHOP}/customers/{customer}", page_size=10
                )
                started = time.perf_counter()
                recs.Recommend(request, timeout=5)
            mine.append(time.perf_counter() - started)
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    raw.close()
    return out


def measure(
    pool: mp.pool.Pool,
    address: str,
    kind: str,
    concurrency: int,
    requests: int,
    customers: list[str],
    key: str,
) -> Result:
    procs = min(concurrency, 4)
    threads = concurrency // procs
    per_thread = max(1, requests // concurrency)
    started = time.perf_counter()
    parts = pool.map(
        _worker, [(address, kind, threads, per_thread, customers, s, key) for s in range(procs)]
    )
    seconds = time.perf_counter() - started
    return Result(kind, concurrency, np.array([x for p in parts for x in p]), seconds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=4000, help="requests per phase")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = p.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "KOSMOS_LOG_LEVEL": "WARNING",
            "KOSMOS_BOOTSTRAP_KEY": secrets.token_urlsafe(32),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            line = server.stdout.readline()
            address = line.strip().rsplit(" ", 1)[-1]
            console.print(
                f"cluster at {address}; loading a synthetic shop "
                f"({args.customers} customers, {args.items} items)"
            )
            shop = generate(customers=args.customers, items=args.items, end_time=time.time())
            with KosmosClient(address, timeout=60, api_key=env["KOSMOS_BOOTSTRAP_KEY"]) as client:
                load(client, shop, console)
                client.recommend(SHOP, shop.customers[0].customer_id)  # fit the models
                key = client.create_api_key("storefront", SHOP, "bench").secret
            customers = [c.customer_id for c in shop.customers]
            table = Table(
                title=f"make bench — {len(shop.interactions)} interactions, "
                f"{os.cpu_count()} cores, loopback",
                title_justify="left",
            )
            for column in ("RPC", "clients", "requests", "req/s", "p50 ms", "p99 ms"):
                table.add_column(column, justify="right" if column != "RPC" else "left")
            ratios = []
            with mp.get_context("spawn").Pool(4) as pool:
                measure(pool, address, "recommend", 4, 400, customers, key)  # warm-up
                for c in args.concurrency:
                    floor = measure(pool, address, "floor", c, args.requests, customers, key)
                    rec = measure(pool, address, "recommend", c, args.requests, customers, key)
                    for r, label in ((floor, "Health/Check (floor)"), (rec, "Recommend")):
                        table.add_row(
                            label,
                            str(c),
                            str(len(r.latencies)),
                            f"{r.rps:,.0f}",
                            f"{r.p(50):.2f}",
                            f"{r.p(99):.2f}",
                        )
                    ratios.append(
                        (
                            c,
                            rec.rps / floor.rps,
                            rec.p(50) / floor.p(50),
                            rec.p(99) / floor.p(99),
                            rec.p(99),
                        )
                    )
            console.print(table)
            summary = Table(title="Recommend against the floor, same run", title_justify="left")
            for column in (
                "clients",
                "throughput ratio",
                "p50 ratio",
                "p99 ratio",
                "Recommend p99 ms (goal ≤ 3 at 16)",
            ):
                summary.add_column(column, justify="right")
            for c, tput, p50, p99, abs99 in ratios:
                summary.add_row(str(c), f"{tput:.0%}", f"{p50:.2f}×", f"{p99:.2f}×", f"{abs99:.2f}")
            console.print(summary)
        finally:
            server.terminate()
            server.wait(timeout=30)
            server.stdout.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
