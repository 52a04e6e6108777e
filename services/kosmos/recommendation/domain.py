"""Recommendation rules: route, gather candidates, filter by the customer's own choices and the
business rules, vary, explain. Plain Python; imports no grpc.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry import trace

from kosmos.common import deadline, metrics
from kosmos.common.errors import NotFound
from kosmos.common.names import customer_name, item_name, shop_name
from kosmos.plugin import Interaction as PluginInteraction
from kosmos.plugin import Recommender, RecommendQuery, Scored, SimilarItemsQuery
from kosmos.plugin.routing import Candidate, Routing, run_chain
from kosmos.plugin.signals import to_plugin
from kosmos.recommendation.catalog_cache import CatalogCache
from kosmos.recommendation.models import ModelHub
from kosmos.store import Store
from kosmos.store.records import Customer, ExclusionKind, InteractionType, Item

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# Filters drop candidates (stock, exclusions, variety): ask each recommender for this many
# times what the page needs, plus a margin.
OVERFETCH = 2
OVERFETCH_MARGIN = 10
DEFAULT_REASON = "Picked for you"
# When a recommender names the recent item behind an offer, the reason names it too, for at
# most this many offers of one list.
MAX_CITATIONS = 2
BECAUSE = {
    InteractionType.VIEW: "Because you viewed {title}",
    InteractionType.CLICK: "Because you looked at {title}",
    InteractionType.ADD_TO_CART: "Because you added {title} to your cart",
    InteractionType.PURCHASE: "Because you bought {title}",
    InteractionType.RATING: "Because you rated {title}",
}


@dataclass(frozen=True, slots=True)
class Context:
    """Where the customer shops right now."""

    channel: str = ""
    device: str = ""
    page: str = ""
    cart_item_ids: frozenset[str] = frozenset()

    def as_mapping(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("channel", self.channel), ("device", self.device), ("page", self.page))
            if v
        }


@dataclass(frozen=True, slots=True)
class Offer:
    item: Item
    score: float
    reason: str
    recommender: str


@dataclass(frozen=True, slots=True)
class OfferPage:
    offers: list[Offer]
    recommendation_id: str
    has_more: bool


def _page(offers: list[Offer], offset: int, want: int, recommendation_id: str) -> OfferPage:
    """The requested slice of a finished list; ``offers`` holds one more than ``want`` when
    there is a next page."""
    return OfferPage(
        offers=offers[offset:want],
        recommendation_id=recommendation_id or uuid.uuid4().hex,
        has_more=len(offers) > want,
    )


def _served(page: OfferPage, shop_id: str, rpc: str) -> None:
    metrics.record_offers((o.recommender for o in page.offers), rpc)
    span = trace.get_current_span()  # the RPC's server span
    span.set_attribute("kosmos.shop", shop_id)
    span.set_attribute("kosmos.offers.count", len(page.offers))


class Recommendations:
    """Serves offers from the routed chain of recommenders."""

    def __init__(
        self,
        store: Store,
        models: ModelHub,
        routing: Routing,
        max_per_category: int,
        recent_interactions: int,
        repurchase_cooldown_hours: float = 24.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.models = models
        self.routing = routing
        self.max_per_category = max_per_category
        self.recent_interactions = recent_interactions
        self.repurchase_cooldown = repurchase_cooldown_hours * 3600.0
        self.clock = clock
        self.catalog = CatalogCache(store)

    # -- public ------------------------------------------------------------------------------

    def recommend(
        self,
        shop_id: str,
        customer_id: str,
        context: Context,
        page_size: int,
        offset: int,
        recommendation_id: str = "",
    ) -> OfferPage:
        customer = self._customer(shop_id, customer_id)
        recent = [
            to_plugin(i)
            for i in self.store.list_interactions(
                shop_id, customer_id, None, self.recent_interactions
            )
        ]
        excluded = self.store.dismissed_item_ids(shop_id, customer_id) | context.cart_item_ids
        cooled = self.clock() - self.repurchase_cooldown
        excluded |= {
            i.item_id for i in recent if i.type is InteractionType.PURCHASE and i.time >= cooled
        }
        excluded |= {e.value for e in customer.exclusions if e.kind is ExclusionKind.ITEM}
        want = offset + page_size
        query = RecommendQuery(
            customer_id=customer_id,
            k=want * OVERFETCH + OVERFETCH_MARGIN,
            exclude_item_ids=frozenset(excluded),
            recent_interactions=recent,
            customer_features=customer.attributes,
            context=context.as_mapping(),
        )
        chain = self.routing.chain(has_history=bool(recent))
        candidates = self._gather(shop_id, chain, query.k, lambda m: m.recommend(query))
        offers = self._finish(shop_id, candidates, customer, excluded, want, recent)
        page = _page(offers, offset, want, recommendation_id)
        _served(page, shop_id, "recommend")
        return page

    def similar_items(
        self,
        shop_id: str,
        item_id: str,
        customer_id: str | None,
        page_size: int,
        offset: int,
        recommendation_id: str = "",
    ) -> OfferPage:
        if item_id not in self.catalog.items(shop_id):
            raise NotFound("item", item_name(shop_id, item_id))
        customer = self._customer(shop_id, customer_id) if customer_id else None
        excluded: set[str] = {item_id}
        if customer is not None:
            excluded |= self.store.dismissed_item_ids(shop_id, customer.customer_id)
            excluded |= {e.value for e in customer.exclusions if e.kind is ExclusionKind.ITEM}
        want = offset + page_size
        query = SimilarItemsQuery(
            item_id=item_id,
            k=want * OVERFETCH + OVERFETCH_MARGIN,
            exclude_item_ids=frozenset(excluded),
        )
        candidates = self._gather(
            shop_id, self.routing.warm, query.k, lambda m: m.similar_items(query)
        )
        offers = self._finish(shop_id, candidates, customer, excluded, want)
        page = _page(offers, offset, want, recommendation_id)
        _served(page, shop_id, "similar_items")
        return page

    # -- steps -------------------------------------------------------------------------------

    def _customer(self, shop_id: str, customer_id: str) -> Customer:
        customer = self.store.get_customer(shop_id, customer_id)
        if customer is None:
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
            raise NotFound("customer", customer_name(shop_id, customer_id))
        return customer

    def _gather(
        self,
        shop_id: str,
        chain: Sequence[str],
        k: int,
        call: Callable[[Recommender], Sequence[Scored]],
    ) -> list[Candidate]:
        asked: list[str] = []  # in order
        passed: set[str] = set()  # asked, but had no model or failed

        def ask(name: str) -> Sequence[Scored] | None:
            asked.append(name)
            with tracer.start_as_current_span("recommend.recommender") as step:
                step.set_attribute("kosmos.shop", shop_id)
                step.set_attribute("kosmos.recommender", name)
                model = self.models.get(shop_id, name)
                if model is None:
                    metrics.record_fallback(name, "no_model")
                    passed.add(name)
                    return None
                step.set_attribute("kosmos.model.version", self.models.version(shop_id, name) or "")
                try:
                    results = call(model)
                except Exception:
                    metrics.record_fallback(name, "failed")
                    passed.add(name)
                    raise
                step.set_attribute("kosmos.candidates.count", len(results))
                return results

        with tracer.start_as_current_span("recommend.candidates") as span:
            span.set_attribute("kosmos.shop", shop_id)
            span.set_attribute("kosmos.routing.chain", ",".join(chain))
            candidates = run_chain(
                chain, ask, k, before_each=lambda: deadline.check("recommend.candidates")
            )
            span.set_attribute("kosmos.candidates.count", len(candidates))
        # One that answered, but with too few, for the chain to move on to the next.
        for name in asked[:-1]:
            if name not in passed:
                metrics.record_fallback(name, "short")
        return candidates

    def _finish(
        self,
        shop_id: str,
        candidates: list[Candidate],
        customer: Customer | None,
        excluded: set[str] | frozenset[str],
        want: int,
        recent: Sequence[PluginInteraction] = (),
    ) -> list[Offer]:
        deadline.check("recommend.filter")
        last_done: dict[str, InteractionType] = {}
        citations: dict[str, int] = {}
        for i in recent:  # newest first: the first one seen per item is what they did last
            last_done.setdefault(i.item_id, i.type)
        with tracer.start_as_current_span("recommend.filter") as span:
            items = self.catalog.items(shop_id)
            categories = brands = frozenset[str]()
            if customer is not None:
                categories = frozenset(
                    e.value for e in customer.exclusions if e.kind is ExclusionKind.CATEGORY
                )
                brands = frozenset(
                    e.value for e in customer.exclusions if e.kind is ExclusionKind.BRAND
                )
            kept = []
            for c in candidates:
                item = items.get(c.scored.item_id)
                if (
                    item is None
                    or not item.available
                    or item.item_id in excluded
                    or (item.category and item.category in categories)
                    or (item.brand and item.brand in brands)
                ):
                    continue
                reason = c.scored.reason or DEFAULT_REASON
                because = items.get(c.scored.because_item_id)
                done = last_done.get(c.scored.because_item_id)
                cited = citations.get(c.scored.because_item_id, 0)
                if because is not None and done in BECAUSE and because.title:
                    if cited < MAX_CITATIONS:  # the same sentence on every offer says nothing
                        reason = BECAUSE[done].format(title=because.title)
                        citations[c.scored.because_item_id] = cited + 1
                kept.append(Offer(item, c.scored.score, reason, c.recommender))
            span.set_attribute("kosmos.candidates.kept", len(kept))
        with tracer.start_as_current_span("recommend.rank"):
            return self._vary(kept, want + 1)

    def _vary(self, offers: list[Offer], limit: int) -> list[Offer]:
        """Keeps the chain's order but lets no category take more than its share of a page,
        while other categories have offers left; then fills with the rest."""
        chosen: list[Offer] = []
        held: list[Offer] = []
        per_category: dict[str, int] = {}
        for offer in offers:
            if len(chosen) >= limit:
                break
            category = offer.item.category
            if category and per_category.get(category, 0) >= self.max_per_category:
                held.append(offer)
                continue
            per_category[category] = per_category.get(category, 0) + 1
            chosen.append(offer)
        return (chosen + held)[:limit]
