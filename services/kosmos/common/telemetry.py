"""The one place that touches the OpenTelemetry SDK.

Everything else uses the API (``trace.get_tracer(__name__)``). Without
``OTEL_EXPORTER_OTLP_ENDPOINT`` spans are made (so trace ids reach logs and error messages) but
exported nowhere; with it they go to an OTLP collector over gRPC. The gRPC server and client
interceptors from opentelemetry-instrumentation-grpc carry one trace across every hop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import (
    client_interceptor,
    filters,
    server_interceptor,
)
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from kosmos.common.privacy import PrivateTracerProvider

log = logging.getLogger(__name__)

OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"

# Probes and reflection would drown real traffic in traces.
_UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")


def configure(service_name: str, env: Mapping[str, str] = os.environ) -> None:
    """Installs the global tracer provider for this process, once.

    Args:
        service_name: The ``service.name`` resource attribute, such as ``kosmos-feedback``.
        env: The environment to read ``OTEL_*`` from.
    """
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # Already configured (the all-in-one process configures once for all services).
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if env.get(OTEL_EXPORTER_OTLP_ENDPOINT):
        # Imported here: the exporter pulls in its own gRPC channel machinery only when used.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces to %s", env[OTEL_EXPORTER_OTLP_ENDPOINT])
    trace.set_tracer_provider(provider)


def _traced() -> filters.Condition:  # type: ignore[type-arg]
    untraced = filters.any_of(*(filters.service_name(s) for s in _UNTRACED_SERVICES))
    return filters.negate(untraced)


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The tracing interceptors every Kosmos server installs."""
    # No peer addresses or user agents on server spans (`kosmos.common.privacy`). A call that
    # is gone before its handler runs (a refused or expired deadline) has no peer; the
    # instrumentation warns once per such call, which under a flood floods the log.
    logging.getLogger("opentelemetry.instrumentation.grpc._server").setLevel(logging.ERROR)
    return [server_interceptor(tracer_provider=PrivateTracerProvider(), filter_=_traced())]


def instrument_channel(channel: grpc.Channel) -> grpc.Channel:
    """Wraps a client channel so each call joins (or starts) the current trace."""
    # The instrumentation ships its own channel wrapper for its interceptor type.
    wrapped: grpc.Channel = intercept_channel(channel, client_interceptor(filter_=_traced()))
    return wrapped


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or empty when no span is recording."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
