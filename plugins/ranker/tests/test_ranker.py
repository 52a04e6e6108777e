"""What the ranker promises beyond the contract: it learns the shop's own behaviour."""

from pathlib import Path

import kosmos_ranker
import numpy as np
import pytest

from kosmos.plugin import Interaction, InteractionType, RecommendQuery, TrainingData, discover

DAY = 86400.0
T0 = 1_700_000_000.0
SOURCES = "popularity,bought_together,buy_again"


def staples_shop() -> TrainingData:
    """Each customer buys their own staple every week, plus two of ten popular items at random.

    Popularity ranks the ten popular items above every staple; what the customer buys next is
    their staple. A ranker trained on the shop's own later weeks must learn to put it first.
    """
    rng = np.random.default_rng(3)
    rows = []
    for c in range(150):
        for week in range(10):
            t = T0 + (week * 7 + c % 7) * DAY + c
            rows.append(Interaction(f"c{c}", f"staple-{c % 40}", InteractionType.PURCHASE, 8.0, t))
            for p in rng.choice(10, size=2, replace=False):
                rows.append(Interaction(f"c{c}", f"pop-{p}", InteractionType.PURCHASE, 8.0, t + 1))
    rows.sort(key=lambda i: i.time)
    return TrainingData(interactions=rows, now=rows[-1].time)


def first_is_staple(model, data: TrainingData) -> float:
    hits = 0
    customers = range(0, 150, 5)
    for c in customers:
        top = model.recommend(RecommendQuery(f"c{c}", k=1, now=data.now + 3 * DAY))
        hits += top[0].item_id == f"staple-{c % 40}"
    return hits / len(customers)


@pytest.fixture(scope="module")
def shop() -> TrainingData:
    return staples_shop()


@pytest.fixture(scope="module")
def trained(shop: TrainingData):
    model = kosmos_ranker.create({"sources": SOURCES, "trees": "40"})
    model.fit(shop)
    return model


def test_the_ranker_learns_what_the_shop_buys_next(trained, shop: TrainingData) -> None:
    fused = kosmos_ranker.create({"sources": SOURCES, "min_customers": "100000"})
    fused.fit(shop)  # too few customers for that bar: reciprocal-rank fusion
    popularity = discover(required=["popularity"])["popularity"].factory({})
    popularity.fit(shop)
    learned = first_is_staple(trained, shop)
    assert learned >= 0.9
    assert learned > first_is_staple(fused, shop)
    assert first_is_staple(popularity, shop) == 0.0


def test_a_random_holdout_trains_and_is_seeded(shop: TrainingData, tmp_path: Path) -> None:
    # For data with no "next" (ratings tested on a random split), labels are a random share.
    one = kosmos_ranker.create({"sources": SOURCES, "trees": "20", "split": "random"})
    two = kosmos_ranker.create({"sources": SOURCES, "trees": "20", "split": "random"})
    one.fit(shop)
    two.fit(shop)
    one.save(tmp_path)
    assert (tmp_path / "model.txt").is_file()
    q = RecommendQuery("c9", k=10, now=shop.now)
    assert [s.score for s in one.recommend(q)] == [s.score for s in two.recommend(q)]


def test_a_customer_without_history_is_ranked_by_fusion(trained) -> None:
    # The model never saw a customer without history; fusion of the sources answers them.
    answer = trained.recommend(RecommendQuery("stranger", k=3))
    assert len(answer) == 3
    assert answer[0].item_id.startswith("pop-")


def test_a_trained_ranker_saves_its_model_and_sources(
    trained, shop: TrainingData, tmp_path: Path
) -> None:
    trained.save(tmp_path)
    assert (tmp_path / "model.txt").is_file()
    assert {p.name for p in (tmp_path / "sources").iterdir()} == set(SOURCES.split(","))
    loaded = kosmos_ranker.create({})
    loaded.load(tmp_path)
    for c in ("c1", "c77"):
        q = RecommendQuery(c, k=8, now=shop.now)
        assert [(s.item_id, s.score) for s in loaded.recommend(q)] == [
            (s.item_id, s.score) for s in trained.recommend(q)
        ]


def test_training_is_deterministic(trained, shop: TrainingData) -> None:
    again = kosmos_ranker.create({"sources": SOURCES, "trees": "40"})
    again.fit(shop)
    q = RecommendQuery("c3", k=10, now=shop.now)
    assert [s.score for s in again.recommend(q)] == [s.score for s in trained.recommend(q)]


def test_answers_carry_the_best_sources_reason_kind(trained, shop: TrainingData) -> None:
    top = trained.recommend(RecommendQuery("c2", k=1, now=shop.now + 3 * DAY))
    assert top[0].kind == "buy_again"


def test_sources_get_their_own_settings() -> None:
    model = kosmos_ranker.create(
        {
            "sources": "popularity,buy_again",
            "popularity.half_life_days": "3",
            "buy_again__smoothing": "1",
        }
    )
    assert model.source_settings == {
        "popularity": {"half_life_days": "3"},
        "buy_again": {"smoothing": "1"},
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sources": "popularity,ranker"}, "must not include ranker"),
        ({"sources": ""}, "at least one"),
        ({"sources": "no-such-plugin"}, "no-such-plugin"),
        ({"sources": "popularity", "als.factors": "8"}, "not sources"),
        ({"sources": "popularity", "popularity.bogus": "1"}, "bogus"),
        ({"trees": "many"}, "trees"),
        ({"holdout_share": "1.5"}, "holdout_share"),
        ({"colour": "red"}, "unknown settings"),
        ({"split": "sideways"}, "split"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(Exception, match=message):
        kosmos_ranker.create(settings)
