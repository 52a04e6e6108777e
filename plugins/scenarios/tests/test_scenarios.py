"""What each scenario promises beyond the contract, on small data where the answer is exact."""

import shutil
from pathlib import Path

import kosmos_scenarios
import numpy as np
import pytest

from kosmos.plugin import (
    Interaction,
    InteractionType,
    RecommendQuery,
    SimilarItemsQuery,
    TrainingData,
    discover,
)
from kosmos.plugin.arrays import is_shared, load_arrays
from kosmos.plugin.testing import checkerboard

DAY = 86400.0
T0 = 1_700_000_000.0
BUY = InteractionType.PURCHASE


def buy(customer: str, item: str, day: float) -> Interaction:
    return Interaction(customer, item, BUY, 8.0, T0 + day * DAY, 1.0)


def data(rows: list[Interaction], **kw: object) -> TrainingData:
    rows = sorted(rows, key=lambda i: i.time)
    return TrainingData(interactions=rows, now=max(i.time for i in rows), **kw)  # type: ignore[arg-type]


def ids(result: list) -> list[str]:
    return [s.item_id for s in result]


def test_every_scenario_is_registered_by_entry_point() -> None:
    found = discover(required=["buy_again", "bought_together", "trending", "new_arrivals"])
    assert {found[n].distribution for n in ("buy_again", "trending")} == {"kosmos-scenarios"}


@pytest.mark.parametrize(
    "factory",
    [
        kosmos_scenarios.create_buy_again,
        kosmos_scenarios.create_bought_together,
        kosmos_scenarios.create_trending,
        kosmos_scenarios.create_new_arrivals,
    ],
)
def test_bad_settings_are_refused(factory) -> None:
    with pytest.raises(ValueError, match="unknown settings"):
        factory({"no_such_setting": "1"})


@pytest.mark.parametrize(
    ("factory", "setting"),
    [
        (kosmos_scenarios.create_buy_again, {"smoothing": "-1"}),
        (kosmos_scenarios.create_buy_again, {"types": "teleport"}),
        (kosmos_scenarios.create_bought_together, {"window_hours": "soon"}),
        (kosmos_scenarios.create_trending, {"recent_days": "0"}),
        (kosmos_scenarios.create_new_arrivals, {"half_life_days": "nan"}),
    ],
)
def test_bad_values_are_refused_naming_the_setting(factory, setting: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(setting))):
        factory(setting)


# -- buy again -------------------------------------------------------------------------------


def weekly_and_every_other_day() -> TrainingData:
    rows = [buy("c", "weekly", d) for d in (0, 7, 14)]
    rows += [buy("c", "often", d) for d in (10, 12, 14)]
    rows += [buy("c", "once", 1)]
    rows += [buy("other", "never-me", d) for d in (0, 5, 9)]
    return data(rows)


def test_buy_again_ranks_an_item_bought_every_seven_days_first_on_day_seven() -> None:
    model = kosmos_scenarios.create_buy_again({})
    model.fit(weekly_and_every_other_day())
    # Day 21: "weekly" is due (7 days since day 14); "often" (every 2 days) is long overdue.
    result = model.recommend(RecommendQuery("c", k=5, now=T0 + 21 * DAY))
    assert ids(result)[0] == "weekly"
    assert set(ids(result)) == {"weekly", "often", "once"}  # only items the customer has
    assert all(s.kind == "buy_again" for s in result)


def test_buy_again_follows_each_items_own_cycle_as_now_moves() -> None:
    model = kosmos_scenarios.create_buy_again({})
    model.fit(weekly_and_every_other_day())
    # Day 16: "often" is due (2 days after day 14), "weekly" only 2 of its 7 days in.
    assert ids(model.recommend(RecommendQuery("c", k=1, now=T0 + 16 * DAY))) == ["often"]
    assert ids(model.recommend(RecommendQuery("c", k=1, now=T0 + 21 * DAY))) == ["weekly"]


def test_buy_again_prefers_items_other_customers_repurchase() -> None:
    rows = [buy("c", "staple", 0), buy("c", "one-off", 0)]
    for n in range(4):
        rows += [buy(f"o{n}", "staple", d) for d in (0, 10, 20)]
        rows += [buy(f"o{n}", "one-off", 1)]
    model = kosmos_scenarios.create_buy_again({})
    model.fit(data(rows))
    assert ids(model.recommend(RecommendQuery("c", k=2, now=T0 + 10 * DAY))) == [
        "staple",
        "one-off",
    ]


def test_buy_again_counts_purchases_after_the_fit_from_recent_interactions() -> None:
    training = weekly_and_every_other_day()
    model = kosmos_scenarios.create_buy_again({})
    model.fit(training)
    later = buy("c", "never-me", 20)
    result = model.recommend(
        RecommendQuery("c", k=10, recent_interactions=(later,), now=T0 + 40 * DAY)
    )
    assert "never-me" in ids(result)


def test_buy_again_honours_exclusions_and_falls_back_to_staples_when_filtering_seen() -> None:
    model = kosmos_scenarios.create_buy_again({})
    model.fit(weekly_and_every_other_day())
    q = RecommendQuery("c", k=5, now=T0 + 21 * DAY, exclude_item_ids=frozenset({"weekly"}))
    assert "weekly" not in ids(model.recommend(q))
    unseen = model.recommend(RecommendQuery("c", k=5, filter_already_seen=True))
    assert ids(unseen) == ["never-me"]
    off = kosmos_scenarios.create_buy_again({"fallback": "false"})
    off.fit(weekly_and_every_other_day())
    assert off.recommend(RecommendQuery("c", k=5, filter_already_seen=True)) == []


# -- bought together -------------------------------------------------------------------------


def baskets() -> TrainingData:
    rows = []
    for n in range(5):  # x and partner share five baskets
        rows += [buy(f"p{n}", "x", n), buy(f"p{n}", "partner", n)]
    rows += [buy("q", "x", 0), buy("q", "rare", 0)]  # x and rare share one, with others
    rows += [buy("q", "filler", 0)]
    rows += [buy("r", "y", 0), buy("r", "z", 0)]
    rows += [buy("s", "x", 0), buy("s", "later", 3)]  # three days apart: not one basket
    return data(rows)


def test_bought_together_offers_the_basket_partner_of_the_seed_first() -> None:
    model = kosmos_scenarios.create_bought_together({})
    model.fit(baskets())
    result = model.recommend(RecommendQuery("anyone", k=5, seed_item_ids=("x",)))
    assert ids(result)[0] == "partner"
    assert set(ids(result)) == {"partner", "rare", "filler"}  # "later" was another basket
    assert "x" not in ids(result)  # the item in view is never offered back
    assert all(s.kind == "bought_together" and s.because_item_id == "x" for s in result)


def test_bought_together_falls_back_to_recent_interactions_then_history() -> None:
    model = kosmos_scenarios.create_bought_together({})
    model.fit(baskets())
    viewed = Interaction("new", "y", InteractionType.VIEW, 1.0, T0 + 9 * DAY)
    assert ids(model.recommend(RecommendQuery("new", k=3, recent_interactions=(viewed,)))) == ["z"]
    # No seeds and no recent interactions: the customer's fit-time history seeds it.
    assert ids(model.recommend(RecommendQuery("r", k=3))) == []  # y and z: both already theirs
    assert ids(model.recommend(RecommendQuery("p0", k=1))) == ["rare"]


def test_bought_together_serves_similar_items() -> None:
    model = kosmos_scenarios.create_bought_together({})
    model.fit(baskets())
    assert ids(model.similar_items(SimilarItemsQuery("x", k=1))) == ["partner"]
    assert ids(
        model.similar_items(SimilarItemsQuery("x", k=1, exclude_item_ids=frozenset({"partner"})))
    ) != ["partner"]


# -- trending and new arrivals ---------------------------------------------------------------


def trend_data() -> TrainingData:
    rows = []
    for day in range(35):
        rows += [buy(f"s{day}-{n}", "steady", day) for n in range(3)]
        per_day = 1 if day < 28 else 6  # rises in the last week
        rows += [buy(f"t{day}-{n}", "rising", day) for n in range(per_day)]
    return data(rows)


def test_trending_finds_the_item_rising_above_its_baseline() -> None:
    model = kosmos_scenarios.create_trending({})
    model.fit(trend_data())
    result = model.recommend(RecommendQuery("anyone", k=5))
    assert ids(result) == ["rising"]  # "steady" sells as it always did
    assert result[0].kind == "trending"
    # A week earlier (query.now), nothing was rising yet.
    assert model.recommend(RecommendQuery("anyone", k=5, now=T0 + 27.5 * DAY)) == []


def test_new_arrivals_reads_item_times_then_first_interactions_and_tilts_to_categories(
    tmp_path: Path,
) -> None:
    rows = [buy("c", "old-shoe", 0), buy("d", "sold-yesterday", 99)]
    training = TrainingData(
        interactions=rows,
        item_ids=["old-shoe", "sold-yesterday", "listed-hat", "listed-shoe", "no-time"],
        item_features={
            "old-shoe": {"category": "shoes"},
            "listed-hat": {"category": "hats", "first_seen": "2023-11-23T00:00:00Z"},
            "listed-shoe": {"category": "shoes", "create_time": str(T0 + 90 * DAY)},
        },
        now=T0 + 100 * DAY,
    )
    model = kosmos_scenarios.create_new_arrivals({})
    model.fit(training)
    # T0 is 2023-11-14 22:13 UTC, so the hat arrived 8 days later; the shoe on day 90.
    plain = model.recommend(RecommendQuery("stranger", k=5))
    assert ids(plain) == ["sold-yesterday", "listed-shoe"]  # the hat is past max_age_days
    assert plain[0].kind == "new_arrival"
    tilted = model.recommend(RecommendQuery("c", k=1))
    assert ids(tilted) == ["listed-shoe"] and tilted[0].kind == "new_for_you"
    model.save(tmp_path)
    loaded = kosmos_scenarios.create_new_arrivals({})
    loaded.load(tmp_path)
    assert ids(loaded.recommend(RecommendQuery("c", k=5))) == ids(
        model.recommend(RecommendQuery("c", k=5))
    )


SAVED = {
    "buy_again": ("purchases", "buy_again"),
    "bought_together": ("history", "association"),
    "trending": ("history", "trending"),
    "new_arrivals": ("history", "new_arrivals"),
}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_saved_arrays_load_as_shared_maps_and_old_npz_versions_still_load(
    name: str, tmp_path: Path
) -> None:
    factory = getattr(kosmos_scenarios, f"create_{name}")
    trained = checkerboard()
    model = factory({})
    model.fit(trained)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.arrays")) == sorted(
        f"{part}.arrays" for part in SAVED[name]
    )
    loaded = factory({})
    loaded.load(tmp_path)
    history = loaded._model.history
    assert is_shared(history.counts.indices) and is_shared(history.last.data)
    queries = [
        RecommendQuery("a-c1", k=5),
        RecommendQuery("b-c2", k=5, filter_already_seen=True),
        RecommendQuery("stranger", k=3),
    ]
    expected = [model.recommend(q) for q in queries]
    assert [loaded.recommend(q) for q in queries] == expected
    # A version saved before the move to .npy files: one .npz per part, read into memory.
    for part in SAVED[name]:
        arrays = load_arrays(tmp_path / f"{part}.arrays")
        np.savez(tmp_path / f"{part}.npz", **{k: np.array(v) for k, v in arrays.items()})
        shutil.rmtree(tmp_path / f"{part}.arrays")
    old = factory({})
    old.load(tmp_path)
    assert not is_shared(old._model.history.counts.indices)
    assert [old.recommend(q) for q in queries] == expected
