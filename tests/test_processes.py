"""Each service as its own process: starts from the environment, serves, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kosmos.client import KosmosClient, UnauthenticatedError

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
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
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
