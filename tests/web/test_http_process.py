"""`KOSMOS_HTTP_LISTEN` on a real service process: the HTTP port beside its gRPC port."""

from __future__ import annotations

import json
import signal
import urllib.request

from kosmos.client import KosmosClient
from tests.test_processes import BOOTSTRAP, start


def test_the_cluster_process_serves_its_http_port(tmp_path):
    proc, address = start(
        "kosmos.cluster",
        "KOSMOS_CLUSTER_LISTEN",
        tmp_path,
        KOSMOS_BOOTSTRAP_KEY=BOOTSTRAP,
        KOSMOS_HTTP_LISTEN="127.0.0.1:0",
        KOSMOS_METRICS_LISTEN="127.0.0.1:0",
        # /metrics on the HTTP port is its process's own (KOSMOS_PROCESSES=2 would count the
        # call in whichever process the kernel gave it to).
        KOSMOS_PROCESSES="1",
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        [http] = [line.split()[-1] for line in lines if line.startswith("kosmos http on ")]
        with KosmosClient(address, api_key=BOOTSTRAP) as client:
            client.create_shop("acme")
        request = urllib.request.Request(
            f"http://{http}/kosmos.v1.ProfileService/GetShop",
            data=json.dumps({"name": "shops/acme"}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {BOOTSTRAP}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["shop"]["name"] == "shops/acme"
        # The process's own metrics, for the dashboard: the call above is counted.
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=10) as answer:
            assert 'rpc_method="kosmos.v1.ProfileService/GetShop"' in answer.read().decode()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()
