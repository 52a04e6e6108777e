"""The recommender plugin contract.

A plugin is a factory, registered under the ``kosmos.recommenders`` entry-point group, that takes
its settings and returns a `Recommender`. Every call takes one frozen dataclass, so the core can
add a field (a new kind of context, say) without breaking a plugin written today. Ids are plain
strings; a plugin keeps its own maps from ids to matrix rows.

A call outside a plugin's `Capabilities` raises `Unsupported`; a query before `fit` raises
`NotFitted`. Plugins import only this module (and ``kosmos.plugin``), never the services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from kosmos.common.errors import FailedPrecondition
from kosmos.common.errors import Unsupported as _Unsupported
from kosmos.store.records import InteractionType

__all__ = [
    "Capabilities",
    "Contribution",
    "ExplainQuery",
    "Interaction",
    "InteractionType",
    "NotFitted",
    "RecommendQuery",
    "Recommender",
    "RecommenderFactory",
    "Scored",
    "SimilarItemsQuery",
    "TrainingData",
    "Unsupported",
]


class Unsupported(_Unsupported):
    """The call is outside the plugin's capabilities (gRPC ``UNIMPLEMENTED``)."""

    def __init__(self, operation: str, plugin: str = "") -> None:
        who = f"recommender {plugin!r}" if plugin else "this recommender"
        super().__init__("UNSUPPORTED_OPERATION", f"{who} does not support {operation}")


class NotFitted(FailedPrecondition):
    """The recommender was asked before it was fitted (gRPC ``FAILED_PRECONDITION``)."""

    def __init__(self, plugin: str = "") -> None:
        who = f"recommender {plugin!r}" if plugin else "this recommender"
        super().__init__("NOT_FITTED", f"{who} has not been fitted")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a recommender can do beyond fit, recommend and similar_items.

    Attributes:
        cold_start: Serves customers unseen at fit time, from their features.
        partial_fit: Folds in new interactions without a full refit.
        explain: Gives per-item contributions to a score.
    """

    cold_start: bool = False
    partial_fit: bool = False
    explain: bool = False


@dataclass(frozen=True, slots=True)
class Interaction:
    """One interaction as a plugin sees it.

    Attributes:
        customer_id: The customer.
        item_id: The item.
        type: What happened.
        weight: The strength the core gives it: purchases weigh more than views, dismissals 0.
        time: Seconds since the Unix epoch.
        value: The rating, or the quantity of a purchase; 0 when not given.
        channel: The channel it happened on (``web``, ``app``, ``email``), "" when not given:
            the same values as ``RecommendQuery.context["channel"]``, so a plugin can learn
            per channel.
        device: The device it happened on (``mobile``, ``desktop``), "" when not given.
    """

    customer_id: str
    item_id: str
    type: InteractionType
    weight: float
    time: float
    value: float = 0.0
    channel: str = ""
    device: str = ""


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Everything a recommender fits on, for one shop.

    Attributes:
        interactions: Every interaction, oldest first.
        item_ids: The catalog, including items nobody has touched yet.
        customer_features: Customer id → feature name → value.
        item_features: Item id → feature name → value (``category``, ``brand``, ...).
        now: The fit's reference time, seconds since the epoch (recency weighting).
        shop_id: The shop this data belongs to; remote plugins keep one model per shop.
    """

    interactions: Sequence[Interaction]
    item_ids: Sequence[str] = ()
    customer_features: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    item_features: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    now: float = 0.0
    shop_id: str = ""


@dataclass(frozen=True, slots=True)
class RecommendQuery:
    """Ask for one customer's top items.

    Attributes:
        customer_id: The customer; may be unseen at fit time.
        k: At most this many items.
        exclude_item_ids: Never return these. The service puts here, among others, what the
            shop's seen-item policy says the customer already has (`kosmos.recommendation.seen`).
        filter_already_seen: Leave out items the customer interacted with (at fit time or in
            ``recent_interactions``).
        recent_interactions: The customer's latest interactions, newest first, including ones
            after the fit: a plugin that can should let them shape the answer.
        customer_features: The customer's features, for customers unseen at fit time.
        context: The request context: ``channel``, ``device``, ``page``.
        reasons: Whether to work out shopper-facing reasons (`Scored.because_item_id`); the
            service asks for them, offline evaluation and scoring benchmarks do not.
        now: The request's reference time, seconds since the epoch: the event time "now" for
            recency, repurchase cycles and trends (the request's ``request_time``, or the
            evaluation's cutoff). 0 means the plugin's own fit-time ``now``.
        seed_item_ids: Items in view, most relevant first: the product page's item, then the
            cart. "Bought together" and "similar items" start from them.
        placement: Where the offers will show (``home``, ``product``, ``cart``, ``email``,
            ``buy_again``...); the core routes by it, a plugin may use it as a feature.
    """

    customer_id: str
    k: int
    exclude_item_ids: frozenset[str] = frozenset()
    filter_already_seen: bool = False
    recent_interactions: Sequence[Interaction] = ()
    customer_features: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)
    reasons: bool = True
    now: float = 0.0
    seed_item_ids: tuple[str, ...] = ()
    placement: str = ""


@dataclass(frozen=True, slots=True)
class SimilarItemsQuery:
    """Ask for items like one item.

    Attributes:
        item_id: The item.
        k: At most this many items (the item itself is never among them).
        exclude_item_ids: Never return these.
    """

    item_id: str
    k: int
    exclude_item_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ExplainQuery:
    """Ask which past interactions drove one item's score for one customer.

    Attributes:
        customer_id: The customer.
        item_id: The recommended item.
        recent_interactions: The customer's latest interactions, newest first.
    """

    customer_id: str
    item_id: str
    recent_interactions: Sequence[Interaction] = ()


@dataclass(frozen=True, slots=True)
class Scored:
    """One ranked item.

    Attributes:
        item_id: The item.
        score: Higher is better; comparable only within one answer.
        reason: Why, in words a shopper can read; empty lets the core say it.
        because_item_id: The item among the customer's recent interactions that most explains
            this one, when the recommender knows (see `kosmos.plugin.closest_history`). The core
            then says "Because you bought <its title>", which a plugin cannot: it has no titles.
        kind: What sort of reason this is, when the plugin knows better than the core:
            ``buy_again``, ``bought_together``, ``similar_to``, ``trending``, ``new_for_you``,
            ``because_you_bought``... Empty lets the core decide.
    """

    item_id: str
    score: float
    reason: str = ""
    because_item_id: str = ""
    kind: str = ""


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one past item contributed to a score."""

    item_id: str
    weight: float


@runtime_checkable
class Recommender(Protocol):
    """What every recommender plugin implements.

    ``recommend`` and ``similar_items`` may be called from many threads at once, and
    concurrently with ``partial_fit``; ``fit`` and ``load`` are called on an instance before it
    serves (the service swaps in a fresh instance rather than refitting a serving one).
    """

    capabilities: Capabilities

    def fit(self, data: TrainingData) -> None:
        """Trains from scratch; fitting twice on the same data gives the same model."""
        ...

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        """Folds in new interactions; raises Unsupported without ``partial_fit``."""
        ...

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        """Top items for a customer, best first; empty when it has nothing to say."""
        ...

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        """Items like ``query.item_id``, most similar first; empty for an unknown item."""
        ...

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        """Contributions, largest first; raises Unsupported without ``explain``."""
        ...

    def save(self, directory: Path) -> None:
        """Writes the fitted model into an existing, empty directory."""
        ...

    def load(self, directory: Path) -> None:
        """Reads a model `save` wrote; the instance then serves as the saved one did."""
        ...


RecommenderFactory = Callable[[Mapping[str, str]], Recommender]
"""What an entry point names: settings (from ``KOSMOS_PLUGIN__<NAME>__*``) → a recommender."""
