"""Hostile input, stopped at the door: bodies that do not parse, and oversized fields.

Two guards run on every public RPC before its servicer:

* A body that is not a valid protobuf message becomes INVALID_ARGUMENT naming ``request``.
  gRPC's own deserializer failure would log a traceback and answer INTERNAL, so the request
  deserializer is wrapped and hands the servicer layer a `Malformed` marker instead.
* Every string, list and map has a limit (`STRING_LIMITS`, `LIST_LIMITS`, the map limits). A
  servicer may check a field more tightly, with its own reason; these limits are the backstop
  that no field can escape, including fields added later. The README lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kosmos.common.errors import InvalidArgument

MAX_STRING = 1024
"""Characters in any string field not named in `STRING_LIMITS`."""

STRING_LIMITS: dict[str, int] = {
    "name": 256,
    "parent": 256,
    "customer": 256,
    "item": 256,
    "shop": 256,
    "shop_id": 63,
    "customer_id": 128,
    "item_id": 128,
    "item_ids": 128,
    "cart_item_ids": 128,
    "request_id": 128,
    "recommendation_id": 128,
    "display_name": 200,
    "value": 512,
    "page_token": 1024,
    "paths": 64,
    "source": 64,
    "linked": 256,
}
"""Characters per string field, by field name (a repeated field: per entry)."""

MAX_LIST = 1000
"""Entries in any repeated field not named in `LIST_LIMITS`."""

LIST_LIMITS: dict[str, int] = {
    "exclusions": 500,
    "preferences": 500,
    "cart_item_ids": 200,
    "paths": 10,
    "impressions": 100,
    "rules": 200,
    "variants": 10,
}
"""Entries per repeated field, by field name."""

FIELD_LIST_LIMITS: dict[str, int] = {
    "kosmos.v1.ImportInteractionsRequest.interactions": 10_000,
    "kosmos.v1.Impression.item_ids": 100,
}
"""Entries per repeated field of one message (full field name), before `LIST_LIMITS`: bulk
intake takes larger batches than live calls."""

MAX_MAP = 64
"""Entries in any map field (attributes)."""

MAX_MAP_KEY = 256
MAX_MAP_VALUE = 4096
"""Backstops for map keys and values; attribute maps are held tighter (64 and 1024)."""

# RecommenderPluginService is called by Kosmos itself with training batches far beyond
# request limits; it is guarded by (m)TLS rather than by size.
_UNLIMITED_SERVICES = frozenset({"kosmos.v1.RecommenderPluginService"})


class Malformed:
    """Stands in for a request body that did not parse."""

    __slots__ = ()


MALFORMED = Malformed()


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def check_limits(message: Message, prefix: str = "") -> None:
    """Raises InvalidArgument naming the first field of ``message`` past its limit."""
    for field, value in message.ListFields():
        path = prefix + field.name
        repeated = field.is_repeated
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and _is_map(field):
            if len(value) > MAX_MAP:
                raise InvalidArgument(path, "TOO_MANY_ENTRIES", f"takes at most {MAX_MAP} entries")
            for key, entry in value.items():
                if isinstance(key, str) and len(key) > MAX_MAP_KEY:
                    raise InvalidArgument(
                        path, "TOO_LONG", f"keys must be at most {MAX_MAP_KEY} characters"
                    )
                if isinstance(entry, str) and len(entry) > MAX_MAP_VALUE:
                    raise InvalidArgument(
                        f"{path}[{key!r}]",
                        "TOO_LONG",
                        f"must be at most {MAX_MAP_VALUE} characters",
                    )
            continue
        if repeated:
            most = FIELD_LIST_LIMITS.get(field.full_name) or LIST_LIMITS.get(field.name, MAX_LIST)
            if len(value) > most:
                raise InvalidArgument(path, "TOO_MANY_ENTRIES", f"takes at most {most} entries")
        values = value if repeated else [value]
        if is_message:
            for n, child in enumerate(values):
                check_limits(child, f"{path}[{n}]." if repeated else path + ".")
        elif field.type == FieldDescriptor.TYPE_STRING:
            most = STRING_LIMITS.get(field.name, MAX_STRING)
            for n, text in enumerate(values):
                if len(text) > most:
                    raise InvalidArgument(
                        f"{path}[{n}]" if repeated else path,
                        "TOO_LONG",
                        f"must be at most {most} characters",
                    )


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        if deserialize is None:
            return raw
        try:
            return deserialize(raw)
        except (
            Exception
        ):  # A hostile body: DecodeError, RecursionError, anything the parser raises.
            return MALFORMED

    return parse


def _reject_malformed() -> InvalidArgument:
    return InvalidArgument("request", "MALFORMED_REQUEST", "the body is not a valid message")


class LimitsInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Malformed bodies → INVALID_ARGUMENT, and every field within its limit.

    Sits inside `kosmos.common.server.ErrorInterceptor` (and the auth interceptor, so that an
    unauthenticated caller learns nothing about the request's shape).
    """

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: Any
    ) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service = details.method.strip("/").split("/")[0]
        limited = service.startswith("kosmos.") and service not in _UNLIMITED_SERVICES
        deserializer = _safe_deserializer(handler.request_deserializer)
        if handler.unary_unary is not None:
            return handler._replace(
                request_deserializer=deserializer,
                unary_unary=_unary(handler.unary_unary, limited),
            )
        if handler.stream_unary is not None:
            return handler._replace(
                request_deserializer=deserializer,
                stream_unary=_stream(handler.stream_unary, limited),
            )
        if handler.unary_stream is not None:
            return handler._replace(
                request_deserializer=deserializer,
                unary_stream=_unary(handler.unary_stream, limited),
            )
        return handler


def _unary(behavior: Callable[[Any, Any], Any], limited: bool) -> Callable[[Any, Any], Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        if request is MALFORMED:
            raise _reject_malformed()
        if limited and isinstance(request, Message):  # raw-bytes handlers have no fields
            check_limits(request)
        return behavior(request, context)

    return wrapped


def _stream(behavior: Callable[[Any, Any], Any], limited: bool) -> Callable[[Any, Any], Any]:
    def wrapped(requests: Any, context: grpc.ServicerContext) -> Any:
        def checked() -> Any:
            for request in requests:
                if request is MALFORMED:
                    raise _reject_malformed()
                if limited and isinstance(request, Message):
                    check_limits(request)
                yield request

        return behavior(checked(), context)

    return wrapped
