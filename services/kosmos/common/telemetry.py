"""The one place that touches the OpenTelemetry SDK: traces, metrics and the log format.

Everything else uses the API (``trace.get_tracer(__name__)``, `kosmos.common.metrics`).

Traces: spans are always made (so trace ids reach logs and error messages); they are exported
over OTLP/gRPC when ``OTEL_TRACES_EXPORTER`` names ``otlp``, or, when it is unset, when an OTLP
endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``).
The SDK itself reads the rest of the standard environment: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (both win over the name a service passes), ``OTEL_TRACES_SAMPLER``
and ``OTEL_TRACES_SAMPLER_ARG`` (without them, Kosmos samples parent-based at
``KOSMOS_TRACE_SAMPLE_RATIO``), the exporter's headers, timeouts and certificates.

Metrics: the same rule with ``OTEL_METRICS_EXPORTER`` / ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``
(interval: ``OTEL_METRIC_EXPORT_INTERVAL``), and a Prometheus scrape endpoint on
``KOSMOS_METRICS_LISTEN`` through the OpenTelemetry Prometheus exporter: one set of instruments
feeds both.

Privacy: every span passes `PrivacySampler`, which drops a peer's address and user agent should
an instrumentation record them. `TracingInterceptor` (servers) and the client interceptor of
opentelemetry-instrumentation-grpc (channels) carry one trace across every hop.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.instrumentation.grpc import client_interceptor, filters
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import (
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_RESPONSE_STATUS_CODE,
    RPC_SERVICE,
    RPC_SYSTEM,
    RPC_SYSTEM_NAME,
)
from opentelemetry.semconv._incubating.metrics.rpc_metrics import RPC_SERVER_CALL_DURATION
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from pythonjsonlogger.json import JsonFormatter

from kosmos.common.config import trace_sample_ratio

log = logging.getLogger(__name__)

OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTEL_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
OTEL_TRACES_SAMPLER = "OTEL_TRACES_SAMPLER"

# Probes and reflection would drown real traffic in traces and RPC metrics.
_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

# What identifies a person or their machine: never recorded (the semantic conventions' old and
# new names for the peer's address and user agent).
PERSONAL_ATTRIBUTES = frozenset(
    {
        "net.peer.ip",
        "net.peer.port",
        "net.peer.name",
        "net.sock.peer.addr",
        "net.sock.peer.port",
        "network.peer.address",
        "network.peer.port",
        "client.address",
        "client.port",
        "rpc.user_agent",
        "http.user_agent",
        "user_agent.original",
    }
)

# RPC latency buckets in seconds (the semantic conventions' advice for call durations).
_RPC_SECONDS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

_meter_provider: MeterProvider | None = None
_metrics_address = ""


class PrivacySampler(Sampler):
    """Wraps a sampler and strips `PERSONAL_ATTRIBUTES` from every span it lets through.

    The SDK gives a span exactly the attributes its sampler returns, so this is the one place
    that sees every start attribute, the gRPC instrumentation's peer address included.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if not any(key in PERSONAL_ATTRIBUTES for key in result.attributes):
            return result
        kept = {k: v for k, v in result.attributes.items() if k not in PERSONAL_ATTRIBUTES}
        return SamplingResult(result.decision, kept, result.trace_state)

    def get_description(self) -> str:
        return f"PrivacySampler{{{self.inner.get_description()}}}"


def _exports(env: Mapping[str, str], exporter_var: str, endpoint_var: str) -> bool:
    chosen = env.get(exporter_var, "").strip()
    if chosen:
        return "otlp" in {c.strip() for c in chosen.split(",")}
    # Unlike the SDK's own default, no endpoint means no export: a laptop run does not spend
    # its time retrying a collector that is not there.
    return bool(env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or env.get(endpoint_var))


def resource(service_name: str) -> Resource:
    """The process's resource: the SDK's (``OTEL_*``), named ``service_name`` if it has no name."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: service_name}))
    return detected


def tracer_provider(service_name: str, env: Mapping[str, str] = os.environ) -> TracerProvider:
    """A tracer provider as `configure` installs it (tests add their own span processors)."""
    provider = TracerProvider(resource=resource(service_name))
    if not env.get(OTEL_TRACES_SAMPLER):
        # Kosmos's default instead of the SDK's (every span recorded): an unsampled request
        # gets a non-recording span, with a trace id but no attributes, events or export.
        provider.sampler = ParentBased(TraceIdRatioBased(trace_sample_ratio(env)))
    # Otherwise the provider chose its sampler from OTEL_TRACES_SAMPLER. Tracers take the
    # sampler when they are made, and none is made yet.
    provider.sampler = PrivacySampler(provider.sampler)
    if _exports(env, OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
        # Imported here: the exporter pulls in its own gRPC channel machinery only when used.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces over OTLP")
    return provider


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def meter_provider(
    service_name: str,
    env: Mapping[str, str] = os.environ,
    metrics_listen: str = "",
    readers: Sequence[MetricReader] = (),
) -> tuple[MeterProvider, str]:
    """A meter provider as `configure` installs it, and the Prometheus endpoint it serves.

    Args:
        service_name: See `configure`.
        env: The environment to read the exporter choice from.
        metrics_listen: ``host:port`` for the Prometheus scrape endpoint; empty: none.
        readers: More readers (tests).

    Returns:
        The provider and ``http://host:port/metrics`` (empty without an endpoint).
    """
    all_readers = list(readers)
    address = ""
    if _exports(env, OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        all_readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        log.info("exporting metrics over OTLP")
    if metrics_listen:
        # The OTel exporter rather than prometheus-client's own instruments: one set of
        # instruments (the API's) feeds Prometheus and OTLP alike, and domain code never
        # learns which backend watches it.
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        all_readers.append(PrometheusMetricReader(registry=registry))
        host, port = _split(metrics_listen)
        httpd, _thread = start_http_server(port, host, registry=registry)
        address = f"http://{metrics_listen.rpartition(':')[0]}:{httpd.server_port}/metrics"
        log.info("serving Prometheus metrics on %s", address)
    return MeterProvider(resource=resource(service_name), metric_readers=all_readers), address


def configure(
    service_name: str, env: Mapping[str, str] = os.environ, metrics_listen: str = ""
) -> None:
    """Installs the global tracer and meter providers for this process, once.

    Args:
        service_name: The ``service.name`` resource attribute, such as ``kosmos-feedback``,
            unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name the service.
        env: The environment to read the exporter choice from.
        metrics_listen: See ``KOSMOS_METRICS_LISTEN``; empty: no scrape endpoint.
    """
    global _meter_provider, _metrics_address
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # Already configured (the all-in-one process configures once for all services).
    trace.set_tracer_provider(tracer_provider(service_name, env))
    _meter_provider, _metrics_address = meter_provider(service_name, env, metrics_listen)
    metrics.set_meter_provider(_meter_provider)


def metrics_address() -> str:
    """``http://host:port/metrics`` of the Prometheus endpoint `configure` started, or empty."""
    return _metrics_address


def shutdown() -> None:
    """Flushes and stops the exporters (a short-lived process, the trainer, calls this last)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
    if _meter_provider is not None:
        _meter_provider.force_flush()


def _traced() -> filters.Condition:  # type: ignore[type-arg]
    untraced = filters.any_of(*(filters.service_name(s) for s in _UNTRACED_SERVICES))
    return filters.negate(untraced)


class MetricsInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records ``rpc.server.call.duration`` for every call, with its method and status.

    One histogram gives the rate (its count), the latency and the errors (by
    ``rpc.response.status_code``) per method, as the RPC semantic conventions define them.
    """

    def __init__(self) -> None:
        self.duration = metrics.get_meter(__name__).create_histogram(
            RPC_SERVER_CALL_DURATION,
            unit="s",
            description="Duration of incoming RPCs, by method and status code.",
            explicit_bucket_boundaries_advisory=_RPC_SECONDS,
        )

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.strip("/").split("/")[0] in _UNTRACED_SERVICES:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._wrap(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._wrap(handler.stream_unary, method))
        return handler  # Streaming responses are not used by Kosmos services.

    def _wrap(self, behavior: Callable[[Any, Any], Any], method: str) -> Callable[[Any, Any], Any]:
        base = {RPC_SYSTEM_NAME: "grpc", RPC_METHOD: method.strip("/")}

        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            failed = False
            try:
                return behavior(request, context)
            except Exception:
                failed = True
                raise
            finally:
                code = context.code()
                if code is None:
                    code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                attributes = {**base, RPC_RESPONSE_STATUS_CODE: code.name}
                if code is not grpc.StatusCode.OK:
                    attributes[ERROR_TYPE] = code.name
                self.duration.record(time.perf_counter() - started, attributes)

        return wrapped


# Server-span statuses the RPC semantic conventions count as the server's error; the other
# codes are the caller's (as opentelemetry-instrumentation-grpc's server interceptor sets them).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class TracingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """One server span per call, continuing the caller's trace, with nothing done per call for
    a span the sampler does not record.

    The spans are those of opentelemetry-instrumentation-grpc's server interceptor, which
    Kosmos used before: named by the full method, kind ``SERVER``, ``rpc.system``,
    ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``, the status an error of the
    server's for the codes the semantic conventions name, the caller's context taken from the
    metadata by the global propagator. What differs is the cost (issue 12): that interceptor,
    on every call, copied the metadata into dicts twice, ran the propagator over it with no
    trace header in it, parsed the peer's address (which `PrivacySampler` then dropped) and
    wrapped the servicer context in a Python object whose every method the call then went
    through, sampled or not: 12% of the server's samples in a domain-free ``Recommend``
    (``tools/profile_serve.py --kind api``). Here a call without trace headers starts its
    span from the current context, the attributes are built once per method, and only a
    recorded span reads the call's status afterwards, from the context itself (which sees
    ``abort``, ``abort_with_status`` and ``set_code`` alike). No peer or user agent is ever
    read. Streaming responses are traced over the whole stream.
    """

    def __init__(self, filter_: Callable[[Any], bool] | None = None) -> None:
        self._filter = filter_
        self._provider: trace.TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._textmap: Any = None
        self._fields: frozenset[str] = frozenset()

    def _current(self) -> trace.Tracer:
        # The provider is looked up per call (tests and `configure` may install it after the
        # server is built), the tracer made once per provider.
        provider = trace.get_tracer_provider()
        if provider is not self._provider or self._tracer is None:
            self._tracer = provider.get_tracer(__name__)
            self._provider = provider
        return self._tracer

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        handler = continuation(details)
        if handler is None or (self._filter is not None and not self._filter(details)):
            return handler
        method: str = details.method
        service, _, name = method.lstrip("/").partition("/")
        attributes = {
            RPC_SYSTEM: "grpc",
            RPC_SERVICE: service,
            RPC_METHOD: name,
            RPC_GRPC_STATUS_CODE: grpc.StatusCode.OK.value[0],
        }
        shapes = (
            ("unary_unary", self._unary),
            ("stream_unary", self._unary),
            ("unary_stream", self._stream),
            ("stream_stream", self._stream),
        )
        for kind, wrap in shapes:
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(**{kind: wrap(behavior, method, attributes)})
        return handler

    def _unary(
        self, behavior: Callable[[Any, Any], Any], method: str, attributes: Attributes
    ) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            # The span made and made current by hand: the API's start_as_current_span is two
            # generator context managers deep, a cost on every call for nothing it adds here.
            span = self._start(method, context, attributes)
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                if not span.is_recording():
                    return behavior(request, context)
                with _outcome(span, context):
                    return behavior(request, context)
            finally:
                otel_context.detach(token)
                span.end()

        return wrapped

    def _stream(
        self, behavior: Callable[[Any, Any], Any], method: str, attributes: Attributes
    ) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            span = self._start(method, context, attributes)
            with trace.use_span(span, end_on_exit=True):
                if not span.is_recording():
                    yield from behavior(request, context)
                    return
                with _outcome(span, context):
                    yield from behavior(request, context)

        return wrapped

    def _start(
        self, method: str, context: grpc.ServicerContext, attributes: Attributes
    ) -> trace.Span:
        return self._current().start_span(
            method,
            context=self._caller(context),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def _caller(self, context: grpc.ServicerContext) -> Any:
        """The caller's trace context when the call's metadata carries the propagator's
        headers; None (the current context) when it does not, without running the
        propagator."""
        metadata = context.invocation_metadata()
        if not metadata:
            return None
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:  # its fields are computed on every read
            self._textmap, self._fields = textmap, frozenset(textmap.fields)
        for key, _ in metadata:
            if key in self._fields:
                return propagate.extract({key: value for key, value in metadata})
        return None


@contextmanager
def _outcome(span: trace.Span, context: grpc.ServicerContext) -> Iterator[None]:
    """Around a recorded span's handler: how the call ended, on the span."""
    try:
        yield
    except Exception as error:
        _record_failure(span, error)
        raise
    finally:
        _record_status(span, context)


def _record_failure(span: trace.Span, error: Exception) -> None:
    # A bare Exception is gRPC's abort, whose status `_record_status` reads; anything else is
    # an uncaught error of the handler's, which gRPC answers UNKNOWN.
    if type(error) is not Exception:
        span.record_exception(error)
        span.set_attribute(RPC_GRPC_STATUS_CODE, grpc.StatusCode.UNKNOWN.value[0])
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _record_status(span: trace.Span, context: grpc.ServicerContext) -> None:
    code = context.code()
    if code is None or code is grpc.StatusCode.OK:
        return
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if code in _SERVER_ERRORS:
        details = context.details()
        text = details.decode(errors="replace") if isinstance(details, bytes) else details
        span.set_status(Status(StatusCode.ERROR, f"{code}:{text}"))


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The tracing and metrics interceptors every Kosmos server installs."""
    return [TracingInterceptor(filter_=_traced()), MetricsInterceptor()]


def instrument_channel(channel: grpc.Channel) -> grpc.Channel:
    """Wraps a client channel so each call joins (or starts) the current trace."""
    # The instrumentation ships its own channel wrapper for its interceptor type.
    wrapped: grpc.Channel = intercept_channel(channel, client_interceptor(filter_=_traced()))
    return wrapped


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or empty when no span is recording."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, empty outside a span) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


LOG_FORMATS = ("text", "json")


def log_handler(log_format: str = "text") -> logging.Handler:
    """A stderr handler: plain greppable lines, or one JSON object per line, with trace ids.

    Raises:
        ValueError: ``log_format`` is not one of `LOG_FORMATS`.
    """
    handler = logging.StreamHandler()
    handler.addFilter(TraceContextFilter())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s %(span_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    elif log_format == "text":
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s"
                " trace_id=%(trace_id)s span_id=%(span_id)s"
            )
        )
    else:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    return handler
