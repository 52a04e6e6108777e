"""Who may call what: API keys, their scopes, and the interceptor that checks every RPC.

A key is ``ksk.<key id>.<secret>``, sent as ``authorization: Bearer <key>``. The store keeps
the key id, its shop, its scope and the SHA-256 of the secret; the secret is shown once, at
creation. Secrets are 256 random bits, so a plain hash is enough (no password stretching).

Scopes nest: ``storefront`` < ``admin`` < ``operator``. A storefront or admin key acts on its
own shop only; an operator key acts on every shop, creates shops and manages keys. Each RPC
needs the scope `METHOD_SCOPES` gives it. A method missing from that table, such as a new RPC
added without thinking about access, needs an operator key: nothing is ever open by accident.
Health is open (probes carry no key), and so is reflection when it is enabled.

A missing, malformed, unknown or revoked key is UNAUTHENTICATED. A key naming another shop, or
a call beyond its scope, is PERMISSION_DENIED, decided before the request reaches the service,
so the answer is the same whether the other shop exists or not. The shops a request touches
are read from every resource-name field in it (``parent``, ``name``, ``customer``, ``item``,
``shop``, nested and repeated ones included); a raw-bytes handler, whose request cannot be
read, is checked for scope only, so such a method must stay operator-only.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import grpc
from google.protobuf import empty_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry import trace

from kosmos.common.errors import PermissionDenied, Unauthenticated
from kosmos.store.events import API_KEY, RESYNC, Event
from kosmos.store.records import ApiKey

_CACHE_LIMIT = 10_000
"""Keys one process keeps at most (then it starts over)."""

KEY_PREFIX = "ksk"


class Scope(IntEnum):
    """What a key may do; a higher scope may do everything a lower one may."""

    STOREFRONT = 1
    ADMIN = 2
    OPERATOR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Scope:
        return cls[label.upper()]


_P = "/kosmos.v1.ProfileService/"
_C = "/kosmos.v1.CatalogService/"
_F = "/kosmos.v1.FeedbackService/"
_R = "/kosmos.v1.RecommendationService/"
_S = "/kosmos.v1.ShopSettingsService/"
_M = "/kosmos.v1.ModelService/"
_MR = "/kosmos.v1.MerchantRulesService/"
_E = "/kosmos.v1.ExperimentService/"

METHOD_SCOPES: dict[str, Scope] = {
    _R + "Recommend": Scope.STOREFRONT,
    _R + "SimilarItems": Scope.STOREFRONT,
    _F + "RecordInteractions": Scope.STOREFRONT,
    _F + "ListInteractions": Scope.ADMIN,
    _P + "GetShop": Scope.ADMIN,
    _P + "CreateCustomer": Scope.ADMIN,
    _P + "GetCustomer": Scope.ADMIN,
    _P + "UpdateCustomer": Scope.ADMIN,
    _P + "DeleteCustomer": Scope.ADMIN,
    _P + "ListCustomers": Scope.ADMIN,
    _C + "UpsertItems": Scope.ADMIN,
    _C + "GetItem": Scope.ADMIN,
    _C + "ListItems": Scope.ADMIN,
    _P + "CreateCustomers": Scope.ADMIN,
    _F + "ImportInteractions": Scope.ADMIN,
    _S + "GetShopSettings": Scope.ADMIN,
    _S + "UpdateShopSettings": Scope.ADMIN,
    _S + "ListShopSettingsRevisions": Scope.ADMIN,
    _M + "ListModelVersions": Scope.ADMIN,
    _M + "TrainModels": Scope.ADMIN,
    _M + "RollbackModel": Scope.ADMIN,
    _F + "RecordImpressions": Scope.STOREFRONT,
    _MR + "GetMerchantRules": Scope.ADMIN,
    _MR + "UpdateMerchantRules": Scope.ADMIN,
    _MR + "ListMerchantRulesRevisions": Scope.ADMIN,
    _E + "CreateExperiment": Scope.ADMIN,
    _E + "GetExperiment": Scope.ADMIN,
    _E + "ListExperiments": Scope.ADMIN,
    _E + "EndExperiment": Scope.ADMIN,
    _E + "GetExperimentReport": Scope.ADMIN,
    _P + "CreateShop": Scope.OPERATOR,
    # Issue 11: what a shopper does about their own world goes through the storefront; the
    # audit trail and erasure need the shop's admin.
    _R + "Explain": Scope.STOREFRONT,
    _P + "UndoDismissal": Scope.STOREFRONT,
    _P + "GetTastes": Scope.STOREFRONT,
    _P + "CorrectTaste": Scope.STOREFRONT,
    _P + "SetConsent": Scope.STOREFRONT,
    _P + "LinkIdentity": Scope.STOREFRONT,
    _P + "UnlinkIdentity": Scope.STOREFRONT,
    _P + "ListConsentChanges": Scope.ADMIN,
    _P + "ListIdentityLinks": Scope.ADMIN,
    _P + "EraseCustomer": Scope.ADMIN,
}
"""The scope each RPC needs. Anything not listed needs `Scope.OPERATOR`."""

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Services any caller may use: probes carry no key; reflection is off unless enabled."""

# Fields whose value is a resource name (``shops/{shop}/...``): the shops a request touches.
_NAME_FIELDS = frozenset({"name", "parent", "customer", "item", "shop"})


def required_scope(method: str) -> Scope:
    return METHOD_SCOPES.get(method, Scope.OPERATOR)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key id, the full key to hand out, the hash to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}.{key_id}.{secret}", hash_secret(secret)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id (``bootstrap`` for the bootstrap key), shop and scope."""

    key_id: str
    shop_id: str
    scope: Scope


class KeyLookup(Protocol):
    def get_api_key(self, key_id: str) -> ApiKey | None: ...


def _shops(message: Message) -> Iterator[str]:
    """The shop ids named anywhere in ``message`` (``shops/{shop}/...`` in a name field)."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue
            values = value if field.is_repeated else [value]
            for child in values:
                yield from _shops(child)
        elif field.type == FieldDescriptor.TYPE_STRING and field.name in _NAME_FIELDS:
            values = value if field.is_repeated else [value]
            for text in values:
                parts = text.split("/", 2)
                if len(parts) >= 2 and parts[0] == "shops":
                    yield parts[1]


class Authorizer:
    """Authenticates a bearer key and decides whether it may make a call.

    A key looked up is kept ``cache_seconds`` (`KOSMOS_AUTH_CACHE_SECONDS`): one store read per
    key and second instead of one per call. A revocation this process hears of (its own, or a
    replica's over the store's events) drops the key at once.
    """

    def __init__(
        self,
        keys: KeyLookup,
        bootstrap_key: str = "",
        cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._bootstrap = hash_secret(bootstrap_key) if bootstrap_key else ""
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        subscribe = getattr(keys, "subscribe", None)
        if cache_seconds > 0 and subscribe is not None:
            subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind == API_KEY:
            self._cache.pop(event.key, None)
        elif event.kind == RESYNC:
            self._cache.clear()

    def _lookup(self, key_id: str) -> ApiKey | None:
        if self._cache_seconds <= 0:
            return self._keys.get_api_key(key_id)
        now = self._clock()
        held = self._cache.get(key_id)
        if held is not None and held[0] > now:
            return held[1]
        key = self._keys.get_api_key(key_id)
        if key is not None:  # unknown ids are not kept: a flood of made-up ids fills nothing
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_id] = (now + self._cache_seconds, key)
        return key

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``. Raises Unauthenticated."""
        if not token:
            raise Unauthenticated(
                "MISSING_API_KEY", "send an API key as 'authorization: Bearer <key>'"
            )
        if self._bootstrap and hmac.compare_digest(hash_secret(token), self._bootstrap):
            return Principal("bootstrap", "", Scope.OPERATOR)
        prefix, _, rest = token.partition(".")
        key_id, _, secret = rest.partition(".")
        key = self._lookup(key_id) if prefix == KEY_PREFIX and secret else None
        if (
            key is None
            or not hmac.compare_digest(hash_secret(secret), key.secret_hash)
            or key.revoke_time is not None
        ):
            raise Unauthenticated("INVALID_API_KEY", "the API key is unknown or revoked")
        return Principal(key.key_id, key.shop_id, Scope.parse(key.scope))

    @staticmethod
    def authorize(principal: Principal, method: str, request: Message) -> None:
        """Raises PermissionDenied unless ``principal`` may call ``method`` with ``request``."""
        if principal.scope < required_scope(method):
            raise PermissionDenied("SCOPE_DENIED", "this API key may not call this method")
        if principal.scope == Scope.OPERATOR:
            return
        for shop in _shops(request):
            if shop != principal.shop_id:
                raise PermissionDenied("SHOP_DENIED", "this API key may not act on that shop")


def bearer(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Checks the caller's key before every RPC outside `OPEN_SERVICES`.

    Sits inside `kosmos.common.server.ErrorInterceptor`, so its errors become rich statuses.
    """

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        handler = continuation(details)
        method: str = details.method
        if handler is None or method.strip("/").split("/")[0] in OPEN_SERVICES:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._wrap(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._wrap_stream(handler.stream_unary, method))
        raise RuntimeError(f"{method}: streaming responses are not guarded")  # pragma: no cover

    def _principal(self, context: grpc.ServicerContext) -> Principal:
        principal = self._authorizer.authenticate(bearer(context.invocation_metadata()))
        trace.get_current_span().set_attribute("kosmos.api_key", principal.key_id)
        return principal

    def _wrap(self, behavior: Callable[[Any, Any], Any], method: str) -> Callable[[Any, Any], Any]:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            principal = self._principal(context)
            if isinstance(request, Message):
                self._authorizer.authorize(principal, method, request)
            else:  # A body that did not parse: the next layer says so, to a known caller only.
                self._authorizer.authorize(principal, method, _EMPTY)
            return behavior(request, context)

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[[Any, Any], Any], method: str
    ) -> Callable[[Any, Any], Any]:
        def wrapped(requests: Any, context: grpc.ServicerContext) -> Any:
            principal = self._principal(context)
            authorize = self._authorizer.authorize

            def checked() -> Iterator[Any]:
                for request in requests:
                    authorize(
                        principal, method, request if isinstance(request, Message) else _EMPTY
                    )
                    yield request

            return behavior(checked(), context)

        return wrapped


_EMPTY = empty_pb2.Empty()


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class BearerKey(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):  # type: ignore[misc]
    """A client interceptor that sends ``authorization: Bearer <key>`` on every call."""

    def __init__(self, key: str) -> None:
        self._header = ("authorization", f"Bearer {key}")

    def _details(self, details: Any) -> Any:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        return _ClientCallDetails(
            details.method,
            details.timeout,
            [*metadata, self._header],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def with_key(channel: grpc.Channel, key: str) -> grpc.Channel:
    """``channel``, sending ``key`` on every call; unchanged when ``key`` is empty."""
    return grpc.intercept_channel(channel, BearerKey(key)) if key else channel
