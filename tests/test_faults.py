"""Faults survived (issue 8): kills, drains, hopeless deadlines and restarts, on real processes.

Each test is bounded: loops count, waits have timeouts, processes are killed in ``finally``.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from kosmos.client import InteractionInput, KosmosClient
from kosmos.common.auth import with_key
from kosmos.common.config import ServerConfig
from kosmos.common.server import Service, build_server
from kosmos.v1 import common_pb2, feedback_service_pb2, feedback_service_pb2_grpc
from tests.conftest import OPERATOR_KEY
from tests.helpers import item


class Cluster:
    """``python -m kosmos.cluster`` as a child process that can be killed and restarted on the
    same port and database."""

    def __init__(self, database_url: str, **extra: str) -> None:
        self.env = {
            **os.environ,
            "KOSMOS_DATABASE_URL": database_url,
            "KOSMOS_GRACE_SECONDS": "5",
            "KOSMOS_DRAIN_SECONDS": "0",
            "KOSMOS_LOG_LEVEL": "WARNING",
            # The test client sends OPERATOR_KEY (KOSMOS_API_KEY); the child must accept it.
            "KOSMOS_BOOTSTRAP_KEY": OPERATOR_KEY,
            **extra,
        }
        self.listen = "127.0.0.1:0"
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        # The child's log goes to a file, never to a pipe nobody reads: a full pipe blocks the
        # child's next log line, and with it the SIGTERM handler that logs (a drain that never
        # starts, seen once in a few full runs).
        self.log = tempfile.TemporaryFile(mode="w+")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"],
            env={**self.env, "KOSMOS_CLUSTER_LISTEN": self.listen},
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            self.proc.communicate()
            self.log.seek(0)
            raise AssertionError(f"the cluster did not start: {line!r} {self.log.read()}")
        self.address = line.strip().rsplit(" ", 1)[1]
        self.listen = self.address  # a restart binds the same port again

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)

    def close(self) -> None:
        self.kill()
        self.log.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/k.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def cluster(database_url) -> Iterator[Cluster]:
    c = Cluster(database_url)
    c.start()
    yield c
    c.close()


def seed(client: KosmosClient, items: int = 5) -> None:
    client.create_shop("acme")
    client.create_customer("acme", "alice")
    client.upsert_items("acme", [item("acme", f"i{n}", title=f"Item {n}") for n in range(items)])


def stored_values(client: KosmosClient) -> list[float]:
    return [i.value for i in client.list_interactions("acme", "alice", page_size=1000)]


def test_sigkill_loses_no_acknowledged_event_and_stores_none_twice(cluster):
    # (a) Every acknowledged event is stored exactly once across repeated SIGKILLs.
    with KosmosClient(cluster.address, timeout=20) as client:
        seed(client)
        acked: list[float] = []
        progress = threading.Condition()
        done = threading.Event()
        failures: list[BaseException] = []

        def stream() -> None:
            try:
                for n in range(60):
                    values = [float(n * 10 + k) for k in range(3)]
                    client.record_interactions(
                        "acme",
                        [
                            InteractionInput("alice", f"i{k}", "purchase", value=v)
                            for k, v in enumerate(values)
                        ],
                        retries=8,
                    )
                    with progress:
                        acked.extend(values)
                        progress.notify_all()
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                failures.append(exc)
            finally:
                done.set()
                with progress:
                    progress.notify_all()

        sender = threading.Thread(target=stream)
        sender.start()
        for kill in range(3):
            with progress:
                assert progress.wait_for(
                    lambda k=kill: len(acked) >= (k + 1) * 30 or done.is_set(), timeout=60
                )
            cluster.kill()
            cluster.start()
        sender.join(timeout=120)
        assert not failures, failures
        assert len(acked) == 180
        stored = stored_values(client)
    assert sorted(stored) == sorted(acked)  # all there, none twice


def _raw_stub(address: str) -> tuple[grpc.Channel, feedback_service_pb2_grpc.FeedbackServiceStub]:
    channel = with_key(grpc.insecure_channel(address), OPERATOR_KEY)
    return channel, feedback_service_pb2_grpc.FeedbackServiceStub(channel)


def test_sigterm_drains_then_finishes_in_flight_calls(tmp_path):
    # (c) Health says NOT_SERVING first while calls still succeed, then in-flight calls finish:
    # no caller sees CANCELLED.
    cluster = Cluster(f"sqlite:///{tmp_path}/k.db", KOSMOS_DRAIN_SECONDS="1.5")
    cluster.start()
    try:
        with KosmosClient(cluster.address) as client:
            seed(client)
        channel, stub = _raw_stub(cluster.address)
        health = health_pb2_grpc.HealthStub(channel)
        codes: list[grpc.StatusCode] = []
        stop = threading.Event()
        counter = itertools.count()

        def send() -> None:
            for _ in range(5000):
                if stop.is_set():
                    return
                request = feedback_service_pb2.RecordInteractionsRequest(
                    parent="shops/acme",
                    request_id=f"r{next(counter)}",
                    interactions=[
                        common_pb2.Interaction(
                            customer="shops/acme/customers/alice",
                            item_id="i1",
                            type=common_pb2.INTERACTION_TYPE_VIEW,
                        )
                    ],
                )
                try:
                    stub.RecordInteractions(request, timeout=10)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
                    if error.code() is grpc.StatusCode.UNAVAILABLE:
                        return  # the server stopped accepting: this sender is done

        senders = [threading.Thread(target=send) for _ in range(4)]
        for t in senders:
            t.start()
        cluster.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        status = health_pb2.HealthCheckResponse.SERVING
        while status == health_pb2.HealthCheckResponse.SERVING and time.monotonic() < deadline:
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        ok_before = codes.count(grpc.StatusCode.OK)
        with KosmosClient(cluster.address) as late:  # draining: still served
            late.record_interactions("acme", [InteractionInput("alice", "i2", "click")])
        assert codes.count(grpc.StatusCode.OK) >= ok_before
        cluster.proc.communicate(timeout=30)
        stop.set()
        for t in senders:
            t.join(timeout=30)
        channel.close()
        assert cluster.proc.returncode == 0
        assert grpc.StatusCode.CANCELLED not in codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    finally:
        cluster.close()


def test_the_sdk_outlasts_a_two_second_restart(tmp_path):
    # (e) wait_for_ready + gRPC's retry policy: a batch sent while the server is down is
    # delivered once it is back, under the same request_id, stored once.
    cluster = Cluster(f"sqlite:///{tmp_path}/k.db")
    cluster.start()
    try:
        with KosmosClient(cluster.address, timeout=15) as client:
            seed(client)
            cluster.kill()
            restart = threading.Timer(2.0, cluster.start)  # the outage under test, not a sync
            restart.start()
            try:
                started = time.monotonic()
                client.record_interactions(
                    "acme", [InteractionInput("alice", "i1", "rating", value=4.0)], request_id="x"
                )
                assert time.monotonic() - started >= 1.5  # it really waited out the outage
            finally:
                restart.join(timeout=30)
            client.record_interactions(
                "acme", [InteractionInput("alice", "i1", "rating", value=4.0)], request_id="x"
            )
            assert stored_values(client) == [4.0]
    finally:
        cluster.close()


# -- admission control (in process) ----------------------------------------------------------

SLOW = "/kosmos.test.Slow/Work"


class _SlowService:
    """A service whose one method takes ``seconds``; counts the calls that started work."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0
        self._lock = threading.Lock()

    def work(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.started += 1
        threading.Event().wait(self.seconds)  # stands for work that takes this long
        return request

    def register(self, server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self.work)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("kosmos.test.Slow", {"Work": handler}),)
        )


def test_unmeetable_and_expired_deadlines_are_refused_before_work():
    # (d) A call whose deadline is shorter than the method's fastest recent run never starts.
    slow = _SlowService(0.3)
    server, port, _health = build_server(
        "127.0.0.1:0", 4, [Service("kosmos.test.Slow", slow.register)]
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(SLOW)
            for _ in range(2):
                assert call(b"x", timeout=5) == b"x"
            assert slow.started == 2
            for _ in range(3):
                with pytest.raises(grpc.RpcError) as raised:
                    call(b"x", timeout=0.1)
                assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
                status = rpc_status.from_call(raised.value)
                assert status is not None and "admission" in status.message
            assert slow.started == 2  # none of the hopeless calls started work
    finally:
        server.stop(None).wait()


# -- the database goes away (PostgreSQL) -------------------------------------------------------


class _Proxy:
    """A TCP forwarder in front of PostgreSQL that the test can cut and restore: the network
    between a replica and its database, a border we do not own."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, target) -> None:  # noqa: ANN001 - sockets
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.close()
                except OSError:
                    pass

    def sever(self) -> None:
        self.cut = True
        with self._lock:
            for s in self._open:
                try:
                    s.close()
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        self.cut = False

    def close(self) -> None:
        self._closed = True
        self.sever()
        self._listener.close()


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        try:
            return (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=2)
                .status
            )
        except grpc.RpcError:
            return -1


def _wait_health(address: str, wanted: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _health(address) == wanted:
            return True
        threading.Event().wait(0.1)  # polling interval of a prober, not a synchronisation
    return False


@pytest.mark.postgres
def test_losing_the_database_turns_health_off_and_loses_nothing_acked(postgres_url):
    # (b) The connection to PostgreSQL is cut under load: health NOT_SERVING meanwhile, the
    # service recovers by itself once it is back, and every acknowledged event is stored once.
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(postgres_url)
    proxy = _Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    cluster = Cluster(proxied)
    cluster.start()
    try:
        with KosmosClient(cluster.address, timeout=30) as client:
            seed(client)
            acked: list[float] = []
            failures: list[BaseException] = []
            stop = threading.Event()

            def stream() -> None:
                try:
                    for n in range(400):
                        if stop.is_set():
                            return
                        value = float(n + 1)
                        client.record_interactions(
                            "acme",
                            [InteractionInput("alice", "i1", "purchase", value=value)],
                            retries=10,
                        )
                        acked.append(value)
                except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                    failures.append(exc)

            sender = threading.Thread(target=stream)
            sender.start()
            proxy.sever()
            assert _wait_health(cluster.address, health_pb2.HealthCheckResponse.NOT_SERVING, 15)
            proxy.restore()
            assert _wait_health(cluster.address, health_pb2.HealthCheckResponse.SERVING, 30)
            stop.set()
            sender.join(timeout=120)
            assert not failures, failures
            assert acked
            stored = stored_values(client)
        assert sorted(stored) == sorted(set(stored)) and set(acked) <= set(stored)
    finally:
        cluster.close()
        proxy.close()


_FLOOD = """
import sys, threading, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary("/kosmos.test.Slow/Work")
def flood():
    for _ in range(200000):
        try:
            call(b"x", timeout=0.001)
        except grpc.RpcError:
            pass
threads = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
for t in threads:
    t.start()
print("flooding", flush=True)
for t in threads:
    t.join()
"""


def test_under_a_flood_of_hopeless_calls_only_good_ones_start_work():
    # (d) Issue 8: 1 ms-deadline calls kept running after their callers gave up and cut the
    # goodput of well-behaved callers by 93%. Here none of the flood starts work, and every
    # good call succeeds. The goodput ratio itself (goal >= 80%) is a speed figure: `make
    # bench` measures it (tools/bench_store.py), as the house rules want for speed goals.
    slow = _SlowService(0.05)
    server, port, _health = build_server(  # the default KOSMOS_WORKERS
        "127.0.0.1:0",
        ServerConfig("127.0.0.1:0").workers,
        [Service("kosmos.test.Slow", slow.register)],
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(SLOW)
            assert call(b"x", timeout=5) == b"x"  # the method's cost is known: 50 ms
            flood = subprocess.Popen(
                [sys.executable, "-c", _FLOOD, f"127.0.0.1:{port}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert flood.stdout.readline().strip() == "flooding"
                good: list[bytes] = []

                def caller() -> None:
                    for _ in range(10):
                        good.append(call(b"x", timeout=5))

                threads = [threading.Thread(target=caller) for _ in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
            finally:
                flood.kill()
                flood.communicate(timeout=30)
        assert good == [b"x"] * 40
        # At most one flood call a second is let through as a probe of the estimate.
        assert slow.started <= 1 + 40 + 2
    finally:
        server.stop(None).wait()
