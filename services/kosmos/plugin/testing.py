"""The conformance suite every recommender plugin runs, ours or a partner's.

Subclass `RecommenderContract` in the plugin's tests and implement `make_recommender`::

    from kosmos.plugin.testing import RecommenderContract

    class TestMyRecs(RecommenderContract):
        def make_recommender(self):
            return my_package.create({"factors": "8"})

The data is a small checkerboard: customers of group A interact with A-items, customers of
group B with B-items, each with one item of their group withheld. A personalized model must
rank the withheld item of the customer's own group first; set ``personalized = False`` for a
model that cannot (popularity). Every test of a fitted model runs twice: on the model as
fitted, and on one saved and loaded again (``save`` then ``load`` into a fresh instance), since
that is how replicas serve. A loaded model may hold its arrays as read-only memory maps
(`kosmos.plugin.arrays`), so serving, ``partial_fit`` and ``explain`` must not write into
them. Needs pytest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kosmos.plugin.protocol import (
    ExplainQuery,
    Interaction,
    InteractionType,
    NotFitted,
    Recommender,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
    Unsupported,
)

GROUP_SIZE = 12
ITEMS_PER_GROUP = 8
T0 = 1_700_000_000.0


def customer(group: str, n: int) -> str:
    return f"{group}-c{n}"


def item(group: str, n: int) -> str:
    return f"{group}-i{n}"


def withheld(n: int) -> int:
    """The item index customer ``n`` of a group has not touched."""
    return n % ITEMS_PER_GROUP


def checkerboard() -> TrainingData:
    """Two taste groups with one item per customer withheld; features name the group."""
    interactions = []
    t = T0
    for group in ("a", "b"):
        for c in range(GROUP_SIZE):
            for i in range(ITEMS_PER_GROUP):
                if i == withheld(c):
                    continue
                t += 60
                interactions.append(
                    Interaction(
                        customer(group, c), item(group, i), InteractionType.PURCHASE, 1.0, t
                    )
                )
    items = [item(g, i) for g in ("a", "b") for i in range(ITEMS_PER_GROUP)] + ["unsold"]
    return TrainingData(
        interactions=interactions,
        item_ids=items,
        customer_features={
            customer(g, c): {"group": g} for g in ("a", "b") for c in range(GROUP_SIZE)
        },
        item_features={
            **{
                item(g, i): {"category": f"cat-{g}", "group": g}
                for g in ("a", "b")
                for i in range(ITEMS_PER_GROUP)
            },
            "unsold": {"category": "other"},
        },
        now=t,
    )


def history(data: TrainingData, customer_id: str) -> list[Interaction]:
    """A customer's interactions in ``data``, newest first, as the service passes them."""
    return sorted(
        (i for i in data.interactions if i.customer_id == customer_id), key=lambda i: -i.time
    )


class RecommenderContract:
    """Behaviour every `Recommender` must show. Subclass it and implement `make_recommender`."""

    personalized = True
    """Whether the model must rank each customer's withheld item of their own group first."""

    def make_recommender(self) -> Recommender:
        raise NotImplementedError("return a fresh, unfitted recommender")

    # -- helpers -----------------------------------------------------------------------------

    @pytest.fixture
    def data(self) -> TrainingData:
        return checkerboard()

    @pytest.fixture(params=["fitted", "saved and loaded"])
    def fitted(
        self, request: pytest.FixtureRequest, data: TrainingData, tmp_path: Path
    ) -> Recommender:
        """The model fitted on ``data``; in the second run, saved and loaded into a fresh one."""
        model = self.make_recommender()
        model.fit(data)
        if request.param == "fitted":
            return model
        folder = tmp_path / "saved"
        folder.mkdir()
        model.save(folder)
        loaded = self.make_recommender()
        loaded.load(folder)
        return loaded

    def query(
        self, data: TrainingData, customer_id: str, k: int = 5, **kw: object
    ) -> RecommendQuery:
        return RecommendQuery(
            customer_id=customer_id,
            k=k,
            recent_interactions=history(data, customer_id),
            customer_features=dict(data.customer_features.get(customer_id, {})),
            **kw,  # type: ignore[arg-type]
        )

    @staticmethod
    def ids(scored: list[Scored]) -> list[str]:
        return [s.item_id for s in scored]

    # -- the contract ------------------------------------------------------------------------

    def test_satisfies_protocol(self) -> None:
        assert isinstance(self.make_recommender(), Recommender)

    def test_recommend_before_fit_raises_not_fitted(self) -> None:
        with pytest.raises(NotFitted):
            self.make_recommender().recommend(RecommendQuery(customer_id="a-c0", k=3))

    def test_k_is_respected_and_scores_descend(
        self, fitted: Recommender, data: TrainingData
    ) -> None:
        for k in (1, 3, 7):
            result = fitted.recommend(self.query(data, customer("a", 1), k=k))
            assert 0 < len(result) <= k
            scores = [s.score for s in result]
            assert scores == sorted(scores, reverse=True)
            assert len(set(self.ids(result))) == len(result)

    def test_top_k_is_prefix_stable_and_never_repeats(
        self, fitted: Recommender, data: TrainingData
    ) -> None:
        # Stable pages (issue 13): the service ranks one list and pages slice it, so a
        # plugin's top k must be the first k of its top 2k, with no item twice.
        for c in (customer("a", 1), customer("b", 3)):
            full = self.ids(fitted.recommend(self.query(data, c, k=12)))
            assert len(full) == len(set(full)), full
            for n in (1, 3, 5, 8):
                assert self.ids(fitted.recommend(self.query(data, c, k=n))) == full[:n], (c, n)

    def test_exclusions_are_honoured(self, fitted: Recommender, data: TrainingData) -> None:
        first = fitted.recommend(self.query(data, customer("a", 2), k=4))
        banned = frozenset(self.ids(first)[:2])
        again = fitted.recommend(self.query(data, customer("a", 2), k=4, exclude_item_ids=banned))
        assert not banned & set(self.ids(again))

    def test_already_seen_filtering(self, fitted: Recommender, data: TrainingData) -> None:
        c = customer("b", 3)
        seen = {i.item_id for i in history(data, c)}
        result = fitted.recommend(self.query(data, c, k=5, filter_already_seen=True))
        assert result and not seen & set(self.ids(result))

    def test_already_seen_at_fit_time_is_filtered_without_recent_interactions(
        self, fitted: Recommender, data: TrainingData
    ) -> None:
        # The service may pass few or no recent interactions: the model must remember.
        c = customer("a", 5)
        seen = {i.item_id for i in history(data, c)}
        result = fitted.recommend(RecommendQuery(customer_id=c, k=5, filter_already_seen=True))
        assert result and not seen & set(self.ids(result))

    def test_withheld_item_ranks_first(self, fitted: Recommender, data: TrainingData) -> None:
        for group in ("a", "b"):
            for c in range(GROUP_SIZE):
                result = fitted.recommend(
                    self.query(data, customer(group, c), k=1, filter_already_seen=True)
                )
                if self.personalized:
                    assert self.ids(result) == [item(group, withheld(c))], customer(group, c)
                else:
                    # No taste to learn, but still one unseen catalog item, never a seen one.
                    seen = {i.item_id for i in history(data, customer(group, c))}
                    assert len(result) == 1 and result[0].item_id not in seen
                    assert result[0].item_id in set(data.item_ids)

    def test_fit_twice_equals_fit_once(self, data: TrainingData) -> None:
        once = self.make_recommender()
        once.fit(data)
        twice = self.make_recommender()
        twice.fit(data)
        twice.fit(data)
        q = self.query(data, customer("a", 4), k=5)
        assert self.ids(once.recommend(q)) == self.ids(twice.recommend(q))

    def test_save_load_gives_the_same_ranking(
        self, fitted: Recommender, data: TrainingData, tmp_path: Path
    ) -> None:
        fitted.save(tmp_path)
        loaded = self.make_recommender()
        loaded.load(tmp_path)
        for c in (customer("a", 0), customer("b", 5)):
            q = self.query(data, c, k=6)
            assert self.ids(loaded.recommend(q)) == self.ids(fitted.recommend(q))
        sq = SimilarItemsQuery(item_id=item("a", 0), k=4)
        assert self.ids(loaded.similar_items(sq)) == self.ids(fitted.similar_items(sq))

    def test_similar_items(self, fitted: Recommender) -> None:
        result = fitted.similar_items(SimilarItemsQuery(item_id=item("b", 1), k=4))
        assert result and len(result) <= 4
        assert item("b", 1) not in self.ids(result)
        # On a checkerboard, an item's neighbours are items of its own group.
        assert all(i.startswith("b-") for i in self.ids(result))
        excluded = frozenset(self.ids(result)[:1])
        again = fitted.similar_items(
            SimilarItemsQuery(item_id=item("b", 1), k=4, exclude_item_ids=excluded)
        )
        assert not excluded & set(self.ids(again))

    def test_unknown_item_has_no_similar_items(self, fitted: Recommender) -> None:
        assert fitted.similar_items(SimilarItemsQuery(item_id="no-such-item", k=3)) == []

    def test_unknown_customer_never_crashes(self, fitted: Recommender) -> None:
        result = fitted.recommend(
            RecommendQuery(customer_id="stranger", k=3, customer_features={"group": "a"})
        )
        assert len(result) <= 3
        if fitted.capabilities.cold_start:
            assert result, "a cold-start recommender must answer an unseen customer"

    def test_partial_fit_shows_up_in_the_next_recommend(
        self, fitted: Recommender, data: TrainingData
    ) -> None:
        # The customer suddenly buys, repeatedly, items that were not in their top list:
        # those items must now rank higher for them.
        c = customer("a", 6)
        before = fitted.recommend(RecommendQuery(customer_id=c, k=ITEMS_PER_GROUP))
        catalog = [item(g, i) for g in ("b", "a") for i in range(ITEMS_PER_GROUP)]
        fresh = [x for x in catalog if x not in self.ids(before)][:ITEMS_PER_GROUP]
        burst = [
            Interaction(c, x, InteractionType.PURCHASE, 1.0, data.now + 60 * (n + 1))
            for n, x in enumerate(fresh * 3)
        ]
        if not fitted.capabilities.partial_fit:
            with pytest.raises(Unsupported):
                fitted.partial_fit(burst)
            return
        fitted.partial_fit(burst)
        after = fitted.recommend(RecommendQuery(customer_id=c, k=ITEMS_PER_GROUP))
        assert len(set(fresh) & set(self.ids(after))) > len(set(fresh) & set(self.ids(before)))

    def test_explain(self, fitted: Recommender, data: TrainingData) -> None:
        c = customer("a", 1)
        q = ExplainQuery(
            customer_id=c, item_id=item("a", withheld(1)), recent_interactions=history(data, c)
        )
        if not fitted.capabilities.explain:
            with pytest.raises(Unsupported):
                fitted.explain(q)
            return
        contributions = fitted.explain(q)
        assert contributions
        weights = [x.weight for x in contributions]
        assert weights == sorted(weights, reverse=True)
        assert all(x.item_id.startswith("a-") for x in contributions[:3])
