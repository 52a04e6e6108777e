import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kosmos.plugin import Interaction, InteractionType, RecommendQuery
from kosmos.plugin.arrays import is_shared, save_arrays
from kosmos.plugin.testing import RecommenderContract, TrainingData, checkerboard
from kosmos.recommenders.popularity import PopularityRecommender, create


class TestPopularityContract(RecommenderContract):
    personalized = False

    def make_recommender(self):
        return create({})


def test_recent_interactions_tilt_toward_browsed_categories():
    data = checkerboard()
    model = create({})
    model.fit(data)
    plain = model.recommend(RecommendQuery(customer_id="x", k=8))
    browsing_a = [Interaction("x", "a-i0", InteractionType.VIEW, 1.0, data.now)]
    tilted = model.recommend(RecommendQuery(customer_id="x", k=8, recent_interactions=browsing_a))
    assert sum(s.item_id.startswith("a-") for s in tilted) > sum(
        s.item_id.startswith("a-") for s in plain
    )
    assert "browsing" in next(s.reason for s in tilted if s.item_id.startswith("a-"))


def test_recency_weighting_prefers_recent_purchases():
    day = 86400.0
    old = [Interaction(f"c{n}", "old", InteractionType.PURCHASE, 1.0, 0.0) for n in range(3)]
    new = [Interaction(f"d{n}", "new", InteractionType.PURCHASE, 1.0, 60 * day) for n in range(2)]
    model = PopularityRecommender(half_life_days=14)
    model.fit(TrainingData(interactions=old + new, now=60 * day))
    assert [s.item_id for s in model.recommend(RecommendQuery(customer_id="z", k=2))] == [
        "new",
        "old",
    ]


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="half_lif"):
        create({"half_lif": "3"})


def _full_sort(model, query, categories, weights, app_weights):
    """What scoring every item and sorting all of them gives (the old path), for comparison:
    with the "app" channel's popularity blended in half and half when the query comes from it."""
    boost = 2.0
    affinity = {}
    for i in query.recent_interactions:
        affinity[categories[i.item_id]] = affinity.get(categories[i.item_id], 0.0) + i.weight
    total = sum(affinity.values()) or 1.0
    item_ids = sorted(categories, key=lambda i: int(i[1:]))
    raw = np.array([weights.get(i, 0.0) for i in item_ids])
    scores = raw / raw.max()
    if query.context.get("channel") == "app":
        app = np.array([app_weights.get(i, 0.0) for i in item_ids])
        scores = 0.5 * scores + 0.5 * app / app.max()
    tilt = np.array([1 + boost * affinity.get(categories[i], 0.0) / total for i in item_ids])
    scores = scores * tilt if affinity else scores
    exclude = set(query.exclude_item_ids)
    order = np.lexsort((np.arange(len(item_ids)), -scores))
    return [item_ids[n] for n in order if item_ids[n] not in exclude][: query.k]


@pytest.mark.parametrize("seed", range(5))
def test_the_precomputed_ranking_answers_as_a_full_sort_would(seed):
    # Issue 12: a request reads the head of a ranking made at fit time instead of scoring every
    # item; the answer must be the full sort's, ties (many unsold items) by catalog order.
    rng = np.random.default_rng(seed)
    items = [f"i{n}" for n in range(3000)]
    categories = {i: f"c{rng.integers(20)}" for i in items}
    sold = rng.choice(3000, 400, replace=False)
    weights = {items[n]: float(rng.integers(1, 6)) for n in sold}  # integers: ties on purpose
    # Every third sale was made in the app: a request from the app blends the app's own.
    app_weights = {i: w for n, (i, w) in enumerate(weights.items()) if n % 3 == 0}
    interactions = [
        Interaction(
            "buyer", i, InteractionType.PURCHASE, w, 0.0, channel="app" if i in app_weights else ""
        )
        for i, w in weights.items()
    ]
    model = PopularityRecommender()
    model.fit(
        TrainingData(
            interactions=interactions,
            item_ids=items,
            item_features={i: {"category": c} for i, c in categories.items()},
        )
    )
    for k, channel in ((1, ""), (10, ""), (50, ""), (1, "app"), (10, "app"), (50, "app")):
        recent = [
            Interaction("x", items[n], InteractionType.VIEW, float(rng.integers(1, 4)), 0.0)
            for n in rng.choice(3000, int(rng.integers(0, 4)), replace=False)
        ]
        exclude = tuple(
            items[n] for n in rng.choice(3000, int(rng.integers(0, 200)), replace=False)
        )
        query = RecommendQuery(
            customer_id="x",
            k=k,
            exclude_item_ids=exclude,
            recent_interactions=recent,
            context={"channel": channel} if channel else {},
        )
        got = [s.item_id for s in model.recommend(query)]
        assert got == _full_sort(model, query, categories, weights, app_weights)


def _by_channel() -> TrainingData:
    # "a" sells on the web, "b" in the app; "a" sells more overall.
    events = [
        Interaction(f"w{n}", "a", InteractionType.PURCHASE, 1.0, 100.0, channel="web")
        for n in range(40)
    ] + [
        Interaction(f"p{n}", "b", InteractionType.PURCHASE, 1.0, 100.0, channel="app")
        for n in range(25)
    ]
    return TrainingData(interactions=events, item_ids=("a", "b", "c"), now=100.0)


def test_a_channel_with_enough_events_ranks_its_own_best_sellers_first(tmp_path):
    # Issue 13: channel and device reach plugins as context; popularity learns per channel.
    model = create({})
    model.fit(_by_channel())

    def first(context):
        return model.recommend(RecommendQuery(customer_id="x", k=3, context=context))[0].item_id

    assert first({}) == "a" and first({"channel": "web"}) == "a"
    assert first({"channel": "app"}) == "b"
    assert first({"channel": "email"}) == "a"  # no events of its own: the shop's
    model.save(tmp_path)
    loaded = create({})
    loaded.load(tmp_path)
    assert (
        loaded.recommend(RecommendQuery(customer_id="x", k=1, context={"channel": "app"}))[
            0
        ].item_id
        == "b"
    )
    off = create({"channel_weight": "0"})
    off.fit(_by_channel())
    assert (
        off.recommend(RecommendQuery(customer_id="x", k=1, context={"channel": "app"}))[0].item_id
        == "a"
    )
    with pytest.raises(ValueError):
        create({"channel_weight": "2"})


def test_partial_fit_counts_per_channel():
    model = create({})
    model.fit(_by_channel())
    model.partial_fit(
        [
            Interaction(f"e{n}", "c", InteractionType.PURCHASE, 9.0, 101.0, channel="email")
            for n in range(20)
        ]
    )
    top = model.recommend(RecommendQuery(customer_id="x", k=1, context={"channel": "email"}))
    assert top[0].item_id == "c"


def _seen_by(model, customer_id):
    """What a filter_already_seen query leaves out for the customer, beyond its exclusions."""
    everything = model.recommend(RecommendQuery(customer_id="nobody", k=1000))
    kept = model.recommend(
        RecommendQuery(customer_id=customer_id, k=1000, filter_already_seen=True)
    )
    return {s.item_id for s in everything} - {s.item_id for s in kept}


@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 9), st.floats(0.1, 5.0)),
        min_size=1,
        max_size=60,
    )
)
@settings(max_examples=60, deadline=None)
def test_who_saw_what_is_what_they_interacted_with(events):
    # Issue 12: the customers' items are arrays now, not a frozenset per customer; each
    # customer's seen items must be exactly the set of items in its events, after a fit, a
    # partial fit, and a save and load.
    data = TrainingData(
        interactions=[
            Interaction(f"c{c}", f"i{i}", InteractionType.VIEW, w, 10.0) for c, i, w in events
        ],
        item_ids=tuple(f"i{n}" for n in range(12)),
        now=10.0,
    )
    model = create({})
    model.fit(data)
    truth: dict[str, set[str]] = {}
    for e in data.interactions:
        truth.setdefault(e.customer_id, set()).add(e.item_id)
    for c in [*truth, "c-unseen"]:
        assert _seen_by(model, c) == truth.get(c, set())
    later = [Interaction("c0", "i11", InteractionType.VIEW, 1.0, 11.0)]
    later.append(Interaction("c-new", "i-new", InteractionType.VIEW, 1.0, 11.0))
    model.partial_fit(later)
    truth.setdefault("c0", set()).add("i11")
    truth["c-new"] = {"i-new"}
    for c in truth:
        assert _seen_by(model, c) == truth[c]
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder))
        loaded = create({})
        loaded.load(Path(folder))
        for c in truth:
            assert _seen_by(loaded, c) == truth[c]


def test_saved_seen_items_are_shared_maps_and_format_2_still_loads(tmp_path):
    data = checkerboard()
    model = create({})
    model.fit(data)
    model.save(tmp_path)
    loaded = create({})
    loaded.load(tmp_path)
    assert is_shared(loaded._model.seen.items) and is_shared(loaded._model.seen.offsets)
    customers = sorted({i.customer_id for i in data.interactions})
    expected = {c: _seen_by(model, c) for c in customers}
    assert all(expected.values())
    assert {c: _seen_by(loaded, c) for c in customers} == expected
    # A version saved before (format 2): who saw what was a JSON object of item lists.
    payload = json.loads((tmp_path / "popularity.json").read_text())
    payload["format"] = 2
    payload["seen"] = {c: sorted(expected[c]) for c in payload.pop("seen_customers")}
    old = tmp_path / "old"
    old.mkdir()
    (old / "popularity.json").write_text(json.dumps(payload))
    from_old = create({})
    from_old.load(old)
    assert {c: _seen_by(from_old, c) for c in customers} == expected


def test_seen_arrays_that_do_not_fit_the_saved_customers_are_refused_at_load(tmp_path):
    model = create({})
    model.fit(checkerboard())
    model.save(tmp_path)
    offsets = np.load(tmp_path / "popularity-seen-offsets.npy")
    save_arrays(tmp_path, {"popularity-seen-offsets": offsets[:-1]})  # one row short
    with pytest.raises(ValueError, match="do not fit"):
        create({}).load(tmp_path)
