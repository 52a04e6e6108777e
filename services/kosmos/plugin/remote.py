"""Recommenders in another process, in any language, behind ``RecommenderPluginService``.

`RemoteRecommender` implements the in-process `Recommender` contract by calling a plugin
server (``proto/kosmos/v1/recommender_plugin_service.proto``), so the recommendation service
routes to it like any installed plugin. Every call carries a deadline: the remote's own budget
(``timeout``, or ``fit_timeout`` for `fit`), never more than the caller has left
(`kosmos.common.deadline.remaining`). A call that fails raises an exception, and the chain
runner skips a recommender that raises, so a slow or broken plugin costs a shopper at most
``timeout``, never an error.

Statuses map back onto the contract: ``UNIMPLEMENTED`` is `Unsupported`, ``FAILED_PRECONDITION``
is `NotFitted`, a deadline that was the caller's is `DeadlineExceeded`, and anything else
(the plugin's own budget running out, ``UNAVAILABLE``, ``INTERNAL``...) is `RemotePluginError`.

The remote service owns its model state, one model per shop: every call names the instance's
shop (``shops/{shop}``, learned from `TrainingData.shop_id` at `fit`). `save` writes only where
the model lives (the target and the shop), and `load` points the instance at them again. A
remote that restarts has lost its models and answers ``FAILED_PRECONDITION`` until it is fitted
again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any, Self, TypeVar

import grpc

from kosmos.common import deadline, signing, telemetry
from kosmos.common.errors import DeadlineExceeded, Unavailable
from kosmos.common.names import shop_name
from kosmos.common.timestamps import to_timestamp
from kosmos.common.tls import ClientTls, open_channel
from kosmos.plugin.protocol import (
    Capabilities,
    Contribution,
    ExplainQuery,
    Interaction,
    NotFitted,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
    Unsupported,
)
from kosmos.plugin.registry import LoadedPlugin
from kosmos.v1 import common_pb2
from kosmos.v1 import recommender_plugin_service_pb2 as pb
from kosmos.v1 import recommender_plugin_service_pb2_grpc as pb_grpc

__all__ = [
    "DEFAULT_FIT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "RemotePluginError",
    "RemoteRecommender",
    "remote_plugins",
]

DEFAULT_TIMEOUT = 0.25
"""Seconds one call may take unless configured otherwise (``KOSMOS_REMOTE_TIMEOUT_MS``)."""

DEFAULT_FIT_TIMEOUT = 600.0
"""Seconds a `fit` may take: training is slower than serving."""

CHUNK_INTERACTIONS = 5000
"""Interactions (and catalog item ids) per ``FitRequest`` chunk."""

CHUNK_FEATURES = 1000
"""Customers' or items' features per ``FitRequest`` chunk: each may carry many values."""

SAVED_FILE = "remote.json"
SAVED_FORMAT = 1

_T = TypeVar("_T")


class RemotePluginError(Unavailable):
    """A remote plugin failed, ran out of its own time, or could not be reached.

    Attributes:
        target: The plugin's ``host:port``.
        operation: The call that failed (``recommend``, ``fit``...).
        grpc_code: The status the call ended with.
    """

    def __init__(
        self, target: str, operation: str, grpc_code: grpc.StatusCode, details: str
    ) -> None:
        super().__init__(
            "REMOTE_RECOMMENDER_FAILED",
            f"remote recommender at {target} failed {operation}: {grpc_code.name}"
            + (f" ({details})" if details else ""),
            metadata={"target": target, "operation": operation, "grpc_code": grpc_code.name},
        )
        self.target = target
        self.operation = operation
        self.grpc_code = grpc_code


CONTACT_ATTRIBUTES = frozenset(
    {
        "name", "first_name", "last_name", "full_name", "given_name", "family_name",
        "email", "e-mail", "mail", "phone", "mobile", "telephone", "fax",
        "address", "street", "city", "postcode", "postal_code", "zip",
        "birthday", "date_of_birth", "ip", "ip_address", "user_agent",
    }
)  # fmt: skip
"""Customer attributes an out-of-process plugin never sees, even when it declares them."""


def _identity(customer_id: str) -> str:
    return customer_id


def _to_pb(i: Interaction, customer: Callable[[str], str] = _identity) -> pb.PluginInteraction:
    return pb.PluginInteraction(
        customer_id=customer(i.customer_id),
        item_id=i.item_id,
        type=common_pb2.InteractionType.ValueType(i.type),  # the numbers are the proto's
        weight=i.weight,
        event_time=to_timestamp(i.time),
        value=i.value,
        channel=i.channel,
        device=i.device,
    )


def _batches(values: Iterator[_T], size: int) -> Iterator[list[_T]]:
    while batch := list(islice(values, size)):
        yield batch


def _features(values: Mapping[str, Mapping[str, str]]) -> Iterator[pb.Features]:
    for key, features in values.items():
        yield pb.Features(id=key, values=dict(features))


def fit_chunks(
    data: TrainingData,
    shop: str = "",
    customer: Callable[[str], str] = _identity,
    customer_features: Callable[[Mapping[str, str]], dict[str, str]] = dict,
) -> Iterator[pb.FitRequest]:
    """``data`` as a ``Fit`` stream: the catalog, features, then interactions oldest first.

    Chunks are built while the stream is sent, so a large shop is never held twice in memory.

    Args:
        data: What to train on; ``data.now``, when set, is the first chunk's ``now_time``.
        shop: ``shops/{shop}``, carried by the first chunk; empty when the caller has no shop.
        customer: What the remote sees for a customer id (a pseudonym).
        customer_features: What the remote sees of a customer's features (those it declared).
    """
    features = {customer(c): customer_features(f) for c, f in data.customer_features.items()}
    features = {c: f for c, f in features.items() if f}
    chunks = chain(
        (pb.FitRequest(item_ids=b) for b in _batches(iter(data.item_ids), CHUNK_INTERACTIONS)),
        (
            pb.FitRequest(item_features=b)
            for b in _batches(_features(data.item_features), CHUNK_FEATURES)
        ),
        (pb.FitRequest(customer_features=b) for b in _batches(_features(features), CHUNK_FEATURES)),
        (
            pb.FitRequest(interactions=[_to_pb(i, customer) for i in b])
            for b in _batches(iter(data.interactions), CHUNK_INTERACTIONS)
        ),
    )
    first = next(chunks, None)
    if first is None:
        first = pb.FitRequest()  # No data at all still fits (an empty model).
    first.shop = shop
    if data.now:
        first.now_time.CopyFrom(to_timestamp(data.now))
    yield first
    yield from chunks


def _scored(items: Sequence[pb.ScoredItem]) -> list[Scored]:
    return [Scored(s.item_id, s.score, s.reason, s.because_item_id) for s in items]


class RemoteRecommender:
    """A `Recommender` served by another process over ``RecommenderPluginService``.

    Thread-safe: the recommendation service calls ``recommend`` from many threads at once.

    Args:
        target: The plugin's ``host:port``.
        timeout: Seconds one call may take (the caller's remaining deadline caps it further).
        channel: A plain channel to the target, shared with other instances and closed by its
            owner; without one the instance opens (and `close` closes) its own. Either way
            calls go through the OpenTelemetry client interceptor, so they join the trace.
        fit_timeout: Seconds `fit` may take, likewise capped by the caller's deadline.
        name: The name the plugin is routed by, for messages; the target when empty.
        shop: ``shops/{shop}``, the shop whose model the remote keeps for this instance, sent
            with every call; when empty, `fit` learns it from `TrainingData.shop_id`.
        tls: Call over TLS (mTLS with a client certificate) when the instance opens its own
            channel; None: plaintext.
        customer_features: The customer features the plugin declared; it sees only these,
            never `CONTACT_ATTRIBUTES`. Default: none.

    What the remote sees of a customer is a pseudonym, ``p-`` and 32 hex digits: an HMAC of
    the customer id under a key derived from the server secret, the shop and the plugin's
    name (`kosmos.common.signing.pseudonym`). It is stable for one shop and plugin, differs
    between plugins, and cannot be turned back into the id without the secret.

    Raises:
        ValueError: A timeout is not positive.
    """

    def __init__(
        self,
        target: str,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
        *,
        fit_timeout: float = DEFAULT_FIT_TIMEOUT,
        name: str = "",
        shop: str = "",
        tls: ClientTls | None = None,
        customer_features: frozenset[str] = frozenset(),
    ) -> None:
        if not timeout > 0 or not fit_timeout > 0:
            raise ValueError("remote recommender timeouts must be positive")
        self.timeout = timeout
        self.fit_timeout = fit_timeout
        self.name = name
        self.shop = shop
        self.tls = tls
        self.customer_features = frozenset(customer_features) - CONTACT_ATTRIBUTES
        self._capabilities: Capabilities | None = None
        self._owned: grpc.Channel | None = None
        self._connect(target, channel)

    def _connect(self, target: str, channel: grpc.Channel | None) -> None:
        self.close()
        if channel is None:
            channel = self._owned = open_channel(target, self.tls)
        self.target = target
        self._stub = pb_grpc.RecommenderPluginServiceStub(telemetry.instrument_channel(channel))
        self._capabilities = None

    def close(self) -> None:
        """Closes the channel this instance opened (not one it was given)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteRecommender({self.target!r}, timeout={self.timeout})"

    @property
    def _label(self) -> str:
        return self.name or self.target

    def _pseudonym(self, customer_id: str) -> str:
        return signing.pseudonym(self.shop, self.name or self.target, customer_id)

    def _declared(self, features: Mapping[str, str]) -> dict[str, str]:
        return {k: v for k, v in features.items() if k in self.customer_features}

    # -- calls -------------------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        method: Callable[..., _T],
        request: Any,
        budget: float,
    ) -> _T:
        """Calls ``method`` within ``budget`` seconds and what the caller has left."""
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded(f"{operation} on recommender {self._label}")
        callers = left is not None and left < budget
        try:
            return method(request, timeout=left if callers else budget)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            details: str = error.details() or ""
            if code is grpc.StatusCode.UNIMPLEMENTED:
                raise Unsupported(operation, self._label) from error
            if code is grpc.StatusCode.FAILED_PRECONDITION:
                raise NotFitted(self._label) from error
            if code is grpc.StatusCode.DEADLINE_EXCEEDED and callers:
                raise DeadlineExceeded(f"{operation} on recommender {self._label}") from error
            raise RemotePluginError(self.target, operation, code, details) from error

    @property
    def capabilities(self) -> Capabilities:
        """What the remote supports, asked once (``GetCapabilities``) and then remembered.

        On Python 3.11, ``isinstance(x, Recommender)`` reads this attribute, so it calls too.
        """
        capabilities = self._capabilities
        if capabilities is None:
            response = self._call(
                "get_capabilities",
                self._stub.GetCapabilities,
                pb.GetCapabilitiesRequest(),
                self.timeout,
            )
            c = response.capabilities
            capabilities = Capabilities(
                cold_start=c.cold_start, partial_fit=c.partial_fit, explain=c.explain
            )
            self._capabilities = capabilities
        return capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def fit(self, data: TrainingData) -> None:
        """Streams ``data`` to the remote, which replaces the shop's model (``Fit``).

        Raises:
            ValueError: ``data`` is another shop's than the one this instance was made for.
        """
        if data.shop_id:
            shop = shop_name(data.shop_id)
            if self.shop and self.shop != shop:  # Never train one shop's model on another's data.
                raise ValueError(f"recommender {self._label} serves {self.shop}, not {shop}")
            self.shop = shop
        chunks = fit_chunks(data, self.shop, self._pseudonym, self._declared)
        self._call("fit", self._stub.Fit, chunks, self.fit_timeout)

    def partial_fit(self, interactions: Sequence[Interaction]) -> None:
        request = pb.PartialFitRequest(
            interactions=[_to_pb(i, self._pseudonym) for i in interactions], shop=self.shop
        )
        self._call("partial_fit", self._stub.PartialFit, request, self.timeout)

    def recommend(self, query: RecommendQuery) -> list[Scored]:
        request = pb.RecommenderPluginServiceRecommendRequest(
            customer_id=self._pseudonym(query.customer_id),
            k=query.k,
            exclude_item_ids=sorted(query.exclude_item_ids),
            filter_already_seen=query.filter_already_seen,
            recent_interactions=[_to_pb(i, self._pseudonym) for i in query.recent_interactions],
            customer_features=self._declared(query.customer_features),
            context=dict(query.context),
            shop=self.shop,
        )
        response = self._call("recommend", self._stub.Recommend, request, self.timeout)
        return _scored(response.items)

    def similar_items(self, query: SimilarItemsQuery) -> list[Scored]:
        request = pb.RecommenderPluginServiceSimilarItemsRequest(
            item_id=query.item_id,
            k=query.k,
            exclude_item_ids=sorted(query.exclude_item_ids),
            shop=self.shop,
        )
        response = self._call("similar_items", self._stub.SimilarItems, request, self.timeout)
        return _scored(response.items)

    def explain(self, query: ExplainQuery) -> list[Contribution]:
        request = pb.ExplainRequest(
            customer_id=self._pseudonym(query.customer_id),
            item_id=query.item_id,
            recent_interactions=[_to_pb(i, self._pseudonym) for i in query.recent_interactions],
            shop=self.shop,
        )
        response = self._call("explain", self._stub.Explain, request, self.timeout)
        return [Contribution(c.item_id, c.weight) for c in response.contributions]

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Writes ``remote.json`` naming the target and the shop: the model stays in the remote."""
        payload = {"format": SAVED_FORMAT, "target": self.target, "shop": self.shop}
        (directory / SAVED_FILE).write_text(json.dumps(payload))

    def load(self, directory: Path) -> None:
        """Points this instance at the target and shop `save` wrote (the remote holds the model)."""
        payload = json.loads((directory / SAVED_FILE).read_text())
        if payload.get("format") != SAVED_FORMAT:
            raise ValueError(f"unknown remote recommender format {payload.get('format')!r}")
        target = str(payload["target"])
        self.shop = str(payload.get("shop", self.shop))
        if target != self.target:
            self._connect(target, None)


class _RemoteFactory:
    """The factory of one remote plugin: every instance shares one channel to the target.

    The service builds a fresh instance per shop and refresh; one channel (one HTTP/2
    connection) per target keeps that cheap. Settings (``KOSMOS_PLUGIN__<NAME>__<SETTING>``):
    ``timeout_ms`` and ``fit_timeout_seconds`` override the defaults for this plugin;
    ``customer_features`` (comma-separated) names the customer features it may see.
    """

    SETTINGS = frozenset({"timeout_ms", "fit_timeout_seconds", "customer_features"})

    def __init__(
        self, name: str, target: str, timeout: float, tls: ClientTls | None = None
    ) -> None:
        self.name = name
        self.target = target
        self.timeout = timeout
        self.tls = tls
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def __call__(self, settings: Mapping[str, str]) -> RemoteRecommender:
        unknown = set(settings) - self.SETTINGS
        if unknown:
            raise ValueError(
                f"remote recommender {self.name!r}: unknown settings {sorted(unknown)};"
                f" known: {sorted(self.SETTINGS)}"
            )
        timeout = float(settings["timeout_ms"]) / 1000 if "timeout_ms" in settings else None
        fit_timeout = float(settings.get("fit_timeout_seconds", DEFAULT_FIT_TIMEOUT))
        with self._lock:
            if self._channel is None:
                self._channel = open_channel(self.target, self.tls)
            channel = self._channel
        declared = settings.get("customer_features", "")
        return RemoteRecommender(
            self.target,
            self.timeout if timeout is None else timeout,
            channel,
            fit_timeout=fit_timeout,
            name=self.name,
            customer_features=frozenset(f.strip() for f in declared.split(",") if f.strip()),
        )

    def close(self) -> None:
        """Closes the shared channel; instances made before then stop working."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None


def remote_plugins(
    spec: Mapping[str, str], timeout: float, tls: ClientTls | None = None
) -> dict[str, LoadedPlugin]:
    """Out-of-process plugins as loaded plugins, to route to like installed ones.

    Args:
        spec: Plugin name → ``host:port`` (``KOSMOS_REMOTE_RECOMMENDERS``).
        timeout: Seconds one call may take (``KOSMOS_REMOTE_TIMEOUT_MS`` / 1000).
        tls: Call the plugins over TLS or mTLS (``KOSMOS_TLS_CA`` and friends).

    Returns:
        Name → plugin whose factory returns a `RemoteRecommender`; its distribution reads
        ``remote:<host:port>``.

    Raises:
        ValueError: A target is empty or the timeout is not positive.
    """
    if not timeout > 0:
        raise ValueError("the remote recommender timeout must be positive")
    plugins = {}
    for name, target in spec.items():
        if not target.strip():
            raise ValueError(f"remote recommender {name!r} has no target")
        factory = _RemoteFactory(name, target.strip(), timeout, tls)
        plugins[name] = LoadedPlugin(name, factory, f"remote:{factory.target}")
    return plugins
