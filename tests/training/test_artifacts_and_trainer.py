"""Versioned artifacts, the trainer, hot swap in the service, list and rollback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from kosmos.cli import main as kosmos_cli
from kosmos.client import InteractionInput
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import LoadedPlugin, RecommendQuery
from kosmos.plugin.routing import Routing
from kosmos.recommendation.models import ModelHub
from kosmos.recommenders.popularity import create as popularity
from kosmos.store.records import Interaction, InteractionType
from kosmos.training import ArtifactError, Artifacts, train
from tests.conftest import start_cluster
from tests.helpers import small_shop

PLUGINS = {"popularity": LoadedPlugin("popularity", popularity, "kosmos")}


def test_publish_current_versions_rollback_prune(tmp_path):
    artifacts = Artifacts(tmp_path)
    published = []
    for n in range(4):
        v = artifacts.publish(
            "acme",
            "pop",
            lambda d, n=n: (d / "m.txt").write_text(str(n)),
            interactions=n,
            fit_seconds=0.1,
            distribution="t",
            settings={},
        )
        published.append(v.version)
    assert [v.version for v in artifacts.versions("acme", "pop")] == published
    assert artifacts.current("acme", "pop") == published[-1]
    assert artifacts.rollback("acme", "pop") == published[-2]
    assert artifacts.current("acme", "pop") == published[-2]
    artifacts.rollback("acme", "pop", published[0])
    assert (artifacts.folder("acme", "pop", published[0]) / "m.txt").read_text() == "0"
    with pytest.raises(ArtifactError):
        artifacts.rollback("acme", "pop")  # nothing before the oldest
    with pytest.raises(ArtifactError):
        artifacts.set_current("acme", "pop", "no-such-version")
    removed = artifacts.prune("acme", "pop", keep=2)
    assert published[0] not in removed  # the current one is never pruned
    assert set(removed) == {published[1]}


def test_a_failed_save_leaves_no_half_version(tmp_path):
    artifacts = Artifacts(tmp_path)

    def broken(folder):
        (folder / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError):
        artifacts.publish(
            "acme", "pop", broken, interactions=0, fit_seconds=0, distribution="t", settings={}
        )
    assert artifacts.versions("acme", "pop") == [] and artifacts.current("acme", "pop") is None
    assert list((tmp_path / "acme" / "pop").iterdir()) == []


def _shop_with_bestseller(kosmos, item):
    kosmos.client.record_interactions(
        "acme", [InteractionInput("bob", item, "purchase") for _ in range(5)]
    )


def test_trainer_publishes_and_the_service_swaps_without_dropping_requests(store, tmp_path):
    artifacts = Artifacts(tmp_path / "models")
    settings = RecommendationSettings(
        refresh_seconds=0, model_dir=str(tmp_path / "models"), fit_in_process=frozenset()
    )
    c = start_cluster(store, settings, PLUGINS)
    try:
        small_shop(c.client)
        _shop_with_bestseller(c, "i07")
        (first,) = train(store, artifacts, PLUGINS, ["popularity"], {})
        assert first.version and not first.error
        assert c.client.recommend("acme", "alice", page_size=1).offers[0].item.endswith("i07")

        # A hub like the service's, hammered by readers while versions change under it.
        hub = ModelHub(
            store, PLUGINS, ("popularity",), {}, 0, artifacts=artifacts, fit_in_process=()
        )
        assert hub.version("acme", "popularity") is None
        hub.get("acme", "popularity")
        assert hub.version("acme", "popularity") == first.version
        _shop_with_bestseller(c, "i11")
        _shop_with_bestseller(c, "i11")
        (second,) = train(store, artifacts, PLUGINS, ["popularity"], {})
        errors, answers, stop = [], [], threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    model = hub.get("acme", "popularity")
                    answers.append(model.recommend(RecommendQuery("alice", k=1))[0].item_id)
                except Exception as exc:  # any failure is a dropped request
                    errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(20):
                hub.poll()
                assert hub.version("acme", "popularity") == second.version
                artifacts.rollback("acme", "popularity")
                hub.poll()
                assert hub.version("acme", "popularity") == first.version
                artifacts.set_current("acme", "popularity", second.version)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert errors == []
        assert set(answers) <= {"i07", "i11"} and answers
    finally:
        c.client.close()
        c.server.stop(None).wait()


def test_the_trainer_process_and_the_models_commands(tmp_path, store, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # tables wider than a test's 80 columns
    c = start_cluster(store)
    small_shop(c.client)
    c.client.close()
    c.server.stop(None).wait()
    env = {
        **os.environ,
        "KOSMOS_DATABASE_URL": f"sqlite:///{store.path}",
        "KOSMOS_MODEL_DIR": str(tmp_path / "models"),
        "KOSMOS_ROUTING": "popularity",
    }
    for run in range(3):
        if run == 1:  # new data: the second run fits; the third finds nothing new and skips
            store.record_interactions(
                "acme", "new", "h", [Interaction("acme", "alice", "i01", InteractionType.VIEW, 1.0)]
            )
        result = subprocess.run(
            [sys.executable, "-m", "kosmos.training"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "acme" in result.stdout and "popularity" in result.stdout
        assert ("fit skipped" in result.stdout) == (run == 2)
    versions = Artifacts(tmp_path / "models").versions("acme", "popularity")
    assert len(versions) == 2

    assert kosmos_cli(["models", "--model-dir", str(tmp_path / "models"), "list"], env={}) == 0
    listed = capsys.readouterr().out
    assert versions[0].version in listed and versions[1].version in listed
    assert (
        kosmos_cli(
            ["models", "rollback", "acme", "popularity"],
            env={"KOSMOS_MODEL_DIR": str(tmp_path / "models")},
        )
        == 0
    )
    assert Artifacts(tmp_path / "models").current("acme", "popularity") == versions[0].version
    assert (
        kosmos_cli(
            ["models", "rollback", "acme", "popularity"],
            env={"KOSMOS_MODEL_DIR": str(tmp_path / "models")},
        )
        == 1
    )
    assert "no version before" in capsys.readouterr().err


def test_the_trainer_refuses_to_run_without_a_model_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KOSMOS_MODEL_DIR"}
    env["KOSMOS_DATABASE_URL"] = f"sqlite:///{tmp_path}/k.db"
    result = subprocess.run(
        [sys.executable, "-m", "kosmos.training"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "KOSMOS_MODEL_DIR" in result.stderr


def test_routing_names_the_recommenders_the_trainer_fits():
    assert Routing.parse("warm=als,popularity;cold=lightfm,popularity").names == (
        "als",
        "popularity",
        "lightfm",
    )


def test_a_pinned_version_serves_instead_of_current(store, tmp_path):
    # Issue 10: kosmosctl pins versions through KOSMOS_MODEL_PINS.
    artifacts = Artifacts(tmp_path / "models")
    c = start_cluster(store, RecommendationSettings(refresh_seconds=0), PLUGINS)
    try:
        small_shop(c.client)
        (first,) = train(store, artifacts, PLUGINS, ["popularity"], {})
        (second,) = train(store, artifacts, PLUGINS, ["popularity"], {})
    finally:
        c.client.close()
        c.server.stop(None).wait()
    assert artifacts.current("acme", "popularity") == second.version
    settings = RecommendationSettings.from_env(
        {"KOSMOS_MODEL_PINS": f"acme/popularity={first.version}"}
    )
    hub = ModelHub(
        store,
        PLUGINS,
        ("popularity",),
        {},
        0,
        artifacts=artifacts,
        fit_in_process=(),
        pins=settings.model_pins,
    )
    assert hub.get("acme", "popularity") is not None
    assert hub.version("acme", "popularity") == first.version
    (state,) = hub.model_states()
    assert (state.shop, state.recommender, state.version) == ("acme", "popularity", first.version)
    created = {v.version: v.create_time for v in artifacts.versions("acme", "popularity")}
    assert state.built_time == created[first.version]


@pytest.mark.parametrize("raw", ["acme=v1", "acme/popularity", "/popularity=v1", "acme/als="])
def test_a_malformed_pin_stops_startup_naming_the_variable(raw):
    from kosmos.common.config import ConfigError

    with pytest.raises(ConfigError, match="KOSMOS_MODEL_PINS"):
        RecommendationSettings.from_env({"KOSMOS_MODEL_PINS": raw})


def test_a_version_carries_holdout_figures_of_its_recipe(tmp_path):
    # Issue 8: operators see each version's evaluation figures. A shop whose customers keep
    # buying their favourite item: the recipe fitted before the last 10% of events finds it.
    from kosmos.plugin import Interaction, InteractionType, LoadedPlugin, TrainingData
    from kosmos.recommenders.popularity import create as popularity
    from kosmos.training.holdout import holdout_metrics

    rows = [
        Interaction(
            f"c{c}", "hit" if n % 2 else f"i{n % 7}", InteractionType.PURCHASE, 1.0, float(t)
        )
        for t, (c, n) in enumerate((c, n) for n in range(20) for c in range(15))
    ]
    data = TrainingData(rows, item_ids=["hit", *(f"i{n}" for n in range(7))], now=1e3)
    plugin = LoadedPlugin("popularity", popularity, "kosmos")
    figures = holdout_metrics(plugin, {}, data)
    assert figures["holdout_customers"] == 15
    assert 0.0 < figures["ndcg@10"] <= 1.0 and figures["recall@10"] > 0.5
    assert holdout_metrics(plugin, {}, TrainingData(rows[:5])) == {}  # too short to cut
