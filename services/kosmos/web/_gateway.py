"""The same API over HTTP/1.1: Connect (JSON or binary), gRPC-Web, from the same protos.

`connectrpc` (Connect's own Python runtime) speaks the browser protocols; each of its
endpoints forwards the call to the cluster's gRPC port with the caller's key, trace context and
deadline, so keys, scopes, limits, validation and errors are exactly those of the gRPC API: the
gRPC server stack decides, the gateway only translates. Messages stay `google.protobuf` ones
(our codecs), so nothing here needs a second set of generated code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectWSGIApplication, EndpointSync
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2  # noqa: F401  (registers grpc.health.v1 in the pool)
from grpc_status import rpc_status
from protobuf.wkt import Any as WireAny

log = logging.getLogger(__name__)

FORWARDED_HEADERS = ("authorization", "traceparent", "tracestate", "baggage")
"""Request headers passed on to the gRPC call as metadata; nothing else crosses."""

HEALTH_SERVICE = "grpc.health.v1.Health"


def _bad_body(description: str) -> ConnectError:
    """What the gRPC side answers for a body it cannot parse (`kosmos.common.limits`):
    INVALID_ARGUMENT, reason MALFORMED_REQUEST, a BadRequest on the field ``request``."""
    violation = error_details_pb2.BadRequest.FieldViolation(
        field="request", description=description
    )
    bad = error_details_pb2.BadRequest(field_violations=[violation])
    info = error_details_pb2.ErrorInfo(reason="MALFORMED_REQUEST", domain="kosmos.web")
    return ConnectError(
        Code.INVALID_ARGUMENT,
        f"the request body is not a valid message: {description}",
        [
            _wire_any("google.rpc.ErrorInfo", info.SerializeToString()),
            _wire_any("google.rpc.BadRequest", bad.SerializeToString()),
        ],
    )


def _wire_any(type_name: str, value: bytes) -> ErrorDetail:
    return ErrorDetail(WireAny(type_url="type.googleapis.com/" + type_name, value=value))


class _ProtoCodec(Codec[Message, Message]):
    """Protocol Buffers binary with `google.protobuf` messages."""

    def name(self) -> str:
        return "proto"

    def encode(self, message: Message) -> bytes:
        return message.SerializeToString()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        message = message_class()
        try:
            message.ParseFromString(bytes(data))
        except DecodeError as exc:
            raise _bad_body(str(exc) or "malformed protobuf") from None
        return message


class _JsonCodec(Codec[Message, Message]):
    """The canonical proto3 JSON mapping (lowerCamelCase names, as `protoc-gen-es` sends).

    Unknown fields are refused, as the binary decoder of a strict server would be unable to,
    so a misspelt field is an error rather than silently ignored.
    """

    def name(self) -> str:
        return "json"

    def encode(self, message: Message) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Message]) -> Message:
        message = message_class()
        try:
            json_format.Parse(bytes(data).decode("utf-8") or "{}", message)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            raise _bad_body(str(exc)[:300]) from None
        return message


# gRPC's code names but one (CANCELLED) are Connect's, in upper case.
_CODES = {
    c: Code.CANCELED if c is grpc.StatusCode.CANCELLED else Code[c.name]
    for c in grpc.StatusCode
    if c is not grpc.StatusCode.OK
}


def _to_connect(error: grpc.RpcError) -> ConnectError:
    """The gRPC status as a Connect error: same code, message and detail messages."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = error.details() if isinstance(error, grpc.Call) else ""
    details: list[ErrorDetail] = []
    status: status_pb2.Status | None = None
    if isinstance(error, grpc.Call):
        try:
            status = rpc_status.from_call(error)
        except ValueError:
            status = None
    if status is not None:
        details = [_wire_any(d.type_url.rpartition("/")[2], d.value) for d in status.details]
    return ConnectError(_CODES.get(code, Code.UNKNOWN), message or "", details)


class _Forward:
    """One RPC: decode, call the gRPC server with the caller's metadata and deadline."""

    def __init__(self, channel: grpc.Channel, method: MethodDescriptor) -> None:
        self.path = f"/{method.containing_service.full_name}/{method.name}"
        self.input: type[Message] = message_factory.GetMessageClass(method.input_type)
        self.output: type[Message] = message_factory.GetMessageClass(method.output_type)
        self._call = channel.unary_unary(
            self.path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=self.output.FromString,
        )

    def __call__(self, request: Message, ctx: RequestContext[Message, Message]) -> Message:
        headers = ctx.request_headers
        metadata = [(k, headers[k]) for k in FORWARDED_HEADERS if k in headers]
        remaining_ms = ctx.timeout_ms
        timeout = None if remaining_ms is None else max(remaining_ms, 0.0) / 1000.0
        try:
            response: Message = self._call(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise _to_connect(exc) from None
        except Exception:
            # The gRPC side logs with the trace id; here only the gateway can have failed.
            log.exception("HTTP gateway failed forwarding %s", self.path)
            raise ConnectError(Code.INTERNAL, "internal error") from None
        return response


def _method_info(method: MethodDescriptor, forward: _Forward) -> MethodInfo[Message, Message]:
    idempotency = IdempotencyLevel.UNKNOWN
    options = method.GetOptions()
    if options.idempotency_level == options.NO_SIDE_EFFECTS:
        idempotency = IdempotencyLevel.NO_SIDE_EFFECTS
    elif options.idempotency_level == options.IDEMPOTENT:
        idempotency = IdempotencyLevel.IDEMPOTENT
    return MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=forward.input,
        output=forward.output,
        idempotency_level=idempotency,
        stream_type=StreamType.UNARY,
    )


def _unary_methods(service: ServiceDescriptor) -> Iterable[MethodDescriptor]:
    for method in service.methods:
        if not method.client_streaming and not method.server_streaming:
            yield method


class _Application(ConnectWSGIApplication):
    @property
    def path(self) -> str:
        return "/"


def connect_application(
    channel: grpc.Channel, service_names: Sequence[str], *, read_max_bytes: int = 4 << 20
) -> ConnectWSGIApplication:
    """A WSGI application serving every unary RPC of ``service_names`` over Connect and
    gRPC-Web, forwarding each call over ``channel``.

    Args:
        channel: A channel to the gRPC server that hosts the services.
        service_names: Full service names (``kosmos.v1.RecommendationService``); their
            generated modules must be imported. Health is always added.
        read_max_bytes: The largest request body accepted (RESOURCE_EXHAUSTED beyond it).
    """
    pool = descriptor_pool.Default()
    endpoints: dict[str, Any] = {}  # EndpointUnarySync, which connectrpc does not export
    for name in dict.fromkeys([*service_names, HEALTH_SERVICE]):
        for method in _unary_methods(pool.FindServiceByName(name)):
            forward = _Forward(channel, method)
            endpoints[forward.path] = EndpointSync.unary(
                method=_method_info(method, forward), function=forward
            )
    return _Application(
        endpoints=endpoints,
        read_max_bytes=read_max_bytes,
        codecs=[_ProtoCodec(), _JsonCodec()],
    )


__all__ = ["FORWARDED_HEADERS", "connect_application"]
