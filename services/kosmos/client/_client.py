"""`KosmosClient`: a typed Python API over the Kosmos gRPC services."""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from kosmos.client._errors import UnavailableError, from_rpc_error
from kosmos.common import telemetry
from kosmos.common.auth import with_key
from kosmos.common.tls import ClientTls, open_channel
from kosmos.v1 import (
    api_key_service_pb2,
    api_key_service_pb2_grpc,
    catalog_service_pb2,
    catalog_service_pb2_grpc,
    common_pb2,
    experiment_service_pb2,
    experiment_service_pb2_grpc,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    profile_service_pb2,
    profile_service_pb2_grpc,
    recommendation_service_pb2,
    recommendation_service_pb2_grpc,
    rules_service_pb2,
    rules_service_pb2_grpc,
    shop_settings_service_pb2,
    shop_settings_service_pb2_grpc,
)

R = TypeVar("R")

# Calls that are safe to send twice: reads, upserts, and feedback (deduplicated by request_id).
_IDEMPOTENT = {
    "kosmos.v1.ProfileService": ("GetShop", "GetCustomer", "ListCustomers"),
    "kosmos.v1.CatalogService": ("UpsertItems", "GetItem", "ListItems"),
    "kosmos.v1.FeedbackService": ("RecordInteractions", "ListInteractions"),
    "kosmos.v1.RecommendationService": ("Recommend", "SimilarItems"),
    "kosmos.v1.ModelService": ("ListModelVersions",),
}
# gRPC's own retry policy (exponential backoff with jitter, within the call's deadline): a call
# that meets a restarting or overloaded server is resent with the same request, so the same
# request_id, up to gRPC's limit of 5 attempts.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": service, "method": method}
                    for service, methods in _IDEMPOTENT.items()
                    for method in methods
                ],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
CHANNEL_OPTIONS = (
    ("grpc.enable_retries", 1),
    ("grpc.service_config", SERVICE_CONFIG),
    # Reconnect soon after a restart rather than after gRPC's default 1 s, 1.6 s, 2.6 s...
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

InteractionType = common_pb2.InteractionType
ExclusionKind = common_pb2.ExclusionKind


@dataclass(frozen=True, slots=True)
class InteractionInput:
    """One interaction to record.

    Attributes:
        customer_id: The customer's id in the shop.
        item_id: The item's id in the shop's catalog.
        type: ``"view"``, ``"click"``, ``"add_to_cart"``, ``"purchase"``, ``"rating"`` or
            ``"dismiss"``.
        value: The rating (0-5) or the purchase quantity.
        event_time: When it happened; the service's clock when omitted.
        recommendation_id: The recommendation that led to it, if any.
        channel: The channel it happened on (``web``, ``app``...), if known.
        device: The device it happened on (``mobile``, ``desktop``...), if known.
    """

    customer_id: str
    item_id: str
    type: str
    value: float = 0.0
    event_time: datetime | None = None
    recommendation_id: str = ""
    channel: str = ""
    device: str = ""


@dataclass(frozen=True, slots=True)
class Recommendations:
    """A page of offers, the id to cite in feedback, and the next page's token."""

    offers: list[recommendation_service_pb2.Offer]
    recommendation_id: str
    next_page_token: str = ""
    experiment: str = ""
    variant: str = ""


@dataclass(slots=True)
class _Stubs:
    profile: Any = field(default=None)
    catalog: Any = field(default=None)
    feedback: Any = field(default=None)
    recommendation: Any = field(default=None)
    keys: Any = field(default=None)
    settings: Any = field(default=None)
    models: Any = field(default=None)
    rules: Any = field(default=None)
    experiments: Any = field(default=None)


def interaction_type(name: str) -> common_pb2.InteractionType.ValueType:
    """``"add_to_cart"`` → ``INTERACTION_TYPE_ADD_TO_CART``; ValueError for unknown names."""
    try:
        return common_pb2.InteractionType.Value(f"INTERACTION_TYPE_{name.upper()}")
    except ValueError:
        kinds = [
            n.removeprefix("INTERACTION_TYPE_").lower() for n in common_pb2.InteractionType.keys()
        ][1:]
        raise ValueError(f"unknown interaction type {name!r}; one of {kinds}") from None


class KosmosClient:
    """Talks to a Kosmos cluster. Thread-safe; reuse one per process.

    Every call takes an optional ``timeout`` (seconds; the client's default otherwise) that
    becomes the RPC's deadline, and raises a `KosmosRpcError` subclass on failure.

    Args:
        target: ``host:port`` of the all-in-one process, or of a gateway to every service.
        timeout: Default deadline per call, in seconds.
        targets: Per-service overrides: ``{"profile": ..., "feedback": ...,
            "recommendation": ...}`` when the services run as separate processes.
        api_key: The API key sent with every call (``authorization: Bearer``); None reads
            ``KOSMOS_API_KEY``.
        tls: Call over TLS, trusting ``tls.ca`` and presenting ``tls.cert`` for mutual TLS;
            None: plaintext.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 5.0,
        targets: Mapping[str, str] | None = None,
        api_key: str | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        self.timeout = timeout
        self._channels: dict[str, grpc.Channel] = {}
        self._raw: list[grpc.Channel] = []
        overrides = dict(targets or {})
        key = os.environ.get("KOSMOS_API_KEY", "") if api_key is None else api_key

        def channel(service: str) -> grpc.Channel:
            address = overrides.get(service, target)
            if address not in self._channels:
                raw = open_channel(address, tls, CHANNEL_OPTIONS)
                self._raw.append(raw)
                self._channels[address] = with_key(telemetry.instrument_channel(raw), key)
            return self._channels[address]

        profile_channel = channel("profile")
        self._stubs = _Stubs(
            profile=profile_service_pb2_grpc.ProfileServiceStub(profile_channel),
            catalog=catalog_service_pb2_grpc.CatalogServiceStub(profile_channel),
            settings=shop_settings_service_pb2_grpc.ShopSettingsServiceStub(profile_channel),
            feedback=feedback_service_pb2_grpc.FeedbackServiceStub(channel("feedback")),
            recommendation=recommendation_service_pb2_grpc.RecommendationServiceStub(
                channel("recommendation")
            ),
            keys=api_key_service_pb2_grpc.ApiKeyServiceStub(profile_channel),
            models=model_service_pb2_grpc.ModelServiceStub(channel("recommendation")),
            rules=rules_service_pb2_grpc.MerchantRulesServiceStub(profile_channel),
            experiments=experiment_service_pb2_grpc.ExperimentServiceStub(profile_channel),
        )

    def close(self) -> None:
        for ch in self._raw:
            ch.close()

    def __enter__(self) -> KosmosClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., R], request: Any, timeout: float | None) -> R:
        try:
            # wait_for_ready: while the server restarts the call waits (within its deadline)
            # for the channel to reconnect instead of failing at once.
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                wait_for_ready=True,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _pages(
        self, method: Callable[..., Any], request: Callable[[str], Any], timeout: float | None
    ) -> Iterator[Any]:
        """Every page of a list RPC (AIP-158), following ``next_page_token``."""
        token = ""
        while True:
            response = self._call(method, request(token), timeout)
            yield response
            token = response.next_page_token
            if not token:
                return

    # -- shops and customers -----------------------------------------------------------------

    def create_shop(
        self, shop_id: str, display_name: str = "", *, timeout: float | None = None
    ) -> common_pb2.Shop:
        request = profile_service_pb2.CreateShopRequest(
            shop_id=shop_id, shop=common_pb2.Shop(display_name=display_name)
        )
        response = self._call(self._stubs.profile.CreateShop, request, timeout)
        result: common_pb2.Shop = response.shop
        return result

    def get_shop(self, shop_id: str, *, timeout: float | None = None) -> common_pb2.Shop:
        request = profile_service_pb2.GetShopRequest(name=f"shops/{shop_id}")
        response = self._call(self._stubs.profile.GetShop, request, timeout)
        result: common_pb2.Shop = response.shop
        return result

    def create_customer(
        self,
        shop_id: str,
        customer_id: str,
        attributes: Mapping[str, str] | None = None,
        exclusions: Sequence[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> common_pb2.Customer:
        """Creates a profile; ``exclusions`` are (``"item"|"category"|"brand"``, value) pairs."""
        request = profile_service_pb2.CreateCustomerRequest(
            parent=f"shops/{shop_id}",
            customer_id=customer_id,
            customer=common_pb2.Customer(
                attributes=dict(attributes or {}), exclusions=_exclusions(exclusions)
            ),
        )
        response = self._call(self._stubs.profile.CreateCustomer, request, timeout)
        result: common_pb2.Customer = response.customer
        return result

    def create_customers(
        self,
        shop_id: str,
        customers: Sequence[common_pb2.Customer],
        *,
        replace: Sequence[str] = (),
        count_only: bool = False,
        timeout: float | None = None,
    ) -> tuple[list[common_pb2.Customer], int]:
        """Creates or replaces up to 1000 profiles at once (10,000 as columns:
        `create_customer_columns`; each with ``name`` set to
        ``shops/{shop}/customers/{customer}``); returns them and how many are new.

        Args:
            replace: For profiles that exist, the fields to replace (``attributes``,
                ``exclusions``); empty means both.
            count_only: Ask for the count alone (the list returned is empty): a bulk load
                does not need every profile echoed.
        """
        request = profile_service_pb2.CreateCustomersRequest(
            parent=f"shops/{shop_id}",
            customers=customers,
            update_mask=field_mask_pb2.FieldMask(paths=list(replace)),
            count_only=count_only,
        )
        response = self._call(self._stubs.profile.CreateCustomers, request, timeout)
        return list(response.customers), int(response.created_count)

    def create_customer_columns(
        self,
        shop_id: str,
        columns: profile_service_pb2.CustomerColumns,
        *,
        replace: Sequence[str] = (),
        timeout: float | None = None,
    ) -> int:
        """`create_customers` with the profiles as columns (entry n of each column is profile
        n), answering the count of new profiles alone: the fast form for bulk loads, which
        `kosmos import` sends."""
        request = profile_service_pb2.CreateCustomersRequest(
            parent=f"shops/{shop_id}",
            columns=columns,
            update_mask=field_mask_pb2.FieldMask(paths=list(replace)),
            count_only=True,
        )
        return int(self._call(self._stubs.profile.CreateCustomers, request, timeout).created_count)

    def get_customer(
        self, shop_id: str, customer_id: str, *, timeout: float | None = None
    ) -> common_pb2.Customer:
        request = profile_service_pb2.GetCustomerRequest(
            name=f"shops/{shop_id}/customers/{customer_id}"
        )
        response = self._call(self._stubs.profile.GetCustomer, request, timeout)
        result: common_pb2.Customer = response.customer
        return result

    def update_customer(
        self,
        shop_id: str,
        customer_id: str,
        *,
        attributes: Mapping[str, str] | None = None,
        exclusions: Sequence[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> common_pb2.Customer:
        """Replaces the attributes and/or exclusions given (None leaves a field as it is)."""
        paths = [
            p for p, v in (("attributes", attributes), ("exclusions", exclusions)) if v is not None
        ]
        request = profile_service_pb2.UpdateCustomerRequest(
            customer=common_pb2.Customer(
                name=f"shops/{shop_id}/customers/{customer_id}",
                attributes=dict(attributes or {}),
                exclusions=_exclusions(exclusions or ()),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        response = self._call(self._stubs.profile.UpdateCustomer, request, timeout)
        result: common_pb2.Customer = response.customer
        return result

    def delete_customer(
        self, shop_id: str, customer_id: str, *, timeout: float | None = None
    ) -> None:
        request = profile_service_pb2.DeleteCustomerRequest(
            name=f"shops/{shop_id}/customers/{customer_id}"
        )
        self._call(self._stubs.profile.DeleteCustomer, request, timeout)

    def list_customers(
        self, shop_id: str, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[common_pb2.Customer]:
        """Every customer of a shop, fetching pages as the iteration goes."""
        for response in self._pages(
            self._stubs.profile.ListCustomers,
            lambda token: profile_service_pb2.ListCustomersRequest(
                parent=f"shops/{shop_id}", page_size=page_size, page_token=token
            ),
            timeout,
        ):
            yield from response.customers

    # -- per-shop settings -------------------------------------------------------------------

    def get_shop_settings(
        self, shop_id: str, *, revision: int = 0, timeout: float | None = None
    ) -> shop_settings_service_pb2.ShopSettings:
        """A shop's own settings (revision 0: the current ones)."""
        request = shop_settings_service_pb2.GetShopSettingsRequest(
            name=f"shops/{shop_id}/settings", revision=revision
        )
        response = self._call(self._stubs.settings.GetShopSettings, request, timeout)
        result: shop_settings_service_pb2.ShopSettings = response.settings
        return result

    def update_shop_settings(
        self,
        shop_id: str,
        settings: shop_settings_service_pb2.ShopSettings,
        paths: Sequence[str],
        *,
        timeout: float | None = None,
    ) -> shop_settings_service_pb2.ShopSettings:
        """Replaces the fields named in ``paths`` (a field mask) with those of ``settings``;
        returns the new revision."""
        message = shop_settings_service_pb2.ShopSettings()
        message.CopyFrom(settings)
        message.name = f"shops/{shop_id}/settings"
        request = shop_settings_service_pb2.UpdateShopSettingsRequest(
            settings=message, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        )
        response = self._call(self._stubs.settings.UpdateShopSettings, request, timeout)
        result: shop_settings_service_pb2.ShopSettings = response.settings
        return result

    def list_shop_settings_revisions(
        self, shop_id: str, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[shop_settings_service_pb2.ShopSettings]:
        """Every stored revision of a shop's settings, newest first."""
        for response in self._pages(
            self._stubs.settings.ListShopSettingsRevisions,
            lambda token: shop_settings_service_pb2.ListShopSettingsRevisionsRequest(
                parent=f"shops/{shop_id}/settings", page_size=page_size, page_token=token
            ),
            timeout,
        ):
            yield from response.revisions

    # -- merchant rules and experiments (issue 13) -------------------------------------------

    def get_merchant_rules(
        self, shop_id: str, *, revision: int = 0, timeout: float | None = None
    ) -> rules_service_pb2.MerchantRules:
        """A shop's merchant rules (revision 0: the current ones)."""
        request = rules_service_pb2.GetMerchantRulesRequest(
            name=f"shops/{shop_id}/rules", revision=revision
        )
        response = self._call(self._stubs.rules.GetMerchantRules, request, timeout)
        result: rules_service_pb2.MerchantRules = response.rules
        return result

    def update_merchant_rules(
        self,
        shop_id: str,
        rules: Sequence[rules_service_pb2.MerchantRule],
        *,
        timeout: float | None = None,
    ) -> rules_service_pb2.MerchantRules:
        """Replaces the shop's whole rule set; returns it with its new revision."""
        request = rules_service_pb2.UpdateMerchantRulesRequest(
            rules=rules_service_pb2.MerchantRules(name=f"shops/{shop_id}/rules", rules=rules)
        )
        response = self._call(self._stubs.rules.UpdateMerchantRules, request, timeout)
        result: rules_service_pb2.MerchantRules = response.rules
        return result

    def create_experiment(
        self,
        shop_id: str,
        experiment_id: str,
        experiment: experiment_service_pb2.Experiment,
        *,
        timeout: float | None = None,
    ) -> experiment_service_pb2.Experiment:
        """Starts an experiment (at its ``start_time``, or now)."""
        request = experiment_service_pb2.CreateExperimentRequest(
            parent=f"shops/{shop_id}", experiment_id=experiment_id, experiment=experiment
        )
        response = self._call(self._stubs.experiments.CreateExperiment, request, timeout)
        result: experiment_service_pb2.Experiment = response.experiment
        return result

    def end_experiment(
        self, shop_id: str, experiment_id: str, *, timeout: float | None = None
    ) -> experiment_service_pb2.Experiment:
        request = experiment_service_pb2.EndExperimentRequest(
            name=f"shops/{shop_id}/experiments/{experiment_id}"
        )
        response = self._call(self._stubs.experiments.EndExperiment, request, timeout)
        result: experiment_service_pb2.Experiment = response.experiment
        return result

    def experiment_report(
        self,
        shop_id: str,
        experiment_id: str,
        *,
        confidence_level: float = 0.0,
        timeout: float | None = None,
    ) -> experiment_service_pb2.GetExperimentReportResponse:
        """Rates and revenue per variant with intervals and tests against the control."""
        request = experiment_service_pb2.GetExperimentReportRequest(
            name=f"shops/{shop_id}/experiments/{experiment_id}",
            confidence_level=confidence_level,
        )
        result: experiment_service_pb2.GetExperimentReportResponse = self._call(
            self._stubs.experiments.GetExperimentReport, request, timeout
        )
        return result

    def record_impressions(
        self,
        shop_id: str,
        customer_id: str,
        recommendation_id: str,
        item_ids: Sequence[str],
        *,
        event_time: datetime | None = None,
        timeout: float | None = None,
    ) -> int:
        """Records the offers of a served list a page showed; returns how many were new."""
        impression = feedback_service_pb2.Impression(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            recommendation_id=recommendation_id,
            item_ids=list(item_ids),
        )
        if event_time is not None:
            impression.event_time.FromDatetime(event_time)
        request = feedback_service_pb2.RecordImpressionsRequest(
            parent=f"shops/{shop_id}", impressions=[impression]
        )
        response = self._call(self._stubs.feedback.RecordImpressions, request, timeout)
        return int(response.recorded_count)

    # -- catalog -----------------------------------------------------------------------------

    def upsert_items(
        self,
        shop_id: str,
        items: Sequence[common_pb2.Item],
        *,
        count_only: bool = False,
        timeout: float | None = None,
    ) -> list[common_pb2.Item]:
        """Creates or replaces items; each item's ``name`` is ``shops/{shop}/items/{item}``.
        Returns them as stored, or nothing with ``count_only`` (a bulk load does not need
        every item echoed; all of them are stored when the call returns)."""
        request = catalog_service_pb2.UpsertItemsRequest(
            parent=f"shops/{shop_id}", items=items, count_only=count_only
        )
        return list(self._call(self._stubs.catalog.UpsertItems, request, timeout).items)

    def upsert_item_columns(
        self,
        shop_id: str,
        columns: catalog_service_pb2.ItemColumns,
        *,
        timeout: float | None = None,
    ) -> None:
        """`upsert_items` with the items as columns (entry n of each column is item n) and
        nothing echoed: the fast form for catalog loads, which `kosmos import` sends. All of
        them are stored when the call returns."""
        request = catalog_service_pb2.UpsertItemsRequest(
            parent=f"shops/{shop_id}", columns=columns, count_only=True
        )
        self._call(self._stubs.catalog.UpsertItems, request, timeout)

    def get_item(
        self, shop_id: str, item_id: str, *, timeout: float | None = None
    ) -> common_pb2.Item:
        request = catalog_service_pb2.GetItemRequest(name=f"shops/{shop_id}/items/{item_id}")
        response = self._call(self._stubs.catalog.GetItem, request, timeout)
        result: common_pb2.Item = response.item
        return result

    # -- feedback ----------------------------------------------------------------------------

    def record_interactions(
        self,
        shop_id: str,
        interactions: Sequence[InteractionInput],
        *,
        request_id: str | None = None,
        retries: int = 3,
        timeout: float | None = None,
    ) -> list[common_pb2.Interaction]:
        """Records a batch durably. Retries UNAVAILABLE with the same request id, which the
        service deduplicates, so a retry never stores anything twice: gRPC's retry policy
        inside each attempt's deadline, then up to ``retries`` more attempts after an
        exponential, fully jittered backoff (0.1 s, 0.2 s, 0.4 s... at most 2 s)."""
        messages = []
        for i in interactions:
            message = common_pb2.Interaction(
                customer=f"shops/{shop_id}/customers/{i.customer_id}",
                item_id=i.item_id,
                type=interaction_type(i.type),
                value=i.value,
                recommendation_id=i.recommendation_id,
                channel=i.channel,
                device=i.device,
            )
            if i.event_time is not None:
                message.event_time.FromDatetime(i.event_time)
            messages.append(message)
        request = feedback_service_pb2.RecordInteractionsRequest(
            parent=f"shops/{shop_id}",
            request_id=request_id or str(uuid.uuid4()),
            interactions=messages,
        )
        for attempt in range(retries + 1):
            try:
                response = self._call(self._stubs.feedback.RecordInteractions, request, timeout)
                return list(response.interactions)
            except UnavailableError:
                if attempt == retries:
                    raise
                time.sleep(random.uniform(0, min(2.0, 0.1 * 2**attempt)))  # backoff, not a sync
        raise AssertionError("unreachable")  # pragma: no cover

    def import_interactions(
        self,
        shop_id: str,
        interactions: Sequence[common_pb2.Interaction],
        *,
        request_id: str,
        retries: int = 3,
        timeout: float | None = None,
    ) -> tuple[int, bool]:
        """Imports up to 10000 interactions (history back-fill) in one transaction. Retries
        UNAVAILABLE with the same ``request_id``; returns the count stored and whether the
        request id had been imported before (a replay stores nothing)."""
        return self._import(
            feedback_service_pb2.ImportInteractionsRequest(
                parent=f"shops/{shop_id}", request_id=request_id, interactions=interactions
            ),
            retries,
            timeout,
        )

    def import_interaction_columns(
        self,
        shop_id: str,
        columns: feedback_service_pb2.InteractionColumns,
        *,
        request_id: str,
        retries: int = 3,
        timeout: float | None = None,
    ) -> tuple[int, bool]:
        """`import_interactions` with the interactions as columns (entry n of each column is
        interaction n): the fast form for history back-fills, which `kosmos import` sends."""
        return self._import(
            feedback_service_pb2.ImportInteractionsRequest(
                parent=f"shops/{shop_id}", request_id=request_id, columns=columns
            ),
            retries,
            timeout,
        )

    def _import(
        self,
        request: feedback_service_pb2.ImportInteractionsRequest,
        retries: int,
        timeout: float | None,
    ) -> tuple[int, bool]:
        for attempt in range(retries + 1):
            try:
                response = self._call(self._stubs.feedback.ImportInteractions, request, timeout)
                return int(response.imported_count), bool(response.replayed)
            except UnavailableError:
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def list_interactions(
        self, shop_id: str, customer_id: str, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[common_pb2.Interaction]:
        """A customer's interactions, newest first, fetching pages as the iteration goes."""
        for response in self._pages(
            self._stubs.feedback.ListInteractions,
            lambda token: feedback_service_pb2.ListInteractionsRequest(
                parent=f"shops/{shop_id}/customers/{customer_id}",
                page_size=page_size,
                page_token=token,
            ),
            timeout,
        ):
            yield from response.interactions

    # -- recommendations ---------------------------------------------------------------------

    def recommend(
        self,
        shop_id: str,
        customer_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        channel: str = "",
        device: str = "",
        page: str = "",
        cart_item_ids: Sequence[str] = (),
        item_ids: Sequence[str] = (),
        request_time: datetime | None = None,
        timeout: float | None = None,
    ) -> Recommendations:
        """A page of offers for one customer in one context.

        ``page`` is the placement (``home``, ``product``, ``cart``, ``buy_again``...),
        ``item_ids`` the items on the page, and ``request_time`` the "now" to recommend for.
        """
        ctx = recommendation_service_pb2.RecommendationContext(
            channel=channel,
            device=device,
            page=page,
            cart_item_ids=list(cart_item_ids),
            item_ids=list(item_ids),
        )
        if request_time is not None:
            ctx.request_time.FromDatetime(request_time)
        request = recommendation_service_pb2.RecommendRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            context=ctx,
            page_size=page_size,
            page_token=page_token,
        )
        response = self._call(self._stubs.recommendation.Recommend, request, timeout)
        return Recommendations(
            list(response.offers),
            response.recommendation_id,
            response.next_page_token,
            response.experiment,
            response.variant,
        )

    def similar_items(
        self,
        shop_id: str,
        item_id: str,
        *,
        customer_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Recommendations:
        """Items like ``item_id``; with ``customer_id`` their exclusions apply."""
        request = recommendation_service_pb2.SimilarItemsRequest(
            item=f"shops/{shop_id}/items/{item_id}",
            customer=f"shops/{shop_id}/customers/{customer_id}" if customer_id else "",
            page_size=page_size,
            page_token=page_token,
        )
        response = self._call(self._stubs.recommendation.SimilarItems, request, timeout)
        return Recommendations(
            list(response.offers), response.recommendation_id, response.next_page_token
        )

    def create_api_key(
        self,
        scope: str,
        shop_id: str = "",
        display_name: str = "",
        *,
        timeout: float | None = None,
    ) -> api_key_service_pb2.CreateApiKeyResponse:
        """Creates a key (``storefront``, ``admin`` or ``operator``); needs an operator key.

        The response's ``secret`` is the key to hand out; it is not shown again.
        """
        request = api_key_service_pb2.CreateApiKeyRequest(
            api_key=api_key_service_pb2.ApiKey(
                shop=f"shops/{shop_id}" if shop_id else "",
                scope=api_key_service_pb2.ApiKeyScope.Value(f"API_KEY_SCOPE_{scope.upper()}"),
                display_name=display_name,
            )
        )
        response: api_key_service_pb2.CreateApiKeyResponse = self._call(
            self._stubs.keys.CreateApiKey, request, timeout
        )
        return response

    def list_api_keys(
        self, shop_id: str = "", *, timeout: float | None = None
    ) -> Iterator[api_key_service_pb2.ApiKey]:
        """Every key (or one shop's), without secrets."""
        token = ""
        while True:
            response = self._call(
                self._stubs.keys.ListApiKeys,
                api_key_service_pb2.ListApiKeysRequest(
                    shop=f"shops/{shop_id}" if shop_id else "", page_token=token
                ),
                timeout,
            )
            yield from response.api_keys
            token = response.next_page_token
            if not token:
                return

    def revoke_api_key(
        self, key_id: str, *, timeout: float | None = None
    ) -> api_key_service_pb2.ApiKey:
        """Revokes ``key_id`` (``apiKeys/{key}`` or the bare id)."""
        name = key_id if key_id.startswith("apiKeys/") else f"apiKeys/{key_id}"
        response = self._call(
            self._stubs.keys.RevokeApiKey,
            api_key_service_pb2.RevokeApiKeyRequest(name=name),
            timeout,
        )
        key: api_key_service_pb2.ApiKey = response.api_key
        return key

    # -- the customer's own world (issue 11) -------------------------------------------------

    def set_preferences(
        self,
        shop_id: str,
        customer_id: str,
        preferences: Sequence[tuple[str, str]],
        *,
        price_range: tuple[float, float] | None = None,
        timeout: float | None = None,
    ) -> common_pb2.Customer:
        """Replaces the stated preferences, ``(kind, value)`` with kind ``liked_category``,
        ``disliked_category``, ``liked_brand`` or ``disliked_brand``, and the price range
        (``(low, high)``, 0 for no bound; None: none)."""
        message = common_pb2.Customer(
            name=f"shops/{shop_id}/customers/{customer_id}",
            preferences=[
                common_pb2.Preference(kind=_enum("PREFERENCE_KIND", kind), value=value)
                for kind, value in preferences
            ],
        )
        if price_range is not None:
            message.price_range.CopyFrom(
                common_pb2.PriceRange(min_price=price_range[0], max_price=price_range[1])
            )
        request = profile_service_pb2.UpdateCustomerRequest(
            customer=message,
            update_mask=field_mask_pb2.FieldMask(paths=["preferences", "price_range"]),
        )
        result: common_pb2.Customer = self._call(
            self._stubs.profile.UpdateCustomer, request, timeout
        ).customer
        return result

    def undo_dismissal(
        self, shop_id: str, customer_id: str, item_id: str, *, timeout: float | None = None
    ) -> int:
        """Takes back the customer's dismissals of ``item_id``; returns how many."""
        request = profile_service_pb2.UndoDismissalRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}", item_id=item_id
        )
        return int(self._call(self._stubs.profile.UndoDismissal, request, timeout).restored_count)

    def get_tastes(
        self, shop_id: str, customer_id: str, *, timeout: float | None = None
    ) -> profile_service_pb2.GetTastesResponse:
        """What Kosmos infers the customer likes, with evidence, beside what they stated."""
        request = profile_service_pb2.GetTastesRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}"
        )
        result: profile_service_pb2.GetTastesResponse = self._call(
            self._stubs.profile.GetTastes, request, timeout
        )
        return result

    def correct_taste(
        self, shop_id: str, customer_id: str, kind: str, value: str, *, timeout: float | None = None
    ) -> common_pb2.Customer:
        """ "Not interested any more" in a ``category`` or ``brand`` (``kind``)."""
        request = profile_service_pb2.CorrectTasteRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            kind=_enum("PREFERENCE_KIND", f"liked_{kind}"),
            value=value,
        )
        result: common_pb2.Customer = self._call(
            self._stubs.profile.CorrectTaste, request, timeout
        ).customer
        return result

    def set_consent(
        self,
        shop_id: str,
        customer_id: str,
        purpose: str,
        granted: bool,
        source: str,
        *,
        timeout: float | None = None,
    ) -> common_pb2.Consent:
        """Records consent for ``personalization``, ``training`` or ``cross_device_linking``."""
        request = profile_service_pb2.SetConsentRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            consent=common_pb2.Consent(
                purpose=_enum("CONSENT_PURPOSE", purpose), granted=granted, source=source
            ),
        )
        result: common_pb2.Consent = self._call(
            self._stubs.profile.SetConsent, request, timeout
        ).consent
        return result

    def list_consent_changes(
        self, shop_id: str, customer_id: str, *, timeout: float | None = None
    ) -> list[common_pb2.Consent]:
        """Every consent change of the customer, newest first."""
        changes: list[common_pb2.Consent] = []
        for page in self._pages(
            self._stubs.profile.ListConsentChanges,
            lambda token: profile_service_pb2.ListConsentChangesRequest(
                customer=f"shops/{shop_id}/customers/{customer_id}", page_token=token
            ),
            timeout,
        ):
            changes.extend(page.changes)
        return changes

    def link_identity(
        self,
        shop_id: str,
        customer_id: str,
        linked_id: str,
        source: str,
        *,
        timeout: float | None = None,
    ) -> profile_service_pb2.IdentityLink:
        """Links a device or ``anon-`` id to the customer."""
        request = profile_service_pb2.LinkIdentityRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            linked=f"shops/{shop_id}/customers/{linked_id}",
            source=source,
        )
        link: profile_service_pb2.IdentityLink = self._call(
            self._stubs.profile.LinkIdentity, request, timeout
        ).link
        return link

    def unlink_identity(
        self, shop_id: str, customer_id: str, linked_id: str, *, timeout: float | None = None
    ) -> bool:
        request = profile_service_pb2.UnlinkIdentityRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            linked=f"shops/{shop_id}/customers/{linked_id}",
        )
        return bool(self._call(self._stubs.profile.UnlinkIdentity, request, timeout).removed)

    def erase_customer(
        self, shop_id: str, customer_id: str, *, timeout: float | None = None
    ) -> profile_service_pb2.ErasureReceipt:
        """Erases the customer everywhere; returns the receipt."""
        request = profile_service_pb2.EraseCustomerRequest(
            name=f"shops/{shop_id}/customers/{customer_id}"
        )
        receipt: profile_service_pb2.ErasureReceipt = self._call(
            self._stubs.profile.EraseCustomer, request, timeout
        ).receipt
        return receipt

    def explain(
        self, shop_id: str, customer_id: str, item_id: str, *, timeout: float | None = None
    ) -> recommendation_service_pb2.RecommendationServiceExplainResponse:
        """One item's offer for the customer in full: reason, rank, contributions."""
        request = recommendation_service_pb2.RecommendationServiceExplainRequest(
            customer=f"shops/{shop_id}/customers/{customer_id}",
            item=f"shops/{shop_id}/items/{item_id}",
        )
        result: recommendation_service_pb2.RecommendationServiceExplainResponse = self._call(
            self._stubs.recommendation.Explain, request, timeout
        )
        return result

    # -- models ------------------------------------------------------------------------------

    def list_model_versions(
        self, shop_id: str, recommender: str = "", *, timeout: float | None = None
    ) -> list[model_service_pb2.ModelVersion]:
        """Every stored version of the shop's routed recommenders (or of one), oldest first."""
        versions: list[model_service_pb2.ModelVersion] = []
        for page in self._pages(
            self._stubs.models.ListModelVersions,
            lambda token: model_service_pb2.ListModelVersionsRequest(
                parent=f"shops/{shop_id}", recommender=recommender, page_token=token
            ),
            timeout,
        ):
            versions.extend(page.model_versions)
        return versions

    def train_models(
        self, shop_id: str, *, force: bool = False, timeout: float | None = None
    ) -> list[str]:
        """Starts training the shop's routed recommenders; returns their names at once."""
        request = model_service_pb2.TrainModelsRequest(parent=f"shops/{shop_id}", force=force)
        return list(self._call(self._stubs.models.TrainModels, request, timeout).recommenders)

    def rollback_model(
        self, shop_id: str, recommender: str, version: str = "", *, timeout: float | None = None
    ) -> model_service_pb2.ModelVersion:
        """Serves ``version`` (default: the one before the serving one); returns it."""
        request = model_service_pb2.RollbackModelRequest(
            name=f"shops/{shop_id}/recommenders/{recommender}", version=version
        )
        response: model_service_pb2.RollbackModelResponse = self._call(
            self._stubs.models.RollbackModel, request, timeout
        )
        return response.model_version


def _exclusions(pairs: Sequence[tuple[str, str]]) -> list[common_pb2.Exclusion]:
    result = []
    for kind, value in pairs:
        try:
            enum = common_pb2.ExclusionKind.Value(f"EXCLUSION_KIND_{kind.upper()}")
        except ValueError:
            raise ValueError(
                f"unknown exclusion kind {kind!r}; one of item, category, brand"
            ) from None
        result.append(common_pb2.Exclusion(kind=enum, value=value))
    return result


def _enum(prefix: str, name: str) -> Any:
    """``kosmos.v1`` enum value ``{prefix}_{NAME}``; ValueError naming the choices."""
    enum = {
        "PREFERENCE_KIND": common_pb2.PreferenceKind,
        "CONSENT_PURPOSE": common_pb2.ConsentPurpose,
    }[prefix]
    try:
        return enum.Value(f"{prefix}_{name.upper()}")
    except ValueError:
        choices = [n.removeprefix(prefix + "_").lower() for n in enum.keys()][1:]
        raise ValueError(f"unknown {prefix.lower()} {name!r}; one of {choices}") from None
