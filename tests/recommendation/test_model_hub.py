"""Where and when models are fitted (issue 8): never on a request thread, never under a lock
another shop waits on, not again while the shop's data is unchanged, and new interactions
folded in between fits."""

from __future__ import annotations

import threading
import time

from kosmos.common.deadline import deadline_scope
from kosmos.plugin import LoadedPlugin, RecommendQuery, TrainingData
from kosmos.recommendation.models import IMPORT_QUIET_SECONDS, ModelHub
from kosmos.recommenders.popularity import PopularityRecommender
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop


class Recorded(PopularityRecommender):
    """Popularity that notes which thread fitted it, and can be held inside ``fit``."""

    fits: list[tuple[str, str]] = []
    hold: dict[str, threading.Event] = {}

    def fit(self, data: TrainingData) -> None:
        Recorded.fits.append((data.shop_id, threading.current_thread().name))
        gate = Recorded.hold.get(data.shop_id)
        if gate is not None:
            assert gate.wait(timeout=30)
        super().fit(data)


PLUGINS = {"popularity": LoadedPlugin("popularity", lambda _s: Recorded(), "test")}


def shop(store, shop_id: str) -> None:
    store.create_shop(Shop(shop_id))
    store.create_customer(Customer(shop_id, "alice"))
    store.upsert_items([Item(shop_id, f"i{n}") for n in range(4)])


def bought(store, shop_id: str, item_id: str, times: int, request_id: str) -> None:
    now = time.time()
    store.record_interactions(
        shop_id,
        request_id,
        "h",
        [
            Interaction(shop_id, "alice", item_id, InteractionType.PURCHASE, now)
            for _ in range(times)
        ],
    )


def hub(store) -> ModelHub:
    Recorded.fits = []
    Recorded.hold = {}
    return ModelHub(store, PLUGINS, ("popularity",), {}, 0)


def top(model) -> str:
    return model.recommend(RecommendQuery("bob", k=1))[0].item_id


def test_a_first_request_waits_for_a_loader_thread_and_no_longer_than_its_deadline(store):
    shop(store, "slow")
    shop(store, "fast")
    bought(store, "fast", "i2", 3, "r")
    models = hub(store)
    Recorded.hold["slow"] = threading.Event()
    started = time.monotonic()
    with deadline_scope(0.3):
        assert models.get("slow", "popularity") is None  # still fitting: skipped, not waited on
    assert time.monotonic() - started < 3
    fast = models.get("fast", "popularity")  # another shop is not held up by "slow"'s fit
    assert fast is not None and top(fast) == "i2"
    Recorded.hold["slow"].set()
    assert models.get("slow", "popularity") is not None
    assert {name for _, name in Recorded.fits} == {"kosmos-models-slow", "kosmos-models-fast"}
    assert threading.current_thread().name not in {name for _, name in Recorded.fits}


def test_a_refit_is_skipped_until_the_data_changes(store):
    shop(store, "acme")
    models = hub(store)
    models.get("acme", "popularity")
    models.refresh_shop("acme")
    assert len(Recorded.fits) == 1
    bought(store, "acme", "i1", 2, "r")
    models.refresh_shop("acme")
    assert len(Recorded.fits) == 2


def test_new_interactions_are_folded_in_between_fits(store):
    shop(store, "acme")
    bought(store, "acme", "i0", 2, "r0")
    models = hub(store)
    model = models.get("acme", "popularity")
    assert top(model) == "i0"
    bought(store, "acme", "i3", 5, "r1")
    assert models.fold_in("acme") == 5
    assert top(models.get("acme", "popularity")) == "i3" and len(Recorded.fits) == 1
    assert models.fold_in("acme") == 0  # nothing new


def test_ready_only_after_the_first_background_pass(store):
    shop(store, "acme")
    Recorded.fits = []
    Recorded.hold = {"acme": threading.Event()}
    models = ModelHub(store, PLUGINS, ("popularity",), {}, 3600)
    assert models.ready  # no background thread yet: models load on demand
    models.start()
    try:
        assert not models.ready  # the first pass is held inside fit
        Recorded.hold["acme"].set()
        deadline = time.monotonic() + 30
        while not models.ready and time.monotonic() < deadline:
            threading.Event().wait(0.05)  # polling, as a health probe would
        assert models.ready
    finally:
        models.stop()


def test_a_shop_whose_refit_was_long_is_refitted_less_often_and_folded_in_meanwhile(store):
    # A refit that took 10 s (read + fit) defers the shop's next periodic refit by 90 s, so
    # refitting one shop takes at most a tenth of the process (a 14M-event shop was refitted
    # back to back while it was imported); new interactions are folded in meanwhile.
    now = [1000.0]

    def timer() -> float:
        now[0] += 5.0  # every look at the clock: 5 s later (a refit spans two looks: 10 s)
        return now[0]

    shop(store, "acme")
    bought(store, "acme", "i0", 2, "r0")
    Recorded.fits = []
    models = ModelHub(store, PLUGINS, ("popularity",), {}, 60, timer=timer)
    models.refresh_all()  # the first fit: 1005 to 1010, so no refit before 1100
    assert len(Recorded.fits) == 1
    bought(store, "acme", "i3", 5, "r1")
    models.refresh_all()  # at 1015: deferred, but folded in
    assert len(Recorded.fits) == 1
    assert top(models.get("acme", "popularity")) == "i3"
    now[0] = 1100.0
    bought(store, "acme", "i2", 9, "r2")
    models.refresh_all()  # at 1105: due
    assert len(Recorded.fits) == 2 and top(models.get("acme", "popularity")) == "i2"


def test_a_shop_importing_its_history_is_refitted_only_once_the_import_is_quiet(store):
    # The 1M-customer shop's import cluster refitted and folded in a shop that kept growing,
    # holding the GIL the import needed (issue 12): a history import holds both until it has
    # been quiet for IMPORT_QUIET_SECONDS; a live event does not.
    now = [1000.0]
    shop(store, "acme")
    bought(store, "acme", "i0", 2, "r0")
    Recorded.fits = []
    models = ModelHub(store, PLUGINS, ("popularity",), {}, 60, timer=lambda: now[0])
    models.refresh_all()
    assert len(Recorded.fits) == 1
    history = [
        Interaction("acme", "alice", "i3", InteractionType.PURCHASE, time.time() - 86400)
    ] * 5
    assert store.import_interactions("acme", "batch-1", "h1", history) == (5, False)
    assert models.importing("acme")
    now[0] += IMPORT_QUIET_SECONDS - 1
    models.refresh_all()  # new data, but an import is under way: no refit, no fold-in
    assert len(Recorded.fits) == 1 and top(models.get("acme", "popularity")) == "i0"
    store.import_interactions("acme", "batch-1", "h1", history)  # a replay stores nothing
    now[0] += 2
    assert not models.importing("acme")  # quiet since the last batch that stored anything
    models.refresh_all()
    assert len(Recorded.fits) == 2 and top(models.get("acme", "popularity")) == "i3"
    bought(store, "acme", "i2", 9, "r1")  # live feedback never holds a refit
    assert not models.importing("acme")


def test_a_shop_served_from_the_trainers_versions_learns_repeat_purchases_from_purchases(
    store, tmp_path
):
    """With every model from the trainer, the hub fits nothing and reads no whole history: it
    learns the repeatable items from the purchases and the items' categories, and finds what
    learning from the whole training data finds."""
    from kosmos.recommendation.seen import SeenPolicy, learn_repeatable
    from kosmos.training import Artifacts
    from kosmos.training.data import training_data

    store.create_shop(Shop("acme"))
    store.upsert_items(
        [
            Item("acme", "tea", category="Tea"),
            Item("acme", "green-tea", category="Tea"),  # one buyer: judged by its category
            Item("acme", "kettle", category="Kitchen"),
            Item("acme", "mug", category="Kitchen", attributes={"category": "Tea"}),
        ]
    )
    now = time.time()
    events = []
    for n in range(6):
        store.create_customer(Customer("acme", f"c{n}"))
        for day in (3, 1):  # tea twice, days apart: a repeat purchase
            events.append(
                Interaction("acme", f"c{n}", "tea", InteractionType.PURCHASE, now - day * 86400)
            )
        events.append(Interaction("acme", f"c{n}", "kettle", InteractionType.PURCHASE, now - 86400))
        events += [Interaction("acme", f"c{n}", "kettle", InteractionType.VIEW, now - 60)] * 3
    events.append(Interaction("acme", "c0", "green-tea", InteractionType.PURCHASE, now - 3600))
    events.append(Interaction("acme", "c1", "mug", InteractionType.PURCHASE, now - 3600))
    store.record_interactions("acme", "r", "h", events)
    artifacts = Artifacts(tmp_path)
    model = Recorded()
    PopularityRecommender.fit(model, training_data(store, "acme", now))
    artifacts.publish(
        "acme",
        "popularity",
        model.save,
        interactions=1,
        fit_seconds=0.1,
        distribution="t",
        settings={},
    )
    Recorded.fits = []
    models = ModelHub(
        store, PLUGINS, ("popularity",), {}, 0, artifacts=artifacts, fit_in_process=()
    )

    learned = models.repeatable("acme")

    assert learned == {"tea", "green-tea", "mug"}
    data = training_data(store, "acme", now)
    categories = {i: f.get("category", "") for i, f in data.item_features.items()}
    assert learned == learn_repeatable(data.interactions, SeenPolicy(), categories)
    assert models.version("acme", "popularity") == artifacts.current("acme", "popularity")
    assert Recorded.fits == []
