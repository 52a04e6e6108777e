"""Group commit for small writes on the request path: many callers, one transaction.

Keeping a recommendation list is one small insert per Recommend. Each caller taking the
database lock, beginning, inserting and committing on its own costs the lock's convoy (16
request threads queue behind one writer) and a commit each; handing the row to one writer
thread that commits everything queued since its last commit costs one commit per group.

`GroupWriter.submit` waits for the commit; `GroupWriter.put` does not (write-behind): the row
is readable at once from `GroupWriter.pending` in this process and from the store once its
group commits (milliseconds later), and `GroupWriter.flush` waits for everything put so far
(before an erasure deletes what was kept for a customer, and at close).

Plain threads; one writer thread per store, started on the first write (after a pre-fork
supervisor's fork, never before it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from kosmos.common import deadline
from kosmos.common.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

GROUP_LIMIT = 256
"""The most rows one group commits."""
LINGER_SECONDS = 0.05
"""After a group, the writer looks for more rows this often before it sleeps until woken: under
load, `GroupWriter.put` then wakes no thread (a wake-up per row cost about 9% of Recommend's
CPU), and an idle writer costs nothing. 50 ms, not 5: ten times fewer commits under load, each
of which traded the GIL back and forth with the request threads while the writer was busy in
SQLite (issue 12; measured with the one-statement read in the README's Benchmarks 1). A
`submit` or `flush` caller never waits for it, and another process asked for a list this young
looks again for up to a second (`kosmos.recommendation.domain.YOUNG_LIST_SECONDS`)."""


class _Ticket(Generic[T]):
    __slots__ = ("done", "error", "item", "key")

    def __init__(self, item: T, key: Hashable = None, wait: bool = True) -> None:
        self.item = item
        self.key = key
        self.done = threading.Event() if wait else None
        self.error: BaseException | None = None


class GroupWriter(Generic[T]):
    """Calls ``write`` with every row submitted since its last call, on a thread of its own."""

    def __init__(self, write: Callable[[Sequence[T]], None], name: str) -> None:
        self._write = write
        self._name = name
        self._queue: list[_Ticket[T]] = []
        self.pending: dict[Hashable, T] = {}
        """Rows `put` and not yet committed, by key (read them before the store)."""
        self._flushed = threading.Condition(threading.Lock())
        self._enqueued = 0  # rows queued, ever
        self._done = 0  # rows committed or failed, ever (groups go in queue order)
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._asleep = False  # waiting without a timeout: the next row must wake it

    def submit(self, item: T, timeout: float) -> None:
        """Returns once ``item`` is committed. Raises what the write raised, or Unavailable
        when it is not committed within ``timeout`` seconds (it may still be, later)."""
        ticket = _Ticket(item)
        self._enqueue(ticket)
        assert ticket.done is not None
        if not ticket.done.wait(timeout):
            raise Unavailable("DATABASE_BUSY", "the database is busy with other writes; retry")
        if ticket.error is not None:
            raise ticket.error

    def put(self, key: Hashable, item: T) -> None:
        """Queues ``item`` for the next group and returns at once; until it commits it is in
        `pending` under ``key``. A failed group is logged and dropped (it is a cache)."""
        self.pending[key] = item
        self._enqueue(_Ticket(item, key, wait=False))

    def flush(self, timeout: float = 10.0) -> None:
        """Returns once every row put or submitted before the call is committed (or failed), or
        after ``timeout`` seconds, or what is left of the caller's deadline if less."""
        left = deadline.remaining()
        if left is not None:
            timeout = max(min(timeout, left), 0.0)
        with self._wake:
            target = self._enqueued
            self._wake.notify()
        with self._flushed:
            self._flushed.wait_for(lambda: self._done >= target, timeout)

    def _enqueue(self, ticket: _Ticket[T]) -> None:
        with self._wake:
            if self._closed:
                raise Unavailable("STORE_CLOSED", "the store is shutting down; retry")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._queue.append(ticket)
            self._enqueued += 1
            if self._asleep or ticket.done is not None:  # a caller waits: no lingering
                self._wake.notify()

    def close(self) -> None:
        """Commits what is queued, then stops the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._queue and not self._closed:
                    self._wake.wait(LINGER_SECONDS)
                while not self._queue and not self._closed:
                    self._asleep = True
                    self._wake.wait()
                self._asleep = False
                if not self._queue:
                    return
                group, self._queue = self._queue[:GROUP_LIMIT], self._queue[GROUP_LIMIT:]
            error: BaseException | None = None
            try:
                self._write([t.item for t in group])
            except Exception as exc:  # each caller hears of it; the writer goes on
                log.warning("a group write of %d rows failed: %s", len(group), exc)
                error = exc
            for t in group:
                if t.done is None:
                    self.pending.pop(t.key, None)
                else:
                    t.error = error
                    t.done.set()
            with self._flushed:
                self._done += len(group)
                self._flushed.notify_all()
