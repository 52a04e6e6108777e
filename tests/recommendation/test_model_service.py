"""ModelService: operators list, train and roll back model versions over gRPC (issue 8)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from kosmos.cli import main as kosmos_cli
from kosmos.client import FailedPreconditionError, InteractionInput
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import LoadedPlugin
from kosmos.recommenders.popularity import create as popularity
from kosmos.v1 import (
    experiment_service_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    shop_settings_service_pb2,
)
from tests.conftest import OPERATOR_KEY, Cluster, start_cluster
from tests.helpers import assert_code, assert_invalid, small_shop

PLUGINS = {"popularity": LoadedPlugin("popularity", popularity, "kosmos")}


def _stop(c: Cluster) -> None:
    c.client.close()
    c.channel.close()
    c.server.stop(None).wait()


@pytest.fixture
def cluster(store) -> Iterator[Cluster]:
    settings = RecommendationSettings(
        refresh_seconds=0, model_store="database", fit_in_process=frozenset()
    )
    c = start_cluster(store, settings, PLUGINS)
    small_shop(c.client)
    c.client.record_interactions(
        "acme", [InteractionInput("bob", "i05", "purchase", value=1) for _ in range(3)]
    )
    yield c
    _stop(c)


def versions_once(
    c: Cluster, count: int, recommender: str = ""
) -> list[model_service_pb2.ModelVersion]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = c.client.list_model_versions("acme", recommender)
        if len(found) >= count and found[-1].serving:  # published, then made current
            return found
        time.sleep(0.05)  # polling the API as an operator would, bounded
    raise AssertionError(f"fewer than {count} versions after 30 s")


def test_train_list_and_roll_back_over_grpc(cluster, capsys, monkeypatch):
    c = cluster
    assert c.client.list_model_versions("acme") == []
    assert c.client.train_models("acme") == ["popularity"]
    (first,) = versions_once(c, 1)
    assert first.serving and first.interactions == 3 and first.distribution == "kosmos"
    assert first.metrics == {}  # three events are too few to hold any out
    assert first.name.startswith("shops/acme/recommenders/popularity/versions/")
    assert c.client.recommend("acme", "alice", page_size=1).offers[0].item.endswith("i05")

    c.client.train_models("acme", force=True)  # same data: only a forced training fits again
    first_again, second = versions_once(c, 2)
    assert second.serving and not first_again.serving
    served = c.client.rollback_model("acme", "popularity")
    assert served.name == first.name and served.serving
    assert [v.serving for v in c.client.list_model_versions("acme")] == [True, False]

    monkeypatch.setenv("COLUMNS", "200")
    assert (
        kosmos_cli(
            ["--target", c.address, "--api-key", OPERATOR_KEY, "models", "list", "--shop", "acme"],
            env={},
        )
        == 0
    )
    listed = capsys.readouterr().out
    assert first.name.rsplit("/", 1)[1] in listed and second.name.rsplit("/", 1)[1] in listed
    to = second.name.rsplit("/", 1)[1]
    assert (
        kosmos_cli(
            [
                *("--target", c.address, "--api-key", OPERATOR_KEY),
                *("models", "rollback", "acme", "popularity", "--to", to),
            ],
            env={},
        )
        == 0
    )
    assert c.client.list_model_versions("acme")[1].serving


def test_bad_requests_are_named(cluster):
    stub = model_service_pb2_grpc.ModelServiceStub(cluster.channel)
    assert_invalid(
        stub.ListModelVersions, model_service_pb2.ListModelVersionsRequest(parent="x"), "parent"
    )
    assert_invalid(
        stub.ListModelVersions,
        model_service_pb2.ListModelVersionsRequest(parent="shops/acme", recommender="nope"),
        "recommender",
    )
    assert_invalid(
        stub.ListModelVersions,
        model_service_pb2.ListModelVersionsRequest(parent="shops/acme", page_token="junk"),
        "page_token",
    )
    assert_invalid(
        stub.RollbackModel, model_service_pb2.RollbackModelRequest(name="shops/acme"), "name"
    )
    assert_code(
        stub.ListModelVersions,
        model_service_pb2.ListModelVersionsRequest(parent="shops/nope"),
        grpc.StatusCode.NOT_FOUND,
    )
    assert_code(
        stub.RollbackModel,
        model_service_pb2.RollbackModelRequest(name="shops/acme/recommenders/popularity"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_EARLIER_VERSION",
    )


def test_without_a_model_store_there_is_nothing_to_steer(store):
    c = start_cluster(store, RecommendationSettings(refresh_seconds=0), PLUGINS)
    try:
        small_shop(c.client)
        stub = model_service_pb2_grpc.ModelServiceStub(c.channel)
        assert_code(
            stub.TrainModels,
            model_service_pb2.TrainModelsRequest(parent="shops/acme"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NO_MODEL_STORE",
        )
    finally:
        _stop(c)


def train_when_idle(c: Cluster) -> list[str]:
    """TrainModels, once the training before it is done (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return c.client.train_models("acme")
        except FailedPreconditionError as error:
            if error.reason != "TRAINING_RUNNING" or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # polling the API as an operator would, bounded


def test_a_variant_with_its_own_settings_trains_versions_of_its_own(cluster):
    c = cluster
    old = datetime.now(UTC) - timedelta(days=40)
    c.client.record_interactions(
        "acme", [InteractionInput("bob", "i07", "purchase", value=1, event_time=old)] * 30
    )
    settings = shop_settings_service_pb2.PluginSettings(values={"half_life_days": "1"})
    c.client.create_experiment(
        "acme",
        "decay",
        experiment_service_pb2.Experiment(
            variants=[
                experiment_service_pb2.Variant(
                    variant_id="fresh", plugin_settings={"popularity": settings}
                )
            ]
        ),
    )
    variant = "popularity@decay.fresh"
    assert train_when_idle(c) == ["popularity", variant]
    (own,) = versions_once(c, 1, variant)
    assert own.name.startswith(f"shops/acme/recommenders/{variant}/versions/")
    assert own.serving and own.interactions == 33
    # Everyone is in the variant: served from its model (half-life 1 day: i05, bought today),
    # not from the shop's (14 days: i07, bought much 40 days ago).
    page = c.client.recommend("acme", "alice", page_size=1)
    assert page.variant == "fresh" and page.offers[0].item.endswith("i05")
    assert page.offers[0].recommender == "popularity"

    c.client.end_experiment("acme", "decay")
    assert c.client.recommend("acme", "alice", page_size=1).offers[0].item.endswith("i07")
    assert train_when_idle(c) == ["popularity"]  # and its versions are deleted
    stub = model_service_pb2_grpc.ModelServiceStub(c.channel)
    request = model_service_pb2.ListModelVersionsRequest(parent="shops/acme", recommender=variant)
    assert_invalid(stub.ListModelVersions, request, "recommender")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if c.store.model_recommenders("acme") == ["popularity"]:
            break
        time.sleep(0.05)  # the training runs in the background: bounded
    assert c.store.model_recommenders("acme") == ["popularity"]
