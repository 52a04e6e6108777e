"""Recommendation rules: route, gather candidates, filter by the customer's own choices and the
business rules, vary, explain. Plain Python; imports no grpc.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace

from opentelemetry import trace

from kosmos.common import deadline, metrics, signing, spans
from kosmos.common.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from kosmos.common.names import customer_name, item_name, shop_name
from kosmos.experiments.domain import Assignment, variant_model
from kosmos.experiments.domain import assign as assign_variant
from kosmos.plugin import Interaction as PluginInteraction
from kosmos.plugin import Recommender, RecommendQuery, Scored, SimilarItemsQuery
from kosmos.plugin.routing import Candidate, Routing, run_chain
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights, to_plugin
from kosmos.recommendation import pages, rotation, rules
from kosmos.recommendation.catalog_cache import CatalogCache
from kosmos.recommendation.choices import Choices
from kosmos.recommendation.models import ModelHub, ShopSettings
from kosmos.recommendation.seen import SeenPolicy
from kosmos.shopconfig.documents import DocumentCache
from kosmos.store import Store
from kosmos.store.records import (
    Customer,
    InteractionType,
    Item,
    RecommendationList,
    RecommendInputs,
    is_anonymous,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# When the customer's exclusions leave the page short, ask again for this many times more
# candidates, at most this many more times (issue 11: the page stays full).
REFILL_FACTOR = 4
REFILL_ROUNDS = 2
# The customer id a model is asked with when it must not use its vector for the customer
# (erased, or training consent withdrawn, after the model was built): no id can be this.
MASKED_CUSTOMER_ID = "\x00masked"
DEFAULT_REASON = "Picked for you"
# A page token whose list is younger than this and not found yet is looked up again for up to
# this long: its first page's replica writes the list behind the page (milliseconds).
YOUNG_LIST_SECONDS = 1.0
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
BECAUSE_KIND = {
    InteractionType.VIEW: "because_you_viewed",
    InteractionType.CLICK: "because_you_viewed",
    InteractionType.ADD_TO_CART: "because_you_viewed",
    InteractionType.PURCHASE: "because_you_bought",
    InteractionType.RATING: "because_you_rated",
}
REASON_KINDS = (
    "picked_for_you",
    "because_you_bought",
    "because_you_viewed",
    "because_you_rated",
    "similar_to",
    "bought_together",
    "buy_again",
    "trending",
    "new_for_you",
    "popular",
    "you_told_us",
    "non_personal",
    "promoted",
)
"""Every reason kind an offer can carry (``kosmos.v1.ReasonKind`` without its prefix)."""
_KIND_SET = frozenset(REASON_KINDS)
_SEEDED_KINDS = frozenset(("similar_to", "bought_together"))


@dataclass(frozen=True, slots=True)
class Context:
    """Where the customer shops right now.

    Attributes:
        channel: ``web``, ``app``, ``email``...
        device: ``mobile``, ``desktop``...
        page: The placement (``home``, ``product``, ``cart``, ``buy_again``...): it picks the
            routed chain and whether the seen-item policy applies.
        cart_item_ids: Items in the cart; never offered.
        request_time: The request's "now" (seconds since the epoch); None: the clock's.
        item_ids: Items on the page (a product page's item), most relevant first; never offered.
        cart: The cart in the caller's order (``cart_item_ids`` as a sequence).
    """

    channel: str = ""
    device: str = ""
    page: str = ""
    cart_item_ids: frozenset[str] = frozenset()
    request_time: float | None = None
    item_ids: tuple[str, ...] = ()
    cart: tuple[str, ...] = ()

    @property
    def seed_item_ids(self) -> tuple[str, ...]:
        """What the customer is looking at, then what is in the cart."""
        return tuple(dict.fromkeys((*self.item_ids, *self.cart, *sorted(self.cart_item_ids))))

    def as_mapping(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("channel", self.channel), ("device", self.device), ("page", self.page))
            if v
        }


@dataclass(slots=True)
class Offer:
    """One offer. ``kind`` is a `REASON_KINDS` name; ``evidence`` the item ids behind it.

    Not frozen, unlike the records around it: every Recommend builds one for each of its 70
    candidates, and a frozen dataclass's ``__init__`` calls ``object.__setattr__`` once a field
    (issue 12; the cost is in the README's Benchmarks 1). Treat it as immutable all the same:
    `dataclasses.replace` makes a changed copy.
    """

    item: Item
    score: float
    reason: str
    recommender: str
    kind: str = "picked_for_you"
    evidence: tuple[str, ...] = ()
    rule_id: str = ""  # the merchant rule that placed it (kind "promoted")


@dataclass(frozen=True, slots=True)
class OfferPage:
    offers: list[Offer]
    recommendation_id: str
    has_more: bool
    experiment_id: str = ""
    variant_id: str = ""
    expire_time: float = 0.0  # until when the list behind the id is kept (0: not kept)


@dataclass(frozen=True, slots=True)
class _ShopView:
    routing: Routing
    max_per_category: int
    seen_policy: SeenPolicy
    weights: Weights
    list_length: int = pages.LIST_LENGTH


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
        seen_policy: SeenPolicy | None = None,
        weights: Weights = DEFAULT_WEIGHTS,
        reasons: bool = True,
        shop_settings: ShopSettings | None = None,
        list_length: int = pages.LIST_LENGTH,
    ) -> None:
        # Per-shop settings over the cluster's (the arguments above): routing, variety, the
        # list length, the seen-item policy and weights, read once per request
        # (`kosmos.shopconfig`).
        self.shop_settings = shop_settings
        self.list_length = list_length
        self.seen_policy = seen_policy or SeenPolicy()
        self.weights = weights
        self.reasons = reasons
        self.store = store
        self.models = models
        self.routing = routing
        self.max_per_category = max_per_category
        self.recent_interactions = recent_interactions
        self.repurchase_cooldown = repurchase_cooldown_hours * 3600.0
        self.clock = clock
        self.catalog = CatalogCache(store)
        # Merchant rules and experiments, cached by revision (issue 13).
        self.documents = DocumentCache(store)

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
        if recommendation_id:
            # A later page: a slice of the list kept behind the id (issue 13).
            return self._kept_page(shop_id, recommendation_id, offset, page_size)
        now = self.clock() if context.request_time is None else context.request_time
        # One read (one round trip) for the profile, the recent history, the dismissals, what
        # the customer owns and was shown (issue 8), and the shop's revisions, which the
        # settings, catalog and document caches check instead of reading them (issue 12).
        policy = (  # as last resolved: the revision read with the inputs checks it below
            self.seen_policy
            if self.shop_settings is None
            else self.shop_settings.latest(shop_id).seen_items
        )
        inputs = self.store.recommend_inputs(
            shop_id,
            customer_id,
            self.recent_interactions,
            policy.owned_types,
            impressions_since=rotation.horizon(now),
        )
        if inputs is None:
            inputs = self._anonymous(shop_id, customer_id)
        revisions = inputs.revisions
        shop = self._view(shop_id, revisions.settings_revision if revisions else None)
        if shop.seen_policy.owned_types != policy.owned_types:  # the settings just changed
            inputs = (
                self.store.recommend_inputs(
                    shop_id,
                    customer_id,
                    self.recent_interactions,
                    shop.seen_policy.owned_types,
                    impressions_since=rotation.horizon(now),
                )
                or inputs
            )
        customer = inputs.customer
        catalog = self.catalog.items(shop_id, revisions.catalog_version if revisions else None)
        # The customer's own choices: exclusions, preferences, consent (issue 11).
        choices = Choices.of(customer, self.clock(), inputs.consents)
        recent = choices.history([to_plugin(i, shop.weights) for i in inputs.recent], catalog)
        excluded = set(inputs.dismissed_item_ids) | context.cart_item_ids
        excluded |= set(context.item_ids)
        # The seen-item policy: what the customer has, unless people buy it again.
        excluded |= shop.seen_policy.excluded(
            inputs.owned_item_ids if choices.personal else frozenset(),
            self.models.repeatable(shop_id),
            context.page,
            lambda item_id: catalog[item_id].category if item_id in catalog else "",
        )
        cooled = now - self.repurchase_cooldown
        excluded |= {
            i.item_id
            for i in recent
            if i.type is InteractionType.PURCHASE and cooled <= i.time <= now
        }
        excluded |= choices.item_ids
        # Experiments and merchant rules (issue 13): the customer's variant may route and
        # rule differently; the list is one ranking, whatever the page size (stable pages).
        docs = self.documents.for_shop(shop_id, revisions.documents if revisions else None)
        assigned = assign_variant(docs.experiments, customer_id, context.page, now)
        routing, rule_set = shop.routing, docs.rules
        own: dict[str, str] = {}  # recommender → the variant's own model of it
        if assigned is not None and assigned.variant is not None:
            if assigned.variant.routing:
                routing = Routing.parse(assigned.variant.routing)
            rule_set = rule_set + rules.RuleSet.from_document({"rules": assigned.variant.rules})
            own = {
                name: variant_model(name, assigned.experiment_id, assigned.variant_id)
                for name in assigned.variant.plugin_settings
            }
        rule_set = rule_set.active(context.page, now)
        # Rotation reads the customer's own impressions: personalization, so only with its
        # consent (issue 11).
        shown: dict[str, float] = {}
        strength = 0.0
        if choices.personal:
            shown = rotation.ignored_weights(inputs.impressions, recent, now)
            strength = rotation.MAX_STRENGTH * rotation.novelty(
                customer.attributes, len(inputs.dismissed_item_ids)
            )
        # A first page larger than the list ranks a list of its own size.
        length = max(shop.list_length, page_size)
        want = length - 1
        query = RecommendQuery(
            customer_id=customer_id if choices.personal else MASKED_CUSTOMER_ID,
            k=length + pages.LIST_MARGIN,
            exclude_item_ids=frozenset(excluded),
            recent_interactions=recent,
            customer_features=customer.attributes if choices.personal else {},
            context=context.as_mapping(),
            reasons=self.reasons,
            now=now,
            seed_item_ids=context.seed_item_ids,
            placement=context.page,
        )
        chain = routing.chain(has_history=bool(recent), placement=context.page)
        masked = self._masked(shop_id, chain, inputs, own)
        for attempt in range(REFILL_ROUNDS + 1):
            if attempt:
                query = dataclasses.replace(query, k=query.k * REFILL_FACTOR)
            asked = hidden = query
            if masked:  # a model built before the customer's erasure or withdrawal
                hidden = dataclasses.replace(query, customer_id=MASKED_CUSTOMER_ID)
            candidates = self._gather(
                shop_id,
                chain,
                query.k,
                lambda m: m.recommend(hidden if id(m) in masked else asked),  # noqa: B023
                own,
            )
            ruled = rules.apply(rule_set, candidates, catalog)
            offers = self._finish(
                catalog,
                shop.max_per_category,
                ruled.candidates,
                customer,
                excluded,
                want,
                recent,
                seeds=context.seed_item_ids,
                choices=choices,
                rotate=lambda kept: rotation.rotate(kept, shown, strength),
            )
            if len(offers) > want or len(candidates) < query.k:
                break  # full, or nothing more to ask for
        offers = _pinned(rules.place_pins(offers, ruled.pins), ruled.pins)
        page = self._keep(shop_id, customer_id, context.page, assigned, offers[:length], page_size)
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
        if recommendation_id:
            # A later page: a slice of the list kept behind the id, as Recommend's (issue 13).
            return self._kept_page(shop_id, recommendation_id, offset, page_size, "similar_items")
        # The catalog and the shop's settings are read once per request.
        catalog = self.catalog.items(shop_id)
        shop = self._view(shop_id)
        if item_id not in catalog:
            raise NotFound("item", item_name(shop_id, item_id))
        # The customer's profile, consent and dismissals (their linked devices' too), in one
        # read (issue 11).
        inputs = None
        if customer_id:
            inputs = self.store.recommend_inputs(shop_id, customer_id, 0)
            if inputs is None:
                inputs = self._anonymous(shop_id, customer_id)
        customer = inputs.customer if inputs is not None else None
        excluded: set[str] = {item_id}
        choices = Choices.of(customer, self.clock(), inputs.consents if inputs else None)
        if not choices.personal:  # similar items are not personal: keep them, without likes
            choices = Choices.of(customer, self.clock()).restrictions_only()
        if inputs is not None:
            excluded |= inputs.dismissed_item_ids
            excluded |= choices.item_ids
        # One list whatever the page size (stable, prefix-stable pages), as Recommend ranks.
        length = max(shop.list_length, page_size)
        want = length - 1
        query = SimilarItemsQuery(
            item_id=item_id,
            k=length + pages.LIST_MARGIN,
            exclude_item_ids=frozenset(excluded),
        )
        candidates = self._gather(
            shop_id, shop.routing.warm, query.k, lambda m: m.similar_items(query)
        )
        offers = self._finish(
            catalog,
            shop.max_per_category,
            candidates,
            customer,
            excluded,
            want,
            default_kind="similar_to",
            seeds=(item_id,),
            choices=choices,
        )
        page = self._keep(shop_id, customer_id or "", "", None, offers[:length], page_size)
        _served(page, shop_id, "similar_items")
        return page

    # -- stable pages (issue 13) -------------------------------------------------------------

    def _keep(
        self,
        shop_id: str,
        customer_id: str,
        placement: str,
        assigned: Assignment | None,
        offers: list[Offer],
        page_size: int,
    ) -> OfferPage:
        """Keeps the whole list behind a new id and returns its first page."""
        created = time.time()
        rid = signing.new_recommendation_id(shop_id, created)
        experiment_id = assigned.experiment_id if assigned is not None else ""
        variant_id = assigned.variant_id if assigned is not None else ""
        record = RecommendationList(
            shop_id=shop_id,
            recommendation_id=rid,
            customer_id=customer_id,
            offers=tuple(pages.to_document(o) for o in offers),
            create_time=created,
            expire_time=created + pages.LIST_TTL_SECONDS,
            placement=placement,
            experiment_id=experiment_id,
            variant_id=variant_id,
        )
        try:
            # Write-behind: the store commits it with other lists, after this page is served.
            self.store.put_recommendation_list(record)
        except (Unavailable, DeadlineExceeded):
            log.warning("recommendation list not kept (store closing): page 1 has no next page")
            return OfferPage(offers[:page_size], rid, False, experiment_id, variant_id, 0.0)
        return OfferPage(
            offers[:page_size],
            rid,
            len(offers) > page_size,
            experiment_id,
            variant_id,
            record.expire_time,
        )

    def _kept_page(
        self,
        shop_id: str,
        recommendation_id: str,
        offset: int,
        page_size: int,
        rpc: str = "recommend",
    ) -> OfferPage:
        kept = self.store.get_recommendation_list(shop_id, recommendation_id, time.time())
        if (
            kept is None
            and signing.recommendation_id_age(recommendation_id) <= YOUNG_LIST_SECONDS + 1
        ):
            kept = self._wait_for_list(shop_id, recommendation_id)
        if kept is None:
            raise InvalidArgument(
                "page_token",
                "PAGE_TOKEN_EXPIRED",
                f"the list behind it is kept {pages.LIST_TTL_SECONDS // 3600} hours; ask again",
            )
        catalog = self.catalog.items(shop_id)
        window = kept.offers[offset : offset + page_size]
        # An item sold out since the list was ranked is left out of its page.
        offers = [
            Offer(catalog[pages.item_of(d)], **pages.from_document(d))
            for d in window
            if pages.item_of(d) in catalog and catalog[pages.item_of(d)].available
        ]
        page = OfferPage(
            offers,
            recommendation_id,
            len(kept.offers) > offset + page_size,
            kept.experiment_id,
            kept.variant_id,
            kept.expire_time,
        )
        _served(page, shop_id, rpc)
        return page

    def _wait_for_list(self, shop_id: str, recommendation_id: str) -> RecommendationList | None:
        """A list another replica kept a moment ago may not have committed yet (it is written
        behind its first page): look again a few times, within the caller's deadline."""
        waited, pause = 0.0, 0.01
        while waited < YOUNG_LIST_SECONDS:
            left = deadline.remaining()
            if left is not None and left <= pause:
                return None
            threading.Event().wait(pause)  # a bounded pause between reads of another's write
            waited += pause
            pause = min(pause * 2, 0.2)
            kept = self.store.get_recommendation_list(shop_id, recommendation_id, time.time())
            if kept is not None:
                return kept
        return None

    # -- steps -------------------------------------------------------------------------------

    def _anonymous(self, shop_id: str, customer_id: str) -> RecommendInputs:
        """What an unknown id gets: an anonymous id (``anon-``) in a known shop shops as a
        new customer; any other unknown id is NOT_FOUND."""
        if not is_anonymous(customer_id):
            self._customer(shop_id, customer_id)  # raises NotFound for the shop or the customer
            raise NotFound("customer", customer_name(shop_id, customer_id))
        if self.store.get_shop(shop_id) is None:
            raise NotFound("shop", shop_name(shop_id))
        return RecommendInputs(Customer(shop_id, customer_id, anonymous=True), [], frozenset())

    def _masked(
        self,
        shop_id: str,
        chain: Sequence[str],
        inputs: RecommendInputs,
        own: Mapping[str, str] | None = None,
    ) -> set[int]:
        """The models (by ``id``) that must not use a vector they hold for the customer: built
        before the customer's erasure or training withdrawal (until the next fit)."""
        if inputs.mask_time is None:
            return set()
        masked = set()
        for name in chain:
            serving = self.models.serving(shop_id, (own or {}).get(name, name))
            if serving is not None and serving.built_time <= inputs.mask_time:
                masked.add(id(serving.model))
        return masked

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
        own: Mapping[str, str] | None = None,
    ) -> list[Candidate]:
        """Runs the chain; ``own`` maps a recommender to the variant model that answers for it
        (an experiment variant with plugin settings of its own)."""
        own = own or {}
        asked: list[str] = []  # in order
        passed: set[str] = set()  # asked, but had no model or failed

        def ask(name: str) -> Sequence[Scored] | None:
            asked.append(name)
            with spans.child(tracer, "recommend.recommender") as step:
                step.set_attribute("kosmos.shop", shop_id)
                step.set_attribute("kosmos.recommender", name)
                model_name = own.get(name, name)
                if model_name != name:
                    step.set_attribute("kosmos.model.name", model_name)
                model = self.models.get(shop_id, model_name)
                if model is None:
                    metrics.record_fallback(name, "no_model")
                    passed.add(name)
                    return None
                version = self.models.version(shop_id, model_name) or ""
                step.set_attribute("kosmos.model.version", version)
                try:
                    results = call(model)
                except Exception:
                    metrics.record_fallback(name, "failed")
                    passed.add(name)
                    raise
                step.set_attribute("kosmos.candidates.count", len(results))
                return results

        with spans.child(tracer, "recommend.candidates") as span:
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
        items: Mapping[str, Item],
        max_per_category: int,
        candidates: list[Candidate],
        customer: Customer | None,
        excluded: set[str] | frozenset[str],
        want: int,
        recent: Sequence[PluginInteraction] = (),
        default_kind: str = "picked_for_you",
        seeds: tuple[str, ...] = (),
        choices: Choices | None = None,
        rotate: Callable[[list[Offer]], list[Offer]] | None = None,
    ) -> list[Offer]:
        """Filters against the request's catalog snapshot ``items``, words the reasons and
        varies. ``default_kind`` and ``seeds`` (the evidence) are what an offer's reason is when
        its recommender says nothing more specific."""
        deadline.check("recommend.filter")
        last_done: dict[str, InteractionType] = {}
        citations: dict[str, int] = {}
        for i in recent:  # newest first: the first one seen per item is what they did last
            last_done.setdefault(i.item_id, i.type)
        with spans.child(tracer, "recommend.filter") as span:
            kept = []
            kinds = _KIND_SET
            for c in candidates:
                scored = c.scored
                item = items.get(scored.item_id)
                if item is None or not item.available or item.item_id in excluded:
                    continue
                reason = scored.reason or DEFAULT_REASON
                kind = scored.kind if scored.kind in kinds else default_kind
                evidence = seeds if kind in _SEEDED_KINDS else ()
                cause = scored.because_item_id
                because = items.get(cause) if cause else None
                if because is not None:
                    evidence = (because.item_id,)
                    done = last_done.get(cause)
                    if done in BECAUSE:
                        if not scored.kind:
                            kind = BECAUSE_KIND[done]
                        cited = citations.get(cause, 0)
                        if because.title and cited < MAX_CITATIONS:
                            # The same sentence on every offer says nothing.
                            reason = BECAUSE[done].format(title=because.title)
                            citations[cause] = cited + 1
                if kind == "buy_again":
                    evidence = (item.item_id,)
                kept.append(Offer(item, scored.score, reason, c.recommender, kind, evidence))
            # The customer's choices (issue 11), after the merchant's rules and before
            # rotation and variety: hard exclusions last, so nothing before can break them.
            kept = (choices or Choices.of(customer, self.clock())).apply(kept)
            span.set_attribute("kosmos.candidates.kept", len(kept))
        if rotate is not None:  # shown and ignored items sink (issue 13), before variety
            kept = rotate(kept)
        with spans.child(tracer, "recommend.rank"):
            return self._vary(kept, want + 1, max_per_category)

    def _view(self, shop_id: str, revision: int | None = None) -> _ShopView:
        """What applies to one shop: its settings (cached by revision), or the cluster's; at
        ``revision`` when the request read it already, else the cached or current one."""
        if self.shop_settings is None:
            return _ShopView(
                self.routing,
                self.max_per_category,
                self.seen_policy,
                self.weights,
                self.list_length,
            )
        e = self.shop_settings.settings_for(shop_id, revision)
        return _ShopView(e.routing, e.max_per_category, e.seen_items, e.weights, e.list_length)

    def _vary(self, offers: list[Offer], limit: int, max_per_category: int) -> list[Offer]:
        """Keeps the chain's order but lets no category take more than its share of any window
        of `pages.VARIETY_WINDOW` offers while other categories have offers left."""
        return pages.vary(offers, limit, max_per_category)


def _pinned(offers: list[Offer], pins: Mapping[str, tuple[int, str]]) -> list[Offer]:
    """Names the rule behind each offer a pin placed."""
    if not pins:
        return offers
    return [
        dataclass_replace(o, rule_id=pins[o.item.item_id][1])
        if o.item.item_id in pins and o.kind == rules.PROMOTED
        else o
        for o in offers
    ]
