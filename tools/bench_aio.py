"""The server model, measured: gRPC Python's thread-pool server against ``grpc.aio``.

Each server runs as its own process and answers one empty unary RPC (bytes in, bytes out: the
transport and the server loop, nothing of Kosmos). The same client processes load both, in the
same run; we print throughput, p50/p99 and the server's CPU per request. This is the floor a
Kosmos handler sits on, so it decides whether moving the services to ``grpc.aio`` would pay.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np

_METHOD = "/bench.Empty/Call"


def _handlers(aio: bool) -> grpc.GenericRpcHandler:
    if aio:

        async def call_async(request: bytes, context: object) -> bytes:
            return b""

        behaviour = call_async
    else:

        def call(request: bytes, context: object) -> bytes:
            return b""

        behaviour = call  # type: ignore[assignment]
    handler = grpc.unary_unary_rpc_method_handler(behaviour)
    return grpc.method_handlers_generic_handler("bench.Empty", {"Call": handler})


def serve(kind: str, workers: int) -> None:
    if kind == "aio":

        async def main() -> None:
            server = grpc.aio.server()
            server.add_generic_rpc_handlers((_handlers(True),))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            print(port, flush=True)
            await server.wait_for_termination()

        asyncio.run(main())
    else:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        server.add_generic_rpc_handlers((_handlers(False),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(port, flush=True)
        server.wait_for_termination()


def _client(args: tuple[str, int, int]) -> list[float]:
    address, threads, per_thread = args
    channel = grpc.insecure_channel(address)
    call = channel.unary_unary(_METHOD)
    out: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            call(b"", timeout=5)
            mine.append(time.perf_counter() - started)
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    channel.close()
    return out


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=4000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args()
    print("server       clients   req/s  p50 ms  p99 ms  CPU ms/req")
    with mp.get_context("spawn").Pool(4) as pool:
        for kind in ("threads", "aio"):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, str(args.workers)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                address = f"127.0.0.1:{proc.stdout.readline().strip()}"
                pool.map(_client, [(address, 1, 200)] * 4)  # warm-up
                for c in args.concurrency:
                    procs = min(c, 4)
                    per = max(1, args.requests // c)
                    cpu = _cpu(proc.pid)
                    started = time.perf_counter()
                    parts = pool.map(_client, [(address, c // procs, per)] * procs)
                    seconds = time.perf_counter() - started
                    cpu = _cpu(proc.pid) - cpu
                    lat = np.array([x for part in parts for x in part])
                    p50, p99 = np.percentile(lat, [50, 99]) * 1000
                    print(
                        f"{kind:<12} {c:>7} {lat.size / seconds:>7,.0f} {p50:>7.2f} {p99:>7.2f}"
                        f" {cpu / lat.size * 1000:>11.3f}"
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        raise SystemExit(0)
    raise SystemExit(main())
