"""A span per store call (``store.<method>``) inside a traced request, so a trace shows the
store hop: which call, on which database, and how long it took.

Only calls made while a sampled span is current get one (a request being traced); background
work (the model refresher, the trainer's scans) and unsampled requests cost one
``is_recording()`` check. Spans carry the method and ``db.system``, never the arguments (ids
and profiles are personal data).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace

tracer = trace.get_tracer("kosmos.store")

T = TypeVar("T", bound=type)

# Not wrapped: generators (a span would end before the rows are read), lifecycle, events.
_SKIPPED = frozenset({"iter_interactions", "close", "subscribe", "ping"})


def traced(db_system: str) -> Callable[[T], T]:
    """Class decorator: every public method of a store gets a span when called in a trace."""

    def decorate(cls: T) -> T:
        for name, method in list(vars(cls).items()):
            if (
                name.startswith("_")
                or name in _SKIPPED
                or not inspect.isfunction(method)
                or inspect.isgeneratorfunction(method)
            ):
                continue
            setattr(cls, name, _wrap(method, f"store.{name}", db_system))
        return cls

    return decorate


def _wrap(method: Callable[..., Any], span_name: str, db_system: str) -> Callable[..., Any]:
    attributes = {"db.system": db_system, "db.operation": span_name.removeprefix("store.")}

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return method(*args, **kwargs)
        with tracer.start_as_current_span(
            span_name, kind=trace.SpanKind.CLIENT, attributes=attributes
        ):
            return method(*args, **kwargs)

    return wrapper
