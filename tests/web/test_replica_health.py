"""Per-replica health (issue 14): every serving process records a heartbeat in the store, and
any replica's HTTP port lists them all (``GET /replicas``), which the dashboard draws. Real
``python -m kosmos.cluster`` processes on one database, as replicas on Kubernetes or several
processes on one port (`KOSMOS_PROCESSES`) would be."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from typing import Any

from kosmos import __version__
from tests.test_processes import BOOTSTRAP, start

BEAT = "0.5"  # KOSMOS_HEARTBEAT_SECONDS: stale after three missed beats, 1.5 s


def start_replica(tmp_path, **extra: str) -> subprocess.Popen[str]:
    """One server process (its pid is the replica's) unless ``KOSMOS_PROCESSES`` says more."""
    extra = {"KOSMOS_PROCESSES": "1", **extra}
    proc, _address = start("kosmos.cluster", "KOSMOS_CLUSTER_LISTEN", tmp_path,
                           KOSMOS_BOOTSTRAP_KEY=BOOTSTRAP, KOSMOS_HEARTBEAT_SECONDS=BEAT,
                           **extra)  # fmt: skip
    return proc


def listing(http: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"http://{http}/replicas", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/json"
        body = json.loads(answer.read())
    assert body["heartbeatSeconds"] == float(BEAT)
    return {r["replica"]: r for r in body["replicas"]}


def until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        threading.Event().wait(0.05)  # a bounded wait on what other processes do
    return False


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate()


def test_every_replica_is_listed_and_a_stopped_one_goes(tmp_path):
    a = start_replica(tmp_path, KOSMOS_HTTP_LISTEN="127.0.0.1:0")
    procs = [a]
    try:
        line = a.stdout.readline()  # "kosmos http on 127.0.0.1:PORT"
        assert line.startswith("kosmos http on "), line
        http = line.split()[-1]
        b = start_replica(tmp_path)  # no HTTP port of its own: listed all the same
        c = start_replica(tmp_path)
        procs += [b, c]
        host = socket.gethostname()
        ids = {p: f"{host}/{p.pid}" for p in procs}
        assert until(lambda: all(listing(http).get(ids[p], {}).get("status") == "SERVING"
                                 for p in procs))  # fmt: skip
        replicas = listing(http)
        for p in procs:
            r = replicas[ids[p]]
            assert "kosmos.v1.RecommendationService" in r["services"]
            assert "kosmos.v1.ProfileService" in r["services"]
            assert r["version"] == __version__
            assert r["startTime"] <= r["seenTime"] <= time.time() + 1
            assert r["stale"] is False

        # A graceful stop removes the replica's row before the process exits.
        b.send_signal(signal.SIGTERM)
        b.communicate(timeout=60)
        assert b.returncode == 0
        assert ids[b] not in listing(http)

        # A replica that dies stops beating: it turns stale, the living ones stay fresh.
        c.kill()
        c.communicate()
        assert until(lambda: listing(http)[ids[c]]["stale"])
        replicas = listing(http)
        assert replicas[ids[a]]["stale"] is False
        assert replicas[ids[a]]["seenTime"] > replicas[ids[c]]["seenTime"]
    finally:
        for p in procs:
            stop(p)


def test_several_processes_on_one_port_are_each_a_replica(tmp_path):
    # KOSMOS_PROCESSES=2: a supervisor forks two servers sharing the port; each one beats.
    proc = start_replica(tmp_path, KOSMOS_HTTP_LISTEN="127.0.0.1:0", KOSMOS_PROCESSES="2")
    try:
        line = proc.stdout.readline()
        assert line.startswith("kosmos http on "), line
        http = line.split()[-1]
        host = socket.gethostname()

        def two_serving() -> bool:
            mine = [r for r in listing(http).values() if r["replica"].startswith(f"{host}/")]
            return len(mine) == 2 and all(r["status"] == "SERVING" for r in mine)

        assert until(two_serving)
        ids = set(listing(http))
        assert f"{host}/{proc.pid}" not in ids  # the supervisor serves nothing itself
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        stop(proc)
