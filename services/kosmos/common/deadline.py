"""The caller's deadline, carried in a context variable from the gRPC edge to stores and plugins.

The server interceptor sets it from ``context.time_remaining()``; stores read it to bound their
queries and clients of downstream services pass what is left as their own timeout, so one
deadline covers every hop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from kosmos.common.errors import DeadlineExceeded

NO_DEADLINE_SECONDS = 365 * 24 * 3600.0
"""More time left than this is no deadline at all."""

_DEADLINE: ContextVar[float | None] = ContextVar("kosmos_deadline", default=None)


@contextmanager
def deadline_scope(seconds_remaining: float | None) -> Iterator[None]:
    """Sets the deadline for the code inside the block; None means no deadline."""
    if seconds_remaining is not None and seconds_remaining > NO_DEADLINE_SECONDS:
        # grpcio's time_remaining() for a call without a deadline is about 2**63 ns, which
        # overflows every wait that takes a timeout (issue 14: such a Recommend on a shop whose
        # catalog was loading was INTERNAL).
        seconds_remaining = None
    deadline = None if seconds_remaining is None else time.monotonic() + seconds_remaining
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline, or None when there is none."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def expired() -> bool:
    """Whether the current deadline has passed."""
    left = remaining()
    return left is not None and left <= 0


def check(stage: str) -> None:
    """Raises DeadlineExceeded naming ``stage`` when the deadline has passed."""
    if expired():
        raise DeadlineExceeded(stage)
