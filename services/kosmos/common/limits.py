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

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kosmos.common.errors import InvalidArgument
from kosmos.v1 import (
    catalog_service_pb2,
    common_pb2,
    feedback_service_pb2,
    profile_service_pb2,
)

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
    "customer_ids": 128,
    "recommendation_ids": 128,
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
    # Every column of a bulk import: one entry per record (issue 12: batches of 10,000 cost a
    # tenth of the per-call work of 1000: `tools/bench_import.py`).
    **{
        f.full_name: 10_000
        for columns in (
            feedback_service_pb2.InteractionColumns,
            catalog_service_pb2.ItemColumns,
            profile_service_pb2.CustomerColumns,
            common_pb2.AttributeColumn,
        )
        for f in columns.DESCRIPTOR.fields
        if f.is_repeated
    },
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
    """Raises InvalidArgument naming the first field of ``message`` past its limit.

    Each message type gets a plan once (`_plan`): which fields can break a limit at all, and
    the smallest of those limits (`_Plan.bound`). A message whose whole encoding is no longer
    than that bound cannot break any of them (a string of n characters takes at least n
    bytes in UTF-8, a list or map of n entries at least n bytes packed, 2n otherwise: a tag
    and a length each), so one C call (`ByteSize`) clears
    most entries of a batch; only a larger one is checked field by field. A field type that
    holds no string, list or map (a Timestamp) is never visited.
    """
    plan = _plan(message.DESCRIPTOR)
    if plan is None:
        _check_any(message, prefix)
        return
    if message.ByteSize() <= plan.bound:
        return
    _check_planned(message, prefix, plan)


def _check_planned(message: Message, prefix: str, plan: _Plan) -> None:
    for name, most in plan.strings:
        if len(getattr(message, name)) > most:
            raise InvalidArgument(prefix + name, "TOO_LONG", f"must be at most {most} characters")
    for name in plan.maps:
        _check_map(getattr(message, name), prefix + name)
    for name, most, kind, _entry in plan.lists:
        values = getattr(message, name)
        if not values:
            continue
        path = prefix + name
        if len(values) > most:
            raise InvalidArgument(path, "TOO_MANY_ENTRIES", f"takes at most {most} entries")
        if kind == _STRINGS:
            longest = STRING_LIMITS.get(name, MAX_STRING)
            if max(map(len, values)) > longest:
                n = next(n for n, text in enumerate(values) if len(text) > longest)
                raise InvalidArgument(
                    f"{path}[{n}]", "TOO_LONG", f"must be at most {longest} characters"
                )
        elif kind == _MESSAGES:
            entry_plan = _plan(values[0].DESCRIPTOR)
            assert entry_plan is not None  # planned with its parent
            bound = entry_plan.bound
            for n, entry in enumerate(values):
                if entry.ByteSize() > bound:
                    _check_planned(entry, f"{path}[{n}].", entry_plan)
    for name in plan.messages:
        if message.HasField(name):
            check_limits(getattr(message, name), prefix + name + ".")


_STRINGS, _MESSAGES, _OTHER = 1, 2, 3
_NO_LIMIT = 2**62


@dataclass(frozen=True, slots=True)
class _Plan:
    strings: tuple[tuple[str, int], ...]  # singular strings and their limits
    maps: tuple[str, ...]
    lists: tuple[tuple[str, int, int, Descriptor | None], ...]  # name, limit, kind, entry type
    messages: tuple[str, ...]  # singular messages that can hold something limited
    bound: int  # the smallest limit of any of them: an encoding this short breaks none


_PLANNING: set[str] = set()


@functools.cache
def _plan(descriptor: Descriptor) -> _Plan | None:
    """What of ``descriptor`` can break a limit; None for a type that contains itself."""
    if descriptor.full_name in _PLANNING:
        return None
    _PLANNING.add(descriptor.full_name)
    try:
        strings, maps, lists, messages = [], [], [], []
        limits = [_NO_LIMIT]
        for field in sorted(descriptor.fields, key=lambda f: f.number):
            is_message = field.type == FieldDescriptor.TYPE_MESSAGE
            if is_message and _is_map(field):
                maps.append(field.name)
                entry_type = field.message_type
                assert entry_type is not None
                value = entry_type.fields_by_name["value"]
                # A map of messages: checked entry by entry, whatever its size.
                # Each entry takes a tag and a length byte at least: 2 bytes.
                limits += [2 * MAX_MAP + 1, MAX_MAP_KEY, MAX_MAP_VALUE]
                if value.type == FieldDescriptor.TYPE_MESSAGE:
                    limits.append(0)
            elif field.is_repeated:
                most = FIELD_LIST_LIMITS.get(field.full_name) or LIST_LIMITS.get(
                    field.name, MAX_LIST
                )
                if is_message:
                    entry = _plan(field.message_type)
                    if entry is None:
                        return None
                    kind = _MESSAGES if _holds_limits(entry) else _OTHER
                    lists.append((field.name, most, kind, field.message_type))
                    limits += [2 * most + 1, entry.bound]  # a tag and a length each
                elif field.type == FieldDescriptor.TYPE_STRING:
                    lists.append((field.name, most, _STRINGS, None))
                    limits += [2 * most + 1, STRING_LIMITS.get(field.name, MAX_STRING)]
                else:
                    lists.append((field.name, most, _OTHER, None))
                    limits.append(most)  # packed: a byte each at least
            elif is_message:
                child = _plan(field.message_type)
                if child is None:
                    return None
                if _holds_limits(child):
                    messages.append(field.name)
                    limits.append(child.bound)
            elif field.type == FieldDescriptor.TYPE_STRING:
                strings.append((field.name, STRING_LIMITS.get(field.name, MAX_STRING)))
                limits.append(strings[-1][1])
        return _Plan(tuple(strings), tuple(maps), tuple(lists), tuple(messages), min(limits))
    finally:
        _PLANNING.discard(descriptor.full_name)


def _holds_limits(plan: _Plan) -> bool:
    return bool(plan.strings or plan.maps or plan.lists or plan.messages)


def _check_map(value: Any, path: str) -> None:
    if len(value) > MAX_MAP:
        raise InvalidArgument(path, "TOO_MANY_ENTRIES", f"takes at most {MAX_MAP} entries")
    for key in value:
        if isinstance(key, str) and len(key) > MAX_MAP_KEY:
            raise InvalidArgument(
                path, "TOO_LONG", f"keys must be at most {MAX_MAP_KEY} characters"
            )
        entry = value[key]
        if isinstance(entry, str) and len(entry) > MAX_MAP_VALUE:
            raise InvalidArgument(
                f"{path}[{key!r}]", "TOO_LONG", f"must be at most {MAX_MAP_VALUE} characters"
            )
        if isinstance(entry, Message):
            check_limits(entry, f"{path}[{key!r}].")


def _check_any(message: Message, prefix: str = "") -> None:
    """`check_limits` field by field, for message types a plan cannot cover (recursive ones)."""
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
                _check_any(child, f"{path}[{n}]." if repeated else path + ".")
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
