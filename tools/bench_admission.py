"""Admission control under a flood of hopeless calls (issue 8, ``make bench``).

Four well-behaved callers send 15 calls each (a method that takes 20 ms) to a Kosmos server
(`build_server`, 4 workers), alone and then while four threads flood it with 1 ms-deadline
calls. The goal: flooded goodput ≥ 80% of the goodput alone, in the same run.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kosmos.common.server import Service, build_server  # noqa: E402

METHOD = "/kosmos.bench.Slow/Work"


def _work(request: bytes, context: grpc.ServicerContext) -> bytes:
    threading.Event().wait(0.02)  # stands for 20 ms of work
    return request


def _register(server: grpc.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_work)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("kosmos.bench.Slow", {"Work": handler}),)
    )


def main() -> int:
    server, port, _ = build_server("127.0.0.1:0", 4, [Service("kosmos.bench.Slow", _register)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)

            def good_phase() -> float:
                def caller() -> None:
                    for _ in range(15):
                        call(b"x", timeout=5)

                threads = [threading.Thread(target=caller) for _ in range(4)]
                started = time.monotonic()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
                return 60 / (time.monotonic() - started)

            good_phase()  # warm-up: admission learns the method's cost
            alone = good_phase()
            stop = threading.Event()
            hopeless = [0]

            def flood() -> None:
                for _ in range(20000):
                    if stop.is_set():
                        return
                    hopeless[0] += 1
                    try:
                        call(b"x", timeout=0.001)
                    except grpc.RpcError:
                        pass

            flooders = [threading.Thread(target=flood) for _ in range(4)]
            for t in flooders:
                t.start()
            try:
                flooded = good_phase()
            finally:
                stop.set()
                for t in flooders:
                    t.join(timeout=30)
    finally:
        server.stop(None).wait()
    table = Table(title="admission control: good callers' goodput", title_justify="left")
    for column in ("phase", "good calls/s", "hopeless calls sent"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    table.add_row("alone", f"{alone:,.1f}", "0")
    table.add_row("under a flood of 1 ms deadlines", f"{flooded:,.1f}", f"{hopeless[0]:,}")
    Console().print(table)
    ratio = flooded / alone
    Console().print(f"flooded / alone: {ratio:.0%} (goal ≥ 80%)", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
