"""`RecommendationService.Explain`: one offer's reason in full (issue 11). Plain Python."""

from __future__ import annotations

from dataclasses import dataclass

from kosmos.common.errors import FailedPrecondition, NotFound
from kosmos.common.names import item_name
from kosmos.experiments.domain import variant_model
from kosmos.plugin import Contribution, ExplainQuery
from kosmos.plugin.signals import to_plugin
from kosmos.recommendation.choices import Choices
from kosmos.recommendation.domain import Context, Offer, Recommendations

EXPLAIN_DEPTH = 100
"""How deep among the customer's recommendations `explain` looks for the item."""


@dataclass(frozen=True, slots=True)
class Explanation:
    offer: Offer
    offered: bool
    rank: int
    contributions: list[Contribution]
    applied_preferences: list[str]


def explain(
    recommendations: Recommendations,
    shop_id: str,
    customer_id: str,
    item_id: str,
    context: Context,
) -> Explanation:
    """The offer ``Recommend`` makes of ``item_id`` now, where it ranks, and, from a model
    with ``explain`` (ALS), the customer's past items behind its score.

    Raises:
        NotFound: The shop, the customer or the item is unknown.
        FailedPrecondition: The item cannot be offered to the customer now: ``EXCLUDED`` (the
            customer's exclusions), ``UNAVAILABLE`` (out of stock) or ``IN_CONTEXT`` (on the
            page or in the cart).
    """
    catalog = recommendations.catalog.items(shop_id)
    page = recommendations.recommend(shop_id, customer_id, context, EXPLAIN_DEPTH, 0)
    item = catalog.get(item_id)
    if item is None:
        raise NotFound("item", item_name(shop_id, item_id))
    inputs = recommendations.store.recommend_inputs(shop_id, customer_id, 50)
    customer = inputs.customer if inputs is not None else None
    choices = Choices.of(customer, recommendations.clock(), inputs.consents if inputs else None)
    if choices.excludes(item) or (inputs is not None and item_id in inputs.dismissed_item_ids):
        raise FailedPrecondition("EXCLUDED", "the customer asked never to be shown this item")
    if not item.available:
        raise FailedPrecondition("UNAVAILABLE", "the item is out of stock")
    if item_id in context.cart_item_ids or item_id in context.item_ids:
        raise FailedPrecondition("IN_CONTEXT", "the item is on the page or in the cart")
    rank = next((n for n, o in enumerate(page.offers, 1) if o.item.item_id == item_id), 0)
    offer = (
        page.offers[rank - 1]
        if rank
        else Offer(item, 0.0, "Not among your recommendations now", "", "picked_for_you")
    )
    contributions: list[Contribution] = []
    name = offer.recommender
    if name and page.variant_id:
        # A variant with plugin settings of its own ranked it with its own model.
        own = variant_model(name, page.experiment_id, page.variant_id)
        if recommendations.models.version(shop_id, own) is not None:
            name = own
    model = recommendations.models.get(shop_id, name) if name else None
    if model is not None and model.capabilities.explain and inputs is not None and choices.personal:
        recent = [to_plugin(i) for i in inputs.recent]
        contributions = model.explain(ExplainQuery(customer_id, item_id, recent))
    return Explanation(offer, bool(rank), rank, contributions, choices.describe(item))
