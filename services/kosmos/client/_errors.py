"""Statuses back into typed exceptions, with the server's reason and field violations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class KosmosRpcError(Exception):
    """A Kosmos call failed.

    Attributes:
        code: The gRPC status code.
        message: The server's message.
        reason: The stable reason from ``google.rpc.ErrorInfo`` (``CUSTOMER_NOT_FOUND``), or "".
        domain: The ``ErrorInfo`` domain (``kosmos.profile``), or "".
        field_violations: For INVALID_ARGUMENT, which fields were wrong and why.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        domain: str = "",
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.field_violations = field_violations


class InvalidArgumentError(KosmosRpcError):
    """The request was malformed; see ``field_violations``."""


class NotFoundError(KosmosRpcError):
    """A named shop, customer or item does not exist."""


class AlreadyExistsError(KosmosRpcError):
    """The resource exists, or a request id was reused for a different request."""


class FailedPreconditionError(KosmosRpcError):
    """The system is not ready for this call."""


class UnavailableError(KosmosRpcError):
    """The service could not be reached; retrying may help."""


class DeadlineExceededError(KosmosRpcError):
    """The call's deadline passed."""


class UnauthenticatedError(KosmosRpcError):
    """The call carried no API key, or one that is unknown or revoked."""


class PermissionDeniedError(KosmosRpcError):
    """The API key may not make this call (another shop, or beyond its scope)."""


_BY_CODE: dict[grpc.StatusCode, type[KosmosRpcError]] = {
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(error: grpc.RpcError) -> KosmosRpcError:
    """The typed exception for a failed call."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    reason = domain = ""
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(error)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain = info.reason, info.domain
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
    cls = _BY_CODE.get(code, KosmosRpcError)
    return cls(code, message, reason, domain, tuple(violations))
