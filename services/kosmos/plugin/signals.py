"""How strongly each kind of interaction says "I like this", for every recommender.

A purchase says more than a view; a dismissal says nothing positive (it is filtered out of
recommendations instead). Ratings weigh their value (0-5) unless a shop says otherwise, and a
purchase of several units may count more than one (``quantity_exponent``). Plugins receive these
weights in `kosmos.plugin.Interaction.weight` and never need to know the interaction types. The
service, the trainer and ``kosmos evaluate`` all weigh through `to_plugin` with the shop's
`Weights`, so a model is fitted on the same signal it is served with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Weights:
    """A shop's interaction weights.

    Attributes:
        base: Interaction kind → weight; kinds left out weigh as in `WEIGHTS`.
        rating_value: A rating weighs its value (stars); otherwise its ``base`` weight.
        quantity_exponent: A purchase of ``q`` units weighs ``base × q**quantity_exponent``
            (0: quantity does not count; 1: linearly; 0.5: with diminishing returns).
    """

    base: Mapping[InteractionType, float] = field(default_factory=lambda: dict(WEIGHTS))
    rating_value: bool = True
    quantity_exponent: float = 0.0

    def __post_init__(self) -> None:
        if any(w < 0 for w in self.base.values()):
            raise ValueError("interaction weights must not be negative")
        if not 0.0 <= self.quantity_exponent <= 2.0:
            raise ValueError("quantity_exponent must be between 0 and 2")

    def of(self, kind: InteractionType, value: float) -> float:
        if kind is InteractionType.RATING and self.rating_value:
            return value
        w = self.base.get(kind, WEIGHTS[kind])
        if kind is InteractionType.PURCHASE and self.quantity_exponent and value > 1:
            w *= float(value) ** self.quantity_exponent
        return w


DEFAULT_WEIGHTS = Weights()


def weight(kind: InteractionType, value: float, weights: Weights = DEFAULT_WEIGHTS) -> float:
    return weights.of(kind, value)


def to_plugin(i: Interaction, weights: Weights = DEFAULT_WEIGHTS) -> PluginInteraction:
    # Positional: this runs for every recent interaction of every request.
    return PluginInteraction(
        i.customer_id, i.item_id, i.type, weights.of(i.type, i.value), i.event_time, i.value
    )
