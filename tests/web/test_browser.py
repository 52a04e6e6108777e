"""The storefront and the dashboard in a real browser: Debian's chromium driven by
playwright-core (services/web/test/browser.ts), against a real cluster and its HTTP port.

Each step asserts on what the page shows (offers and their reasons, what changes after a
dismissal, the cart's offers, an exclusion's effect, each replica's heartbeat, health, model
versions, charts) and saves a screenshot under var/screenshots. Without chromium or the built
pages the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from kosmos.client import InteractionInput
from kosmos.v1 import profile_service_pb2, profile_service_pb2_grpc
from tests.web.node import WEB, require_web

CHROMIUM = os.environ.get("KOSMOS_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def require_chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        reason = f"{CHROMIUM} is not installed (make test installs it with apt-get as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


def serves_customer_ecosystem(channel: grpc.Channel) -> bool:
    """Whether this cluster serves issue 11's RPCs (tastes, consent, links, erasure) yet."""
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    try:
        stub.GetTastes(
            profile_service_pb2.GetTastesRequest(customer="shops/acme/customers/alice"),
            timeout=10,
        )
    except grpc.RpcError as error:
        return error.code() != grpc.StatusCode.UNIMPLEMENTED
    return True


def test_storefront_and_dashboard_in_chromium(web):
    node = require_web()
    chromium = require_chromium()
    client = web.cluster.client
    # Some history, so that alice gets offers that cite it and the models have data.
    kinds = ["purchase", "click"]
    for n, customer in enumerate(["alice", "bob"]):
        client.record_interactions(
            "acme",
            [
                InteractionInput(customer, f"i{(n * 5 + k) % 24:02d}", kinds[k % 2])
                for k in range(6)
            ],
        )
    # A merchant rule and a running experiment with some traffic, for the dashboard (issue 13).
    from kosmos.v1 import experiment_service_pb2 as ex
    from kosmos.v1 import rules_service_pb2 as ru

    lift = ru.MerchantRule(
        rule_id="lift-garden",
        action=ru.RULE_ACTION_BOOST,
        match=ru.ItemMatch(categories=["Garden"]),
        factor=1.5,
    )
    client.update_merchant_rules("acme", [lift])
    variants = [ex.Variant(variant_id="control"), ex.Variant(variant_id="lifted", rules=[lift])]
    client.create_experiment("acme", "lift", ex.Experiment(variants=variants))
    assert client.train_models("acme")
    deadline = time.monotonic() + 60
    while not any(v.serving for v in client.list_model_versions("acme")):
        assert time.monotonic() < deadline, "no model version after 60 s"
        time.sleep(0.05)  # polling the API as an operator would, bounded
    config = {
        "base": web.base,
        "shop": "acme",
        "storefront": web.storefront,
        "admin": web.admin,
        "customer": "alice",
        "screenshots": str(SCREENSHOTS),
        "chromium": chromium,
        "ecosystem": serves_customer_ecosystem(web.cluster.channel),
        "brand": "B1",
        "replicas": [web.replica],
    }
    config_file = SCREENSHOTS.parent / "browser-test.json"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config))
    done = subprocess.run(
        [node, str(WEB / "dist" / "test" / "browser.mjs"), str(config_file)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    config_file.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads(done.stdout)["steps"]
    assert "storefront: dismiss an offer and the next offers change" in steps
    assert "dashboard: replicas, health, models, metrics" in steps
    assert "dashboard: merchant rules and the experiment's variants" in steps
    assert "storefront: the pages reported what they showed, and the experiment counts it" in steps
    for name in ("storefront-home", "storefront-after-dismiss", "storefront-product",
                 "storefront-cart", "storefront-profile", "dashboard"):  # fmt: skip
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
