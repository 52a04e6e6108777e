"""How strongly each kind of interaction says "I like this", for every recommender.

A purchase says more than a view; a dismissal says nothing positive (it is filtered out of
recommendations instead). Ratings weigh their value (0-5). Plugins receive these weights in
`kosmos.plugin.Interaction.weight` and never need to know the interaction types.

The module-level `WEIGHTS` are the defaults. A cluster sets its own with
``KOSMOS_INTERACTION_WEIGHTS`` and ``KOSMOS_QUANTITY_EXPONENT`` and a shop its own through
`ShopSettingsService`; `kosmos.shopconfig.EffectiveSettings.weights` is the `Weights` that apply
to a shop, which `to_plugin` and `weight` take.
"""

from __future__ import annotations

from dataclasses import dataclass

from kosmos.plugin import Interaction as PluginInteraction
from kosmos.store.records import Interaction, InteractionType

WEIGHTS: dict[InteractionType, float] = {
    InteractionType.VIEW: 1.0,
    InteractionType.CLICK: 2.0,
    InteractionType.ADD_TO_CART: 4.0,
    InteractionType.PURCHASE: 8.0,
    InteractionType.RATING: 0.0,  # the rating's value is the weight
    InteractionType.DISMISS: 0.0,
}
QUANTITY_EXPONENT = 0.0
"""By default a purchase weighs the same whatever its quantity."""


@dataclass(frozen=True, slots=True)
class Weights:
    """Interaction weights: a base per kind, a rating's weight per star, and how much a
    purchase's quantity counts.

    A purchase weighs ``purchase × max(quantity, 1) ** quantity_exponent`` (0: quantity does not
    count; 1: ten pieces weigh ten times one; 0.5 in between). A rating weighs ``rating × stars``.
    A dismissal weighs 0: it is filtered out instead. With ``rating_per_star`` off, a rating
    weighs ``rating`` whatever its stars (having rated a film is the signal: MovieLens as
    implicit feedback).
    """

    view: float = WEIGHTS[InteractionType.VIEW]
    click: float = WEIGHTS[InteractionType.CLICK]
    add_to_cart: float = WEIGHTS[InteractionType.ADD_TO_CART]
    purchase: float = WEIGHTS[InteractionType.PURCHASE]
    rating: float = 1.0
    quantity_exponent: float = QUANTITY_EXPONENT
    rating_per_star: bool = True

    def of(self, kind: InteractionType, value: float) -> float:
        """The weight of one interaction of ``kind`` with ``value`` (rating or quantity)."""
        if kind is InteractionType.PURCHASE:
            if self.quantity_exponent and value > 1.0:
                return float(self.purchase * value**self.quantity_exponent)
            return self.purchase
        if kind is InteractionType.RATING:
            return self.rating * value if self.rating_per_star else self.rating
        if kind is InteractionType.VIEW:
            return self.view
        if kind is InteractionType.CLICK:
            return self.click
        if kind is InteractionType.ADD_TO_CART:
            return self.add_to_cart
        return 0.0


DEFAULT_WEIGHTS = Weights()


def weight(kind: InteractionType, value: float, weights: Weights = DEFAULT_WEIGHTS) -> float:
    if weights is DEFAULT_WEIGHTS:
        return value if kind is InteractionType.RATING else WEIGHTS[kind]
    return weights.of(kind, value)


def to_plugin(i: Interaction, weights: Weights = DEFAULT_WEIGHTS) -> PluginInteraction:
    # Positional: this runs for every recent interaction of every request.
    if weights is DEFAULT_WEIGHTS:
        w = i.value if i.type is InteractionType.RATING else WEIGHTS[i.type]
    else:
        w = weights.of(i.type, i.value)
    return PluginInteraction(
        i.customer_id, i.item_id, i.type, w, i.event_time, i.value, i.channel, i.device
    )
