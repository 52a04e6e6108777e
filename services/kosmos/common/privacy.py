"""Spans without peer addresses or user agents.

The gRPC server instrumentation records the caller's IP, port, host name and user agent on
every server span. Those identify shoppers' devices (a storefront's frontend may forward them)
and are not needed to follow a trace, so Kosmos hands the instrumentation a tracer that drops
them before the span starts. Nothing else about the span changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

DROPPED_PREFIXES = ("net.peer.", "net.sock.peer.", "client.", "network.peer.")
DROPPED = frozenset({"rpc.user_agent", "user_agent.original", "http.user_agent"})


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if attributes is None:
        return None
    return {
        k: v
        for k, v in attributes.items()
        if k not in DROPPED and not k.startswith(DROPPED_PREFIXES)
    }


class _Tracer(trace.Tracer):
    def __init__(self, name: str, version: str | None) -> None:
        self._name = name
        self._version = version

    _provider: trace.TracerProvider | None = None
    _tracer: trace.Tracer | None = None

    def _inner(self) -> trace.Tracer:
        # The provider is looked up per span (tests and `configure` may install it later), the
        # tracer made once per provider: making one per span was a cost on every request.
        provider = trace.get_tracer_provider()
        if provider is not self._provider or self._tracer is None:
            self._tracer = provider.get_tracer(self._name, self._version)
            self._provider = provider
        return self._tracer

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        if "attributes" in kwargs:
            kwargs["attributes"] = _clean(kwargs["attributes"])
        return self._inner().start_span(name, *args, **kwargs)

    # The API types this as its own context-manager class; a plain generator one behaves alike.
    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        if "attributes" in kwargs:
            kwargs["attributes"] = _clean(kwargs["attributes"])
        with self._inner().start_as_current_span(name, *args, **kwargs) as span:
            yield span


class PrivateTracerProvider(trace.TracerProvider):
    """A tracer provider over the global one whose spans never get peer or agent attributes."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _Tracer(instrumenting_module_name, instrumenting_library_version)
