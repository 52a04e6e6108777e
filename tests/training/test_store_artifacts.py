"""Model versions through the database (KOSMOS_MODEL_STORE=database): no shared volume, the
trainer the only producer, each replica unpacking into its own cache (issue 8)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kosmos.plugin import LoadedPlugin, RecommendQuery
from kosmos.recommendation.models import ModelHub
from kosmos.recommenders.popularity import create as popularity
from kosmos.store import SQLiteStore, Store
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop
from kosmos.training import ArtifactError, train
from kosmos.training.artifacts import StoreArtifacts

PLUGINS = {"popularity": LoadedPlugin("popularity", popularity, "kosmos")}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "k.db")
    else:
        from kosmos.store.postgres import PostgresStore

        store = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=2)
    yield store
    store.close()


def bought(store: Store, item_id: str, times: int, request_id: str) -> None:
    store.record_interactions(
        "acme",
        request_id,
        "h",
        [
            Interaction("acme", "bob", item_id, InteractionType.PURCHASE, time.time())
            for n in range(times)
        ],
    )


def shop(store: Store) -> None:
    store.create_shop(Shop("acme"))
    store.create_customer(Customer("acme", "alice"))
    store.create_customer(Customer("acme", "bob"))
    store.upsert_items([Item("acme", f"i{n}") for n in range(5)])


def test_versions_publish_roll_back_and_prune_in_the_database(any_store, tmp_path):
    any_store.create_shop(Shop("acme"))
    trainer = StoreArtifacts(any_store, tmp_path / "trainer-cache")
    replica = StoreArtifacts(any_store, tmp_path / "replica-cache")  # another machine's disk
    published = []
    for n in range(3):
        v = trainer.publish(
            "acme",
            "pop",
            lambda d, n=n: (d / "m.txt").write_text(str(n)),
            interactions=n,
            fit_seconds=0.1,
            distribution="t",
            settings={"k": "v"},
            data_version=f"d{n}",
        )
        published.append(v.version)
    assert [v.version for v in replica.versions("acme", "pop")] == published
    assert replica.versions("acme", "pop")[1].data_version == "d1"
    assert replica.current("acme", "pop") == published[-1]
    assert (replica.folder("acme", "pop", published[-1]) / "m.txt").read_text() == "2"
    assert trainer.rollback("acme", "pop") == published[-2]
    assert replica.current("acme", "pop") == published[-2]
    with pytest.raises(ArtifactError):
        trainer.set_current("acme", "pop", "no-such-version")
    assert trainer.prune("acme", "pop", keep=1) == [published[0]]  # never the current one
    assert [v.version for v in replica.versions("acme", "pop")] == published[1:]
    assert replica.shops() == ["acme"] and replica.recommenders("acme") == ["pop"]


def test_the_trainer_produces_and_a_replica_swaps_it_in(any_store, tmp_path):
    shop(any_store)
    bought(any_store, "i3", 3, "r1")
    trainer = StoreArtifacts(any_store, tmp_path / "trainer-cache")
    (first,) = train(any_store, trainer, PLUGINS, ["popularity"], {})
    assert first.version and not first.skipped
    (again,) = train(any_store, trainer, PLUGINS, ["popularity"], {})
    assert again.skipped and again.version == first.version  # same data: no second fit

    hub = ModelHub(
        any_store,
        PLUGINS,
        ("popularity",),
        {},
        0,
        artifacts=StoreArtifacts(any_store, tmp_path / "replica-cache"),
        fit_in_process=(),
    )
    hub.load_artifacts("acme")
    assert hub.version("acme", "popularity") == first.version
    model = hub.get("acme", "popularity")
    assert model.recommend(RecommendQuery("alice", k=1))[0].item_id == "i3"

    bought(any_store, "i1", 5, "r2")
    (second,) = train(any_store, trainer, PLUGINS, ["popularity"], {})
    assert second.version != first.version and not second.skipped
    hub.poll()
    assert hub.version("acme", "popularity") == second.version
    assert hub.get("acme", "popularity").recommend(RecommendQuery("alice", k=1))[0].item_id == "i1"


def test_a_cache_of_its_own_making_goes_when_the_process_ends(tmp_path):
    """No KOSMOS_MODEL_DIR: each process unpacks into a temporary folder, removed at its exit
    (a restarted replica used to leave one behind each time); a folder that was given stays."""
    import subprocess
    import sys

    script = (
        "from kosmos.store import SQLiteStore\n"
        "from kosmos.training.artifacts import StoreArtifacts\n"
        f"store = SQLiteStore({str(tmp_path / 'k.db')!r})\n"
        "own = StoreArtifacts(store)\n"
        "(own.root / 'unpacked').mkdir(parents=True)\n"
        f"given = StoreArtifacts(store, {str(tmp_path / 'given')!r})\n"
        "(given.root / 'unpacked').mkdir(parents=True)\n"
        "print(own.root)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    made = Path(done.stdout.strip())
    assert made.name.startswith("kosmos-models-") and not made.exists()
    assert (tmp_path / "given" / "unpacked").is_dir()
    # In process, closing it removes it at once.
    store = SQLiteStore(tmp_path / "k.db")
    own = StoreArtifacts(store)
    assert own.root.is_dir()
    own.close()
    assert not own.root.exists()
    store.close()
