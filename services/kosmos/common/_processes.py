"""Several server processes on one port (``KOSMOS_PROCESSES``): a pre-fork supervisor.

Python runs one thread at a time per process (the GIL), so a server uses one core however many
worker threads it has. The supervisor reserves the port with ``SO_REUSEPORT``, forks the servers
(each binds the same port with ``SO_REUSEPORT`` too, and the kernel spreads connections over
them), forwards SIGTERM and SIGINT to every one (each drains as a single process does), and
restarts one that dies. This is the shape gRPC's own multiprocessing example has [grpc
``examples/python/multiprocessing``], and the shape of replicas behind a Kubernetes Service,
inside one pod: each process has its own workers, store connections, models and health.

Forking happens before anything starts a thread or touches gRPC's core (the supervisor only
read the configuration and set up logging), which is what makes it safe; each child then
configures telemetry, opens its store and loads its models itself.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import FrameType

from kosmos.common.config import ServerConfig

log = logging.getLogger(__name__)

# A process that keeps dying is not restarted forever: past this many restarts in this many
# seconds the supervisor stops them all and exits, and the orchestrator takes over.
_RESTARTS = 5
_RESTART_WINDOW_SECONDS = 60.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT}
_PR_SET_PDEATHSIG = 1

ServeChild = Callable[[ServerConfig, Callable[[Sequence[str]], None]], None]
"""Runs one server with the child's configuration until it stops; calls its second argument
once the server accepts and its SIGTERM handler is in place, with the lines a single process
would print after its listening line (its metrics and HTTP addresses)."""


def _reserve(listen: str) -> socket.socket:
    """A bound (not listening) socket holding the port for the children, so that port 0 becomes
    one port for all and no other program takes it between restarts."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None,
        int(port),
        type=socket.SOCK_STREAM,
        flags=socket.AI_PASSIVE,
    )[0]
    reserved = socket.socket(family, kind, proto)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reserved.bind(address)
    return reserved


def _metrics_listen(listen: str, index: int) -> str:
    """Process ``index`` serves its Prometheus endpoint on the configured port plus ``index``
    (metrics are per process, as they are per pod)."""
    host, _, port = listen.rpartition(":")
    if not listen or int(port) == 0:
        return listen
    return f"{host}:{int(port) + index}"


def _die_with_parent(parent: int) -> None:
    """A child outlives no SIGKILL of its supervisor (Linux; elsewhere the child just runs on):
    otherwise it would keep answering on the port after its supervisor was gone."""
    libc_name = ctypes.util.find_library("c")
    if libc_name and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the line above
        os._exit(1)


def supervise(service_name: str, config: ServerConfig, serve_child: ServeChild) -> int:
    """Forks ``config.processes`` servers on ``config.listen`` and supervises them.

    Prints ``<service_name> listening on host:port`` once every process serves (the line a
    single process prints), returns once all have stopped after SIGTERM or SIGINT: 0 when every
    one stopped cleanly, else the first failing exit code (2: one could not start).

    Raises:
        OSError: The port cannot be reserved.
    """
    reserved = _reserve(config.listen)
    host = config.listen.rpartition(":")[0]
    listen = f"{host}:{reserved.getsockname()[1]}"
    ready_read, ready_write = os.pipe()
    supervisor = os.getpid()
    children: dict[int, int] = {}  # pid -> process index
    stopping = False

    def spawn(index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # no signal between fork and record
        pid = os.fork()
        if pid == 0:
            for signum in _SIGNALS:  # a stop before the server's own handler: just end
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            _run_child(
                supervisor, index, reserved, ready_read, ready_write, config, listen, serve_child
            )
        children[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            log.info(
                "received %s, stopping %d processes", signal.Signals(signum).name, len(children)
            )
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # already gone: reaped below

    for signum in _SIGNALS:
        signal.signal(signum, forward)
    for index in range(config.processes):
        spawn(index)

    # Startup: every process says it serves, or one fails (bad configuration) and all stop.
    ready = 0
    code = 0
    said: dict[int, list[str]] = {}
    buffer = b""
    while ready < config.processes and not stopping:
        readable, _, _ = select.select([ready_read], [], [], 0.5)
        if readable:
            buffer += os.read(ready_read, 65536)
            *records, buffer = buffer.split(b"\0")
            for record in records:  # "index\nline\nline..." from each process once it serves
                number, *lines = record.decode().split("\n")
                said[int(number)] = lines
                ready += 1
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status) or 1
            log.error("process %d exited with %d while starting", children.pop(pid), code)
            forward(signal.SIGTERM, None)
    if ready >= config.processes and not stopping:
        print(f"{service_name} listening on {listen}", flush=True)
        for index in sorted(said):  # process 0's addresses first, as one process prints them
            for line in said[index]:
                print(f"{service_name} {line}", flush=True)
        log.info("serving on %s with %d processes", listen, config.processes)

    restarts: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        exit_code = os.waitstatus_to_exitcode(status)
        if stopping:
            # Ended by the signal it was sent (it was still starting, before its own handler):
            # that is the stop asked for, not a failure.
            if exit_code != 0 and -exit_code not in _SIGNALS and code == 0:
                code = exit_code if exit_code > 0 else 1
            continue
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < _RESTART_WINDOW_SECONDS] + [now]
        if len(restarts) > _RESTARTS:
            log.error("process %d exited with %d: too many restarts, stopping", index, exit_code)
            code = 1
            forward(signal.SIGTERM, None)
            continue
        log.warning("process %d (pid %d) exited with %d: restarting it", index, pid, exit_code)
        spawn(index)
    reserved.close()
    log.info("all processes stopped")
    return code


def _run_child(
    supervisor: int,
    index: int,
    reserved: socket.socket,
    ready_read: int,
    ready_write: int,
    config: ServerConfig,
    listen: str,
    serve_child: ServeChild,
) -> None:
    """The forked child: serves, then exits without returning into the supervisor's code."""
    code = 1
    try:
        _die_with_parent(supervisor)
        reserved.close()
        os.close(ready_read)
        child = replace(
            config,
            listen=listen,
            processes=1,
            metrics_listen=_metrics_listen(config.metrics_listen, index),
            # One HTTP port, on process 0: its gateway calls the shared gRPC port, so the
            # kernel still spreads HTTP calls over every process.
            http_listen=config.http_listen if index == 0 else "",
        )
        log.info("process %d of %d: pid %d", index, config.processes, os.getpid())

        def ready(lines: Sequence[str]) -> None:
            os.write(ready_write, "\n".join([str(index), *lines]).encode() + b"\0")

        serve_child(child, ready)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("process %d failed", index)
    finally:
        # What a normal interpreter exit does (telemetry flushes, logging), then leave: the
        # stack below is the supervisor's, which a child must never run.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
