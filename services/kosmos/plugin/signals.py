"""How strongly each kind of interaction says "I like this", for every recommender.

A purchase says more than a view; a dismissal says nothing positive (it is filtered out of
recommendations instead). Ratings weigh their value (0-5). Plugins receive these weights in
`kosmos.plugin.Interaction.weight` and never need to know the interaction types.
"""

from __future__ import annotations

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


def weight(kind: InteractionType, value: float) -> float:
    return value if kind is InteractionType.RATING else WEIGHTS[kind]


def to_plugin(i: Interaction) -> PluginInteraction:
    # Positional: this runs for every recent interaction of every request.
    w = i.value if i.type is InteractionType.RATING else WEIGHTS[i.type]
    return PluginInteraction(i.customer_id, i.item_id, i.type, w, i.event_time, i.value)
