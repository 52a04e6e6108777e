"""RecommendationService over gRPC: proto <-> domain and request validation."""

from __future__ import annotations

from typing import Any

from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    check_resource_id,
    decode_page_token,
    encode_page_token,
    item_name,
    page_size,
    parse_customer,
    parse_item,
)
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.recommendation.domain import (
    REASON_KINDS,
    Context,
    Offer,
    OfferPage,
    Recommendations,
)
from kosmos.recommendation.explain import explain
from kosmos.v1 import recommendation_service_pb2, recommendation_service_pb2_grpc

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
# Deep paging through recommendations is a sign of a bug in the caller, not a use case.
MAX_OFFSET = 500
MAX_CART = 200
MAX_CONTEXT_TEXT = 64
MIN_REQUEST_TIME = 0.0
MAX_REQUEST_TIME = 7258118400.0  # 2200-01-01


_KINDS = {
    kind: recommendation_service_pb2.ReasonKind.Value(f"REASON_KIND_{kind.upper()}")
    for kind in REASON_KINDS
}


def _fill(message: Any, shop_id: str, o: Offer) -> Any:
    """Writes offer ``o`` into ``message`` (a new ``Offer``, or one added to a response's
    repeated field in place: building each offer apart and passing the list copies every one
    again, which cost a page of 10 about 60 µs, issue 12)."""
    message.item = item_name(shop_id, o.item.item_id)
    message.title = o.item.title
    message.score = o.score
    message.reason = o.reason
    message.recommender = o.recommender
    explanation = message.explanation
    explanation.kind = _KINDS[o.kind]
    explanation.recommender = o.recommender
    explanation.text = o.reason
    if o.rule_id:
        explanation.rule_id = o.rule_id
    if o.evidence:
        explanation.evidence_items.extend([item_name(shop_id, e) for e in o.evidence])
    return message


def _offer(shop_id: str, o: Offer) -> recommendation_service_pb2.Offer:
    message = recommendation_service_pb2.Offer()
    _fill(message, shop_id, o)
    return message


def _add_offers(repeated: Any, shop_id: str, page: OfferPage) -> None:
    add = repeated.add
    for o in page.offers:
        _fill(add(), shop_id, o)


def _cursor(token: str, scope: str) -> tuple[int, str]:
    cursor = decode_page_token(token, scope)
    if cursor is None:
        return 0, ""
    offset, rid = cursor.get("offset"), cursor.get("rid")
    if not isinstance(offset, int) or not isinstance(rid, str) or not 0 < offset <= MAX_OFFSET:
        raise InvalidArgument(
            "page_token", "INVALID_PAGE_TOKEN", "is not a token this request returned"
        )
    return offset, rid


def _next_token(scope: str, page: OfferPage, offset: int, size: int) -> str:
    if not page.has_more or offset + size > MAX_OFFSET:
        return ""
    return encode_page_token(scope, {"offset": offset + size, "rid": page.recommendation_id})


def _context(message: Any) -> Context:
    for text in ("channel", "device", "page"):
        if len(getattr(message, text)) > MAX_CONTEXT_TEXT:
            raise InvalidArgument(
                f"context.{text}", "TOO_LONG", f"must be at most {MAX_CONTEXT_TEXT} characters"
            )
    seeds: dict[str, tuple[str, ...]] = {}
    for field in ("item_ids", "cart_item_ids"):
        values = getattr(message, field)
        if len(values) > MAX_CART:
            raise InvalidArgument(
                f"context.{field}", "TOO_MANY_ENTRIES", f"takes at most {MAX_CART}"
            )
        seeds[field] = tuple(
            dict.fromkeys(
                check_resource_id(i, f"context.{field}[{n}]") for n, i in enumerate(values)
            )
        )
    request_time = None
    if message.HasField("request_time"):
        request_time = to_seconds(message.request_time)
        if not MIN_REQUEST_TIME <= request_time <= MAX_REQUEST_TIME:
            raise InvalidArgument(
                "context.request_time", "INVALID_REQUEST_TIME", "must be between 1970 and 2200"
            )
    return Context(
        message.channel,
        message.device,
        message.page,
        frozenset(seeds["cart_item_ids"]),
        request_time=request_time,
        item_ids=seeds["item_ids"],
        cart=seeds["cart_item_ids"],
    )


class RecommendationServicer(recommendation_service_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, recommendations: Recommendations) -> None:
        self.recommendations = recommendations

    def Recommend(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's method names)
        shop_id, customer_id = parse_customer(request.customer, "customer")
        size = page_size(request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        ctx = _context(request.context)
        # A token is only valid for the same customer and context it came with.
        scope = request.customer + "|" + request.context.SerializeToString(deterministic=True).hex()
        offset, rid = _cursor(request.page_token, scope)
        page = self.recommendations.recommend(shop_id, customer_id, ctx, size, offset, rid)
        response = recommendation_service_pb2.RecommendResponse(
            recommendation_id=page.recommendation_id,
            next_page_token=_next_token(scope, page, offset, size),
            experiment=f"shops/{shop_id}/experiments/{page.experiment_id}"
            if page.experiment_id
            else "",
            variant=page.variant_id,
        )
        _add_offers(response.offers, shop_id, page)
        if page.expire_time:
            response.list_expire_time.CopyFrom(to_timestamp(page.expire_time))
        return response

    def SimilarItems(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, item_id = parse_item(request.item, "item")
        customer_id = None
        if request.customer:
            customer_shop, customer_id = parse_customer(request.customer, "customer")
            if customer_shop != shop_id:
                raise InvalidArgument("customer", "WRONG_SHOP", f"must be under shops/{shop_id}")
        size = page_size(request.page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        scope = request.item + "|" + request.customer
        offset, rid = _cursor(request.page_token, scope)
        page = self.recommendations.similar_items(shop_id, item_id, customer_id, size, offset, rid)
        response = recommendation_service_pb2.SimilarItemsResponse(
            recommendation_id=page.recommendation_id,
            next_page_token=_next_token(scope, page, offset, size),
        )
        _add_offers(response.offers, shop_id, page)
        return response

    def Explain(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        item_shop, item_id = parse_item(request.item, "item")
        if item_shop != shop_id:
            raise InvalidArgument("item", "WRONG_SHOP", f"must be under shops/{shop_id}")
        found = explain(
            self.recommendations, shop_id, customer_id, item_id, _context(request.context)
        )
        return recommendation_service_pb2.RecommendationServiceExplainResponse(
            offer=_offer(shop_id, found.offer),
            offered=found.offered,
            rank=found.rank,
            contributions=[
                recommendation_service_pb2.OfferContribution(
                    item=item_name(shop_id, c.item_id), weight=c.weight
                )
                for c in found.contributions
            ],
            applied_preferences=found.applied_preferences,
        )
