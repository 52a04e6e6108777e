"""Each service as its own process: starts from the environment, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kosmos.client import InteractionInput, KosmosClient, UnauthenticatedError
from kosmos.common.auth import with_key
from kosmos.v1 import recommendation_service_pb2, recommendation_service_pb2_grpc
from tests.helpers import first_serving, item

BOOTSTRAP = "process-test-bootstrap-key-0123456789"


def start(module: str, listen_var: str, tmp_path, **extra: str) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        listen_var: "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        "KOSMOS_GRACE_SECONDS": "5",
        "KOSMOS_DRAIN_SECONDS": "0",
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # "<service> listening on 127.0.0.1:PORT", or EOF on failure
    if "listening on" not in line:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"{module} did not start: {line!r} {err}")
    return proc, line.strip().rsplit(" ", 1)[1]


@pytest.mark.parametrize(
    ("module", "listen_var", "service"),
    [
        ("kosmos.profile", "KOSMOS_PROFILE_LISTEN", "kosmos.v1.ProfileService"),
        ("kosmos.feedback", "KOSMOS_FEEDBACK_LISTEN", "kosmos.v1.FeedbackService"),
        (
            "kosmos.recommendation",
            "KOSMOS_RECOMMENDATION_LISTEN",
            "kosmos.v1.RecommendationService",
        ),
    ],
)
def test_each_service_runs_alone_and_stops_on_sigterm(module, listen_var, service, tmp_path):
    proc, address = start(module, listen_var, tmp_path)
    try:
        with grpc.insecure_channel(address) as channel:
            assert first_serving(channel, service) == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert "received SIGTERM, shutting down" in err
    finally:
        proc.kill()
        proc.communicate()


def test_the_cluster_process_serves_every_service(tmp_path):
    proc, address = start(
        "kosmos.cluster", "KOSMOS_CLUSTER_LISTEN", tmp_path, KOSMOS_BOOTSTRAP_KEY=BOOTSTRAP
    )
    try:
        with KosmosClient(address, api_key=BOOTSTRAP) as client:
            client.create_shop("acme")
            client.create_customer("acme", "alice")
            assert client.recommend("acme", "alice").offers == []  # empty catalog, no error
            storefront = client.create_api_key("storefront", "acme").secret
        with KosmosClient(address, api_key=storefront) as shop:
            assert shop.recommend("acme", "alice").offers == []
        with KosmosClient(address, api_key="") as anonymous, pytest.raises(UnauthenticatedError):
            anonymous.get_shop("acme")
        with grpc.insecure_channel(address) as channel:  # reflection is off by default
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest()])))
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert BOOTSTRAP not in err and storefront not in err  # keys are never logged
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"KOSMOS_WORKERS": "many"}, "KOSMOS_WORKERS"),
        ({"KOSMOS_ROUTING": "no_such_plugin"}, "'no_such_plugin'"),
    ],
)
def test_bad_configuration_stops_startup_naming_it(tmp_path, extra, message):
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        **extra,
    }
    result = subprocess.run(
        [sys.executable, "-m", "kosmos.cluster"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


# -- several processes on one port (issue 12) ------------------------------------------------


def _children(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc: Linux, as the servers' port sharing)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == parent:
                found.append(int(entry))
    return sorted(found)


def _connections_on(pid: int, port: int, state: str = "01") -> int:
    """How many TCP sockets process ``pid`` holds on local ``port`` in ``state`` (01:
    established, 0A: listening)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == state and fields[9] in inodes:
                    count += 1
    return count


def _until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling the API as an operator would, bounded
    return condition()


def test_two_processes_share_the_port_serve_a_trained_model_and_drain_on_sigterm(tmp_path):
    log_file = tmp_path / "cluster.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"],
            env={
                **os.environ,
                "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
                "KOSMOS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
                "KOSMOS_BOOTSTRAP_KEY": BOOTSTRAP,
                "KOSMOS_PROCESSES": "2",
                "KOSMOS_GRACE_SECONDS": "5",
                "KOSMOS_DRAIN_SECONDS": "3",
                # Popularity is served only once trained and published in the database: each
                # process must load the version the other one trained.
                "KOSMOS_ROUTING": "popularity",
                "KOSMOS_MODEL_STORE": "database",
                "KOSMOS_FIT_IN_PROCESS": "als",
                "KOSMOS_MODEL_POLL_SECONDS": "0.2",
            },
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    channels: list[grpc.Channel] = []
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, log_file.read_text()
        address = line.strip().rsplit(" ", 1)[1]
        port = int(address.rsplit(":", 1)[1])
        servers = _children(proc.pid)
        assert len(servers) == 2
        with KosmosClient(address, api_key=BOOTSTRAP) as client:
            client.create_shop("acme")
            for n in range(5):
                client.upsert_items("acme", [item("acme", f"i{n}")])
            client.create_customer("acme", "bob")
            client.create_customer("acme", "alice")
            client.record_interactions(
                "acme", [InteractionInput("bob", "i3", "purchase", value=1) for _ in range(3)]
            )
            assert client.train_models("acme") == ["popularity"]

        # One connection per channel (no shared subchannel), spread by the kernel over both.
        stubs = []
        while len(stubs) < 8 or not all(_connections_on(pid, port) for pid in servers):
            assert len(stubs) < 64, "the kernel sent every connection to one process"
            channel = grpc.insecure_channel(address, [("grpc.use_local_subchannel_pool", 1)])
            channels.append(channel)
            grpc.channel_ready_future(channel).result(timeout=10)
            stubs.append(
                (
                    recommendation_service_pb2_grpc.RecommendationServiceStub(
                        with_key(channel, BOOTSTRAP)
                    ),
                    health_pb2_grpc.HealthStub(channel),
                )
            )
        request = recommendation_service_pb2.RecommendRequest(
            customer="shops/acme/customers/alice", page_size=1
        )

        def served_everywhere() -> bool:
            tops = [[o.item for o in s.Recommend(request, timeout=5).offers] for s, _ in stubs]
            return all(top == ["shops/acme/items/i3"] for top in tops)

        assert _until(served_everywhere)  # the version trained by one is served by both

        proc.send_signal(signal.SIGTERM)

        def draining_everywhere() -> bool:
            statuses = [
                h.Check(health_pb2.HealthCheckRequest(), timeout=5).status for _, h in stubs
            ]
            return all(s == health_pb2.HealthCheckResponse.NOT_SERVING for s in statuses)

        assert _until(draining_everywhere, seconds=2.5)  # both turned NOT_SERVING first...
        assert served_everywhere()  # ...and still answer while they drain
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        text = log_file.read_text()
        assert text.count("received SIGTERM, shutting down") == 2
        assert text.count("kosmos.common.server: stopped") == 2
        assert _children(proc.pid) == []
    finally:
        for channel in channels:
            channel.close()
        proc.kill()
        proc.communicate()


def test_a_killed_process_is_replaced_and_the_port_keeps_serving(tmp_path):
    proc, address = start(
        "kosmos.cluster",
        "KOSMOS_CLUSTER_LISTEN",
        tmp_path,
        KOSMOS_PROCESSES="2",
        KOSMOS_LOG_LEVEL="WARNING",
    )
    try:
        first = _children(proc.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        assert _until(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid) != first)
        (replacement,) = set(_children(proc.pid)) - set(first)
        port = int(address.rsplit(":", 1)[1])
        assert _until(lambda: _connections_on(replacement, port, state="0A") > 0)
        channels = []
        try:
            while not _connections_on(replacement, port):  # a connection the new one accepted
                assert len(channels) < 64, "the kernel sent no connection to the replacement"
                channels.append(
                    grpc.insecure_channel(address, [("grpc.use_local_subchannel_pool", 1)])
                )
                grpc.channel_ready_future(channels[-1]).result(timeout=10)
            # The replacement serves once its models are loaded (NOT_SERVING until then).
            assert first_serving(channels[-1]) == health_pb2.HealthCheckResponse.SERVING
        finally:
            for channel in channels:
                channel.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()


def test_a_killed_supervisor_takes_its_processes_with_it(tmp_path):
    proc, _address = start(
        "kosmos.cluster", "KOSMOS_CLUSTER_LISTEN", tmp_path, KOSMOS_PROCESSES="2"
    )
    servers = _children(proc.pid)
    assert len(servers) == 2
    proc.kill()
    proc.communicate()

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    assert _until(lambda: all(gone(pid) for pid in servers), seconds=10)


def test_several_processes_print_their_addresses_and_one_serves_http(tmp_path):
    proc, address = start(
        "kosmos.cluster",
        "KOSMOS_CLUSTER_LISTEN",
        tmp_path,
        KOSMOS_PROCESSES="2",
        KOSMOS_BOOTSTRAP_KEY=BOOTSTRAP,
        KOSMOS_HTTP_LISTEN="127.0.0.1:0",
        KOSMOS_METRICS_LISTEN="127.0.0.1:0",
    )
    try:
        # Process 0's lines come first, as a single process prints them; then process 1's.
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("kosmos metrics on http://127.0.0.1:")
        assert lines[1].startswith("kosmos http on 127.0.0.1:")
        assert lines[2].startswith("kosmos metrics on http://127.0.0.1:") and lines[2] != lines[0]
        with KosmosClient(address, api_key=BOOTSTRAP) as client:
            client.create_shop("acme")
        request = urllib.request.Request(
            f"http://{lines[1].rsplit(' ', 1)[1]}/kosmos.v1.ProfileService/GetShop",
            data=json.dumps({"name": "shops/acme"}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {BOOTSTRAP}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["shop"]["name"] == "shops/acme"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()
