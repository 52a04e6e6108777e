"""The server stack every Kosmos service runs: errors, deadlines, tracing, health, reflection.

Production (``python -m kosmos.feedback``), the all-in-one process and the tests all call the
same `build_server`; tests bind ``127.0.0.1:0`` and read the port back.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from collections import deque
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
from kosmos.common.auth import AuthInterceptor, Authorizer
from kosmos.common.deadline import deadline_scope
from kosmos.common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    KosmosError,
    NotFound,
    Unavailable,
)
from kosmos.common.limits import LimitsInterceptor
from kosmos.common.tls import TlsFiles, server_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Service:
    """One gRPC service to host: its full name and how to add its servicer to a server."""

    name: str
    register: Callable[[grpc.Server], None]
    stop: Callable[[], None] | None = None
    """Runs after the server has stopped (background threads, caches)."""
    ready: Callable[[], bool] | None = None
    """False while the service cannot serve well yet (models still loading): health then
    says NOT_SERVING (see `DependencyWatch`)."""


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


# Admission control: a method's fastest run among its last few is what a call needs at least.
_RECENT_RUNS = 16
# A call that cannot be met is still let through this often, so that the estimate can learn
# when the method got faster again (otherwise one slow spell would reject short calls forever).
_PROBE_SECONDS = 1.0


class _Admission:
    """Rejects calls whose deadline has passed, or is shorter than the method's fastest recent
    run, before any work starts (issue 8: hopeless calls took the workers from good ones)."""

    def __init__(self) -> None:
        self._runs: dict[str, deque[float]] = {}
        self._probed: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, method: str, remaining: float | None) -> None:
        if remaining is None:
            return
        if remaining <= 0:
            raise DeadlineExceeded("admission: the deadline had passed on arrival")
        runs = self._runs.get(method)
        if not runs or remaining >= min(runs):
            return
        now = time.monotonic()
        with self._lock:
            if now - self._probed.get(method, 0.0) >= _PROBE_SECONDS:
                self._probed[method] = now
                return
        raise DeadlineExceeded(
            f"admission: {method} needs about {min(runs) * 1000:.0f} ms",
            reason="DEADLINE_UNMEETABLE",
        )

    def record(self, method: str, seconds: float) -> None:
        with self._lock:
            self._runs.setdefault(method, deque(maxlen=_RECENT_RUNS)).append(seconds)
            self._probed[method] = time.monotonic()  # fresh evidence: no probe needed yet


class _Gate:
    """Counts calls in handlers; once closed, refuses new ones with UNAVAILABLE (retryable).

    gRPC cancels calls that reached the server but no handler yet when ``server.stop`` runs;
    closing the gate first answers such late calls UNAVAILABLE, so a client retries elsewhere
    instead of seeing CANCELLED (issue 8).
    """

    # Once closed, the gate stays up until calls have stopped coming for this long: a client
    # that just got an answer may send again, and that call must meet the gate, not the stop.
    QUIET_SECONDS = 0.25

    def __init__(self) -> None:
        self.closed = False
        self._busy = 0
        self._refused = 0.0
        self._idle = threading.Condition()

    def enter(self) -> None:
        if self.closed:
            self._refused = time.monotonic()
            raise Unavailable("SHUTTING_DOWN", "this server is shutting down; retry elsewhere")
        with self._idle:
            self._busy += 1

    def leave(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def close_and_wait(self, seconds: float) -> bool:
        """Closes, then waits (at most ``seconds``) for the handlers to finish and for late
        calls to stop arriving. False when time ran out first."""
        self.closed = True
        self._refused = time.monotonic()
        until = time.monotonic() + seconds
        with self._idle:
            while True:
                now = time.monotonic()
                quiet = now - self._refused >= self.QUIET_SECONDS
                if self._busy == 0 and quiet:
                    return True
                if now >= until:
                    return False
                self._idle.wait(min(until - now, self.QUIET_SECONDS))


# The gate of each built server, by id(server), for `serve` to close.
_GATES: dict[int, _Gate] = {}


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """The outermost layer: refuses, before any other work (tracing included), a call whose
    deadline has passed or cannot be met (DEADLINE_EXCEEDED), and once the server is shutting
    down, any new call (UNAVAILABLE); counts the calls in handlers for the drain."""

    def __init__(self) -> None:
        self.admission = _Admission()
        self.gate = _Gate()
        # Each method's handler as every layer inside wraps it, built on its first call: the
        # layers decide by method only (what varies per call, they read from the context at
        # call time), so later calls skip six interceptors' wrapping (issue 12).
        self._handlers: dict[str, Any] = {}

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        method: str = details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._build(continuation, details)
            if handler is not None:  # an unknown method is not kept: made-up names fill nothing
                self._handlers[method] = handler
        return handler

    def _build(self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._wrap(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._wrap(handler.stream_unary, method))
        return handler

    def _wrap(self, behavior: Callable[[Any, Any], Any], method: str) -> Callable[[Any, Any], Any]:
        admission, gate = self.admission, self.gate

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                gate.enter()
                admission.check(method, context.time_remaining())
            except KosmosError as error:
                if not isinstance(error, Unavailable):
                    gate.leave()
                context.abort_with_status(rpc_status.to_status(to_status(error, method)))
            started = time.monotonic()
            try:
                response = behavior(request, context)
            finally:
                gate.leave()
            admission.record(method, time.monotonic() - started)
            return response

        return wrapped


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
    listen: str,
    workers: int,
    services: Sequence[Service],
    *,
    auth: Authorizer | None = None,
    reflection_enabled: bool = True,
    tls: TlsFiles | None = None,
    reuse_port: bool = False,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Builds a server hosting ``services`` with health, reflection, tracing and error mapping.

    Every server also turns malformed bodies and oversized fields into INVALID_ARGUMENT
    (`kosmos.common.limits`).

    Args:
        listen: ``host:port`` to bind; port 0 picks a free port.
        workers: Threads serving RPCs.
        services: What to host.
        auth: Checks the API key of every RPC but health and reflection
            (`kosmos.common.auth`). The service processes always pass one; None serves
            without keys (a plugin server behind mTLS, or a test of something else).
        reflection_enabled: Serve gRPC reflection (`KOSMOS_REFLECTION`).
        tls: Serve TLS (and require client certificates when it names a client CA),
            reloading the files when they change. None: plaintext.
        reuse_port: Share the port with the other processes of one service
            (``KOSMOS_PROCESSES``, `kosmos.common.runner`); off, a second server cannot
            silently bind a port already in use.

    Returns:
        The server (not started), the bound port, and its health servicer (every service
        SERVING once started).

    Raises:
        RuntimeError: The address cannot be bound.
    """
    admission = AdmissionInterceptor()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kosmos-rpc"),
        interceptors=[
            admission,
            *telemetry.server_interceptors(),
            ErrorInterceptor(),
            *([AuthInterceptor(auth)] if auth is not None else []),
            LimitsInterceptor(),
        ],
        # Without 0 a second server could silently share a port with the first.
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    for service in services:
        service.register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in services]
    if reflection_enabled:
        reflection.enable_server_reflection(
            (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    try:
        if tls is not None:
            port = server.add_secure_port(listen, server_credentials(tls))
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError as exc:  # grpcio raises on some versions, returns 0 on others
        raise RuntimeError(f"cannot bind {listen}: {exc}") from None
    if port == 0:
        raise RuntimeError(f"cannot bind {listen}")
    for name in ("", *names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _GATES[id(server)] = admission.gate
    return server, port, health_servicer


class DependencyWatch:
    """Turns health NOT_SERVING while a dependency (the database) fails its check, and back to
    SERVING once it passes again: load balancers stop sending to a replica that could only
    answer UNAVAILABLE, and it rejoins by itself (issue 8). Once the server is shutting down,
    health stays NOT_SERVING whatever the check says."""

    def __init__(
        self,
        health_servicer: health.HealthServicer,
        names: Sequence[str],
        check: Callable[[], None],
        interval: float = 1.0,
    ) -> None:
        self._health = health_servicer
        self._names = ("", *names)
        self._check = check
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kosmos-health", daemon=True)
        self.healthy = True

    def start(self) -> None:
        self._probe()  # at once: a replica still loading must not look SERVING for a second
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._probe()

    def _probe(self) -> None:
        try:
            self._check()
            healthy = True
        except Exception:  # any failure of the check means "cannot serve now"
            healthy = False
        if healthy != self.healthy:
            log.warning("dependency %s", "back" if healthy else "down: health NOT_SERVING")
            self.healthy = healthy
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if healthy
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in self._names:
                self._health.set(name, status)


class _Signals:
    """SIGTERM and SIGINT for `serve`'s main thread, through `signal.set_wakeup_fd`.

    Two ways to hang on SIGTERM are closed here. A Python signal handler runs on the main
    thread between two bytecodes, so also inside a ``threading.Event``'s own lock, and an
    ``Event.set`` from it can wait for that lock forever (a replica hung so, one stop in about
    30). And a signal the kernel hands to another thread only marks the handler as pending:
    a main thread blocked in a wait does not run it until it wakes for another reason. So
    the C-level handler writes each signal's number to a pipe (the wakeup fd), the main thread
    waits on that pipe, and the Python handler does nothing but keep the default (ending the
    process) away.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pending: deque[int] = deque()
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _noted)

    def _drain(self) -> None:
        try:
            self._pending.extend(os.read(self._read, 512))
        except BlockingIOError:
            pass

    def wait(self, timeout: float | None = None) -> int | None:
        """The next signal, waiting up to ``timeout`` seconds (None: for ever); None if none."""
        ends = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            left = None if ends is None else ends - time.monotonic()
            if left is not None and left <= 0:
                return None
            if select.select([self._read], [], [], left)[0]:
                self._drain()
        return self._pending.popleft()

    def more(self) -> bool:
        """Whether another signal came already (a second one skips the drain)."""
        self._drain()
        return bool(self._pending)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)  # later signals: still noted, nothing written
        os.close(self._read)
        os.close(self._write)


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python handler of `_Signals`: the signal was written to its pipe already."""


def serve(
    server: grpc.Server,
    health_servicer: health.HealthServicer,
    grace_seconds: float,
    on_stop: Iterable[Callable[[], None]] = (),
    drain_seconds: float = 0.0,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Runs a started server until SIGTERM or SIGINT, then shuts down gracefully.

    On SIGTERM health turns NOT_SERVING first and the server keeps serving for
    ``drain_seconds``, so that pollers and load balancers see it draining and stop sending
    while calls still succeed; then it stops accepting and in-flight RPCs get ``grace_seconds``
    to finish; then ``on_stop`` callbacks run (closing stores). SIGINT (a person at a terminal)
    and a second signal skip the drain. ``on_ready`` runs once the signal handlers are in place
    (a SIGTERM sent after it is always a graceful stop).
    """
    signals = _Signals()  # handlers in place from here
    try:
        if on_ready is not None:
            on_ready()
        first = signals.wait()  # no timeout: only a signal ends it
        assert first is not None
        log.info("received %s, shutting down", signal.Signals(first).name)
        health_servicer.enter_graceful_shutdown()
        if drain_seconds > 0 and first != signal.SIGINT and not signals.more():
            log.info("draining for %.1f s", drain_seconds)
            second = signals.wait(drain_seconds)  # a second signal cuts the drain short
            if second is not None:
                log.info("received %s, shutting down", signal.Signals(second).name)
        gate = _GATES.pop(id(server), None)
        started = time.monotonic()
        if gate is not None:  # stop accepting: late calls get UNAVAILABLE, in-flight ones finish
            gate.close_and_wait(grace_seconds)
        server.stop(max(0.0, grace_seconds - (time.monotonic() - started))).wait()
        for callback in on_stop:
            callback()
    finally:
        signals.close()
    log.info("stopped")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log lines on stderr, plain or JSON (``KOSMOS_LOG_FORMAT``), carrying trace and span ids."""
    logging.basicConfig(level=level, handlers=[telemetry.log_handler(log_format)], force=True)
