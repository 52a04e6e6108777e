"""``oteldemo.RecommendationService`` onto Kosmos's ``Recommend`` and ``SimilarItems``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1.health import HealthServicer

from kosmos.client import KosmosClient, KosmosRpcError, NotFoundError
from kosmos.common.server import Service, build_server
from kosmos.oteldemo import demo_pb2, demo_pb2_grpc
from kosmos.v1 import recommendation_service_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = "oteldemo.RecommendationService"
DEFAULT_LISTEN = "0.0.0.0:9001"
DEFAULT_SHOP = "otel-demo"
MAX_RESPONSES = 5
"""As many products as the demo's own service answers (its frontend shows four)."""

# The demo's frontend sends a single product id as a string that its gRPC client splits into
# characters; the demo's own service joins them back on ",". So do we.


def product_ids(raw: Sequence[str]) -> list[str]:
    ids = list(raw)
    if ids and all(len(x) <= 1 for x in ids):
        ids = "".join(ids).split(",")
    return [x.strip() for x in ids if x.strip()]


def _item_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class RecommendationAdapter(demo_pb2_grpc.RecommendationServiceServicer):
    """Answers the demo from one Kosmos shop, with the storefront key ``client`` sends.

    Args:
        client: A Kosmos client with a storefront key of ``shop``.
        shop: The Kosmos shop whose items are the demo's products.
        timeout: The most one Kosmos call may take (less when the demo's call has less left).
    """

    def __init__(self, client: KosmosClient, shop: str, timeout: float = 2.0) -> None:
        self._client = client
        self._shop = shop
        self._timeout = timeout

    def ListRecommendations(
        self, request: demo_pb2.ListRecommendationsRequest, context: grpc.ServicerContext
    ) -> demo_pb2.ListRecommendationsResponse:
        in_view = product_ids(request.product_ids)
        left = context.time_remaining()
        timeout = self._timeout if left is None else max(min(left, self._timeout), 0.001)
        try:
            if request.user_id:
                try:
                    answer = self._client.recommend(
                        self._shop,
                        request.user_id,
                        page_size=MAX_RESPONSES,
                        channel="web",
                        page="product" if in_view else "home",
                        item_ids=in_view,
                        timeout=timeout,
                    )
                    return self._response(answer.offers, in_view)
                except NotFoundError:
                    pass  # a shopper Kosmos has not met yet: what goes with the page
            if not in_view:
                return demo_pb2.ListRecommendationsResponse()
            similar = self._client.similar_items(
                self._shop, in_view[0], page_size=MAX_RESPONSES + len(in_view), timeout=timeout
            )
            return self._response(similar.offers, in_view)
        except KosmosRpcError as error:
            context.abort(error.code, error.message)
            raise AssertionError("abort returned") from error  # pragma: no cover

    @staticmethod
    def _response(
        offers: Sequence[recommendation_service_pb2.Offer], in_view: Sequence[str]
    ) -> demo_pb2.ListRecommendationsResponse:
        seen = set(in_view)
        ids = [_item_id(o.item) for o in offers]
        return demo_pb2.ListRecommendationsResponse(
            product_ids=[i for i in ids if i not in seen][:MAX_RESPONSES]
        )


def build_adapter(
    listen: str, client: KosmosClient, shop: str, *, workers: int = 8
) -> tuple[grpc.Server, int, HealthServicer]:
    """A server for the demo's frontend: no API key from it (the demo sends none), health,
    tracing and the error mapping of every Kosmos server (`kosmos.common.server.build_server`).
    """
    adapter = RecommendationAdapter(client, shop)
    service = Service(
        SERVICE_NAME,
        lambda server: demo_pb2_grpc.add_RecommendationServiceServicer_to_server(adapter, server),
    )
    return build_server(listen, workers, [service], reflection_enabled=True)
