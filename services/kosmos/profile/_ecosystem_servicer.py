"""ProfileService's customer-facing RPCs (issue 11) over gRPC: proto <-> `Ecosystem` and
request validation only. A mixin of `kosmos.profile.servicer.ProfileServicer`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    check_resource_id,
    customer_name,
    decode_page_token,
    encode_page_token,
    item_name,
    page_size,
    parse_customer,
)
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.common.validation import check_count
from kosmos.profile.ecosystem import MAX_PREFERENCES, Receipt, Taste
from kosmos.store.records import (
    Consent,
    ConsentPurpose,
    Customer,
    Exclusion,
    IdentityLink,
    Preference,
    PreferenceKind,
    PriceRange,
)
from kosmos.v1 import common_pb2, profile_service_pb2

if TYPE_CHECKING:
    from kosmos.profile.ecosystem import Ecosystem

MAX_VALUE = 200
MAX_SOURCE = 64


def _expire(message: Any) -> float | None:
    return to_seconds(message.expire_time) if message.HasField("expire_time") else None


def _enum(value: int, cls: type[PreferenceKind] | type[ConsentPurpose], field: str) -> Any:
    if value == 0:
        raise InvalidArgument(field, "UNSPECIFIED_ENUM", "must be set")
    if value not in cls._value2member_map_:
        raise InvalidArgument(field, "UNKNOWN_ENUM", f"unknown value {value}")
    return cls(value)


def _value(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    if len(value) > MAX_VALUE:
        raise InvalidArgument(field, "TOO_LONG", f"must be at most {MAX_VALUE} characters")
    return value


def _source(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "MISSING_FIELD", "is required: where the change came from")
    if len(value) > MAX_SOURCE:
        raise InvalidArgument(field, "TOO_LONG", f"must be at most {MAX_SOURCE} characters")
    return value


def preferences_from_proto(preferences: Any, field: str) -> list[Preference]:
    check_count(len(preferences), field, MAX_PREFERENCES)
    return [
        Preference(
            _enum(p.kind, PreferenceKind, f"{field}[{n}].kind"),
            _value(p.value, f"{field}[{n}].value"),
            _expire(p),
        )
        for n, p in enumerate(preferences)
    ]


def preferences_to_proto(preferences: Sequence[Preference]) -> list[common_pb2.Preference]:
    result = []
    for p in preferences:
        message = common_pb2.Preference(
            kind=common_pb2.PreferenceKind.ValueType(p.kind), value=p.value
        )
        if p.expire_time is not None:
            message.expire_time.CopyFrom(to_timestamp(p.expire_time))
        result.append(message)
    return result


def price_range_from_proto(message: Any, field: str) -> PriceRange:
    for bound in ("min_price", "max_price"):
        value = getattr(message, bound)
        if not math.isfinite(value) or value < 0:
            raise InvalidArgument(
                f"{field}.{bound}", "INVALID_PRICE", "must be a finite number, not negative"
            )
    if message.max_price and message.max_price < message.min_price:
        raise InvalidArgument(f"{field}.max_price", "INVALID_RANGE", "must not be below min_price")
    return PriceRange(message.min_price, message.max_price, _expire(message))


def price_range_to_proto(price_range: PriceRange) -> common_pb2.PriceRange:
    message = common_pb2.PriceRange(
        min_price=price_range.min_price, max_price=price_range.max_price
    )
    if price_range.expire_time is not None:
        message.expire_time.CopyFrom(to_timestamp(price_range.expire_time))
    return message


def _consent(c: Consent) -> common_pb2.Consent:
    message = common_pb2.Consent(
        purpose=common_pb2.ConsentPurpose.ValueType(c.purpose), granted=c.granted, source=c.source
    )
    if c.update_time is not None:
        message.update_time.CopyFrom(to_timestamp(c.update_time))
    return message


def exclusion_to_proto(e: Exclusion) -> common_pb2.Exclusion:
    message = common_pb2.Exclusion(kind=common_pb2.ExclusionKind.ValueType(e.kind), value=e.value)
    if e.expire_time is not None:
        message.expire_time.CopyFrom(to_timestamp(e.expire_time))
    return message


def customer_to_proto(
    customer: Customer, consents: list[Consent] | None = None
) -> common_pb2.Customer:
    message = common_pb2.Customer(
        name=customer_name(customer.shop_id, customer.customer_id),
        attributes=customer.attributes,
        exclusions=[exclusion_to_proto(e) for e in customer.exclusions],
        create_time=to_timestamp(customer.create_time),
        update_time=to_timestamp(customer.update_time),
        preferences=preferences_to_proto(customer.preferences),
        consents=[_consent(c) for c in consents or ()],
        anonymous=customer.anonymous,
    )
    if customer.price_range is not None:
        message.price_range.CopyFrom(price_range_to_proto(customer.price_range))
    return message


def _link(link: IdentityLink) -> profile_service_pb2.IdentityLink:
    return profile_service_pb2.IdentityLink(
        customer=customer_name(link.shop_id, link.customer_id),
        linked=customer_name(link.shop_id, link.linked_id),
        source=link.source,
        create_time=to_timestamp(link.create_time),
    )


def _taste(shop_id: str, taste: Taste) -> profile_service_pb2.Taste:
    return profile_service_pb2.Taste(
        kind=common_pb2.PreferenceKind.ValueType(taste.kind),
        value=taste.value,
        weight=taste.weight,
        evidence=[
            profile_service_pb2.TasteEvidence(
                item=item_name(shop_id, i.item_id),
                type=common_pb2.InteractionType.ValueType(i.type),
                event_time=to_timestamp(i.event_time),
            )
            for i in taste.evidence
        ],
    )


def receipt_to_proto(receipt: Receipt) -> profile_service_pb2.ErasureReceipt:
    e = receipt.erasure
    return profile_service_pb2.ErasureReceipt(
        customer=customer_name(receipt.shop_id, receipt.customer_id),
        erase_time=to_timestamp(e.erase_time),
        profile_removed=e.profile_removed,
        interactions_removed=e.interactions_removed,
        identity_links_removed=e.identity_links_removed,
        consents_removed=e.consents_removed,
        idempotency_records_removed=e.idempotency_records_removed,
        model_versions_removed=list(e.model_versions_removed),
        model_versions_pending=list(e.model_versions_pending),
        last_artifact_delete_time=to_timestamp(receipt.last_artifact_delete_time),
        erased_linked=[customer_name(receipt.shop_id, d) for d in receipt.erased_linked],
    )


def _same_shop(shop_id: str, name: str, field: str) -> str:
    other_shop, other = parse_customer(name, field)
    if other_shop != shop_id:
        raise InvalidArgument(field, "WRONG_SHOP", f"must be under shops/{shop_id}")
    return other


class EcosystemServicer:
    """The RPCs; the class using it sets ``ecosystem``."""

    ecosystem: Ecosystem

    def UndoDismissal(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        shop_id, customer_id = parse_customer(request.customer, "customer")
        item_id = check_resource_id(request.item_id, "item_id")
        count = self.ecosystem.undo_dismissal(shop_id, customer_id, item_id)
        return profile_service_pb2.UndoDismissalResponse(restored_count=count)

    def GetTastes(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        customer, tastes = self.ecosystem.tastes(shop_id, customer_id)
        now = time.time()

        def live(expire_time: float | None) -> bool:
            return expire_time is None or expire_time > now

        response = profile_service_pb2.GetTastesResponse(
            inferred=[_taste(shop_id, t) for t in tastes],
            stated=preferences_to_proto([p for p in customer.preferences if live(p.expire_time)]),
            exclusions=[exclusion_to_proto(e) for e in customer.exclusions if live(e.expire_time)],
        )
        if customer.price_range is not None and live(customer.price_range.expire_time):
            response.price_range.CopyFrom(price_range_to_proto(customer.price_range))
        return response

    def CorrectTaste(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        kind = _enum(request.kind, PreferenceKind, "kind")
        value = _value(request.value, "value")
        customer = self.ecosystem.correct_taste(shop_id, customer_id, kind, value, _expire(request))
        return profile_service_pb2.CorrectTasteResponse(customer=customer_to_proto(customer))

    def SetConsent(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        purpose = _enum(request.consent.purpose, ConsentPurpose, "consent.purpose")
        source = _source(request.consent.source, "consent.source")
        consent, unlinked = self.ecosystem.set_consent(
            shop_id, customer_id, purpose, request.consent.granted, source
        )
        return profile_service_pb2.SetConsentResponse(
            consent=_consent(consent), unlinked_count=unlinked
        )

    def ListConsentChanges(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.customer)
        before = int(cursor["before"]) if cursor and isinstance(cursor.get("before"), int) else None
        found = self.ecosystem.consent_changes(shop_id, customer_id, before, size + 1)
        token = ""
        if len(found) > size:
            token = encode_page_token(request.customer, {"before": found[size - 1].seq})
        return profile_service_pb2.ListConsentChangesResponse(
            changes=[_consent(c) for c in found[:size]], next_page_token=token
        )

    def LinkIdentity(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        linked = _same_shop(shop_id, request.linked, "linked")
        source = _source(request.source, "source")
        link = self.ecosystem.link(shop_id, customer_id, linked, source)
        return profile_service_pb2.LinkIdentityResponse(link=_link(link))

    def UnlinkIdentity(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        linked = _same_shop(shop_id, request.linked, "linked")
        removed = self.ecosystem.unlink(shop_id, customer_id, linked)
        return profile_service_pb2.UnlinkIdentityResponse(removed=removed)

    def ListIdentityLinks(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.customer, "customer")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.customer)
        after = str(cursor["after"]) if cursor else ""
        found = self.ecosystem.links(shop_id, customer_id, after, size + 1)
        token = ""
        if len(found) > size:
            token = encode_page_token(request.customer, {"after": found[size - 1].linked_id})
        return profile_service_pb2.ListIdentityLinksResponse(
            links=[_link(link) for link in found[:size]], next_page_token=token
        )

    def EraseCustomer(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, customer_id = parse_customer(request.name, "name")
        receipt = self.ecosystem.erase(shop_id, customer_id)
        return profile_service_pb2.EraseCustomerResponse(receipt=receipt_to_proto(receipt))
