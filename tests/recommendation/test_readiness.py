"""Health says NOT_SERVING until the routed models of the shops a replica serves are loaded
(issue 8), observed on a real ``python -m kosmos.cluster`` process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kosmos.recommenders.popularity import PopularityRecommender
from kosmos.store import SQLiteStore
from kosmos.store.records import Shop
from tests.conftest import OPERATOR_KEY
from tests.plugin.test_remote import PluginServer, first_line

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HeldFit(PopularityRecommender):
    """Popularity whose fit waits until the test lets it finish."""

    started = threading.Event()
    release = threading.Event()

    def fit(self, data):
        HeldFit.started.set()
        HeldFit.release.wait(60)
        super().fit(data)


def _status(channel: grpc.Channel) -> int:
    return (
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    )


def test_health_waits_for_the_routed_models(tmp_path):
    plugin = PluginServer(HeldFit(), factory=HeldFit)
    store = SQLiteStore(tmp_path / "k.db")
    store.create_shop(Shop("acme"))  # a shop this replica serves from its first pass
    store.close()
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        "KOSMOS_BOOTSTRAP_KEY": OPERATOR_KEY,
        "KOSMOS_ROUTING": "held,popularity",
        "KOSMOS_REMOTE_RECOMMENDERS": f"held={plugin.target}",
        "KOSMOS_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = first_line(proc, 60)
        assert "listening on" in line, line
        address = line.strip().rsplit(" ", 1)[1]
        with grpc.insecure_channel(address) as channel:
            assert HeldFit.started.wait(60)  # the first pass is fitting the routed model
            assert _status(channel) == NOT_SERVING
            HeldFit.release.set()
            deadline = time.monotonic() + 30
            status = NOT_SERVING
            while status != SERVING and time.monotonic() < deadline:
                status = _status(channel)  # a probe's poll, bounded
                threading.Event().wait(0.05)
            assert status == SERVING
    finally:
        HeldFit.release.set()
        proc.terminate()
        proc.communicate(timeout=30)
        plugin.stop()
