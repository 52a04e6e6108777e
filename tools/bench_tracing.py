"""What a server's tracing costs one call: Kosmos's `TracingInterceptor` against the
opentelemetry-instrumentation-grpc server interceptor it replaced, beside a bare call.

Each interceptor wraps the same empty unary handler, as a server would (``intercept_service``
once), and the wrapped handler is called in a loop with a servicer context that answers what a
real one does for such a call (the metadata of a storefront's call without trace headers, a
peer address, no status). The tracer provider is Kosmos's own at ``--ratio`` (1% by default,
as the cluster samples), so almost every call is unsampled: the case the cost matters for.
Prints microseconds per call and the cost above the bare call.

    .venv/bin/python tools/bench_tracing.py
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import server_interceptor
from rich.console import Console
from rich.table import Table

from kosmos.common import telemetry

METHOD = "/kosmos.v1.RecommendationService/Recommend"
# What grpcio's server hands out as the call's metadata: (key, value) pairs with names.
Metadatum = collections.namedtuple("Metadatum", ("key", "value"))


class _Context:
    """The parts of a ``grpc.ServicerContext`` the interceptors read, as a call without trace
    headers has them."""

    _metadata = (
        Metadatum("authorization", "Bearer kos_test"),
        Metadatum("user-agent", "grpc-python/1.7"),
    )

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:52814"

    def code(self) -> None:
        return None

    def details(self) -> None:
        return None


class _Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    method = METHOD
    invocation_metadata = _Context._metadata


def _handler(request: bytes, context: Any) -> bytes:
    return request


def wrapped(interceptor: grpc.ServerInterceptor) -> Callable[[bytes, Any], bytes]:
    handler = interceptor.intercept_service(
        lambda _details: grpc.unary_unary_rpc_method_handler(_handler), _Details()
    )
    behavior: Callable[[bytes, Any], bytes] = handler.unary_unary
    return behavior


def per_call_us(call: Callable[[bytes, Any], bytes], n: int) -> float:
    """Median of five rounds of ``n`` calls, microseconds per call."""
    context = _Context()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            call(b"", context)
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(rounds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ratio", default="0.01", help="KOSMOS_TRACE_SAMPLE_RATIO (0.01)")
    p.add_argument("--calls", type=int, default=20000)
    args = p.parse_args()
    trace.set_tracer_provider(
        telemetry.tracer_provider("kosmos-bench", env={"KOSMOS_TRACE_SAMPLE_RATIO": args.ratio})
    )
    bare = per_call_us(_handler, args.calls)
    rows = [
        ("opentelemetry-instrumentation-grpc", wrapped(server_interceptor())),
        ("kosmos TracingInterceptor", wrapped(telemetry.TracingInterceptor())),
    ]
    table = Table(
        title=f"server tracing per call, sample ratio {args.ratio}, µs", title_justify="left"
    )
    for column in ("interceptor", "per call", "above the bare call"):
        table.add_column(column, justify="left" if column == "interceptor" else "right")
    table.add_row("none (the bare handler: floor)", f"{bare:.2f}", "")
    for name, call in rows:
        cost = per_call_us(call, args.calls)
        table.add_row(name, f"{cost:.2f}", f"{cost - bare:.2f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
