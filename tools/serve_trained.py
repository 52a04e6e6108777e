"""A fresh cluster serving a loaded shop from the trainer's versions (issue 12, the 1M shop).

Starts ``python -m kosmos.cluster`` on ``--database`` with ``KOSMOS_MODEL_DIR`` set to
``--model-dir`` (what ``python -m kosmos.training`` published), waits for health to turn
SERVING, then calls ``Recommend`` for random customers (``c-NNNNN``, the generator's ids): 200 to
warm up, then ``--requests`` timed. Prints the time to SERVING, p50 and p99, and the cluster's
RSS now and at its peak. The routing is the environment's (``KOSMOS_ROUTING``).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kosmos.client import KosmosClient


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--database", required=True, help="KOSMOS_DATABASE_URL of the loaded shop")
    p.add_argument("--model-dir", required=True, help="the trainer's KOSMOS_MODEL_DIR")
    p.add_argument("--shop", default="big")
    p.add_argument("--customers", type=int, default=1_000_000, help="ids c-00000 on")
    p.add_argument("--requests", type=int, default=1000)
    args = p.parse_args()
    key = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": args.database,
        "KOSMOS_MODEL_DIR": args.model_dir,
        "KOSMOS_LOG_LEVEL": "WARNING",
        "KOSMOS_BOOTSTRAP_KEY": key,
        "KOSMOS_PROCESSES": "1",
    }
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for reply in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=7200):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
        print(f"SERVING after {time.monotonic() - started:.1f} s", flush=True)
        rng = random.Random(7)
        timed: list[float] = []
        with KosmosClient(address, timeout=60, api_key=key) as client:
            for n in range(200 + args.requests):
                customer = f"c-{rng.randrange(args.customers):05d}"
                began = time.perf_counter()
                client.recommend(args.shop, customer)
                if n >= 200:
                    timed.append((time.perf_counter() - began) * 1e3)
        timed.sort()
        print(
            f"Recommend, {args.requests} random customers after 200: p50"
            f" {timed[len(timed) // 2]:.2f} ms, p99 {timed[int(len(timed) * 0.99)]:.2f} ms"
        )
        print(
            f"cluster RSS {_status_kib(server.pid, 'VmRSS') // 1024} MiB,"
            f" peak {_status_kib(server.pid, 'VmHWM') // 1024} MiB"
        )
    finally:
        server.terminate()
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
