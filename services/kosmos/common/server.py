"""The server stack every Kosmos service runs: errors, deadlines, tracing, health, reflection.

Production (``python -m kosmos.feedback``), the all-in-one process and the tests all call the
same `build_server`; tests bind ``127.0.0.1:0`` and read the port back.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from kosmos.common import telemetry
from kosmos.common.deadline import deadline_scope
from kosmos.common.errors import InvalidArgument, KosmosError, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Service:
    """One gRPC service to host: its full name and how to add its servicer to a server."""

    name: str
    register: Callable[[grpc.Server], None]
    stop: Callable[[], None] | None = None
    """Runs after the server has stopped (background threads, caches)."""


def _domain(method: str) -> str:
    # "/kosmos.v1.FeedbackService/RecordInteractions" -> "kosmos.feedback"
    service = method.strip("/").split("/")[0].rsplit(".", 1)[-1]
    return "kosmos." + service.removesuffix("Service").lower()


def _pack(message: Any) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def to_status(error: KosmosError, method: str) -> status_pb2.Status:
    """The `google.rpc.Status` a client receives for ``error`` raised under ``method``."""
    code = grpc.StatusCode[error.code]
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=_domain(method), metadata=error.metadata
            )
        )
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if isinstance(error, NotFound):
        details.append(
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type=error.resource_type, resource_name=error.name
                )
            )
        )
    return status_pb2.Status(code=code.value[0], message=error.description, details=details)


def _internal_status(trace_id: str) -> status_pb2.Status:
    suffix = f" (trace {trace_id})" if trace_id else ""
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error" + suffix)


class ErrorInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Turns exceptions into statuses and sets the deadline context for the handler.

    A `KosmosError` becomes its rich status; anything else becomes INTERNAL with the trace id,
    its traceback going to the log and never to the wire.
    """

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._wrap_unary(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._wrap_unary(handler.stream_unary, method))
        return handler  # Streaming responses are not used by Kosmos services.

    @staticmethod
    def _wrap_unary(behavior: Callable[[Any, Any], Any], method: str) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                with deadline_scope(context.time_remaining()):
                    return behavior(request, context)
            except KosmosError as error:
                status = to_status(error, method)
            except Exception:
                if context.code() is not None:  # The servicer aborted on its own: let it be.
                    raise
                trace_id = telemetry.current_trace_id()
                log.exception("internal error in %s (trace %s)", method, trace_id or "-")
                status = _internal_status(trace_id)
            span = trace.get_current_span()
            span.set_attribute("rpc.grpc.status_code", status.code)
            if status.code == code_pb2.INTERNAL:
                span.set_status(Status(StatusCode.ERROR, status.message))
            context.abort_with_status(rpc_status.to_status(status))
            raise AssertionError("abort_with_status returned")  # pragma: no cover

        return wrapped


def build_server(
    listen: str, workers: int, services: Sequence[Service]
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Builds a server hosting ``services`` with health, reflection, tracing and error mapping.

    Args:
        listen: ``host:port`` to bind; port 0 picks a free port.
        workers: Threads serving RPCs.
        services: What to host.

    Returns:
        The server (not started), the bound port, and its health servicer (every service
        SERVING once started).

    Raises:
        RuntimeError: The address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kosmos-rpc"),
        interceptors=[*telemetry.server_interceptors(), ErrorInterceptor()],
        # Without this a second server could silently share a port with the first.
        options=[("grpc.so_reuseport", 0)],
    )
    for service in services:
        service.register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in services]
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:  # grpcio raises on some versions, returns 0 on others
        raise RuntimeError(f"cannot bind {listen}: {exc}") from None
    if port == 0:
        raise RuntimeError(f"cannot bind {listen}")
    for name in ("", *names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def serve(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    grace_seconds: float,
    on_stop: Iterable[Callable[[], None]] = (),
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Runs a started server until SIGTERM or SIGINT, then shuts down gracefully.

    Health turns NOT_SERVING first (load balancers stop sending), in-flight RPCs get
    ``grace_seconds`` to finish, then ``on_stop`` callbacks run (closing stores).
    ``on_ready`` runs once the signal handlers are in place (a SIGTERM sent after it is
    always a graceful stop).
    """
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if on_ready is not None:
        on_ready()
    stop.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace_seconds).wait()
    for callback in on_stop:
        callback()
    log.info("stopped")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log lines on stderr, plain or JSON (``KOSMOS_LOG_FORMAT``), carrying trace and span ids."""
    logging.basicConfig(level=level, handlers=[telemetry.log_handler(log_format)], force=True)
