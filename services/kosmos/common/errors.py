"""The errors domain code raises; one interceptor turns them into rich gRPC statuses.

Domain code imports no grpc: each error names its status code by string, and
`kosmos.common.server.ErrorInterceptor` maps it to a `google.rpc.Status` with an `ErrorInfo`
(reason, domain) and, for bad input, a `BadRequest` naming the field path. Reasons are stable
strings that clients may branch on; the README lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request.

    Attributes:
        field: The field path, such as ``interactions[2].item_id``.
        description: What is wrong, in words a developer reads.
    """

    field: str
    description: str


class KosmosError(Exception):
    """Base of every error a client may see. Subclasses fix the gRPC status code."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        reason: str,
        description: str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.metadata = dict(metadata or {})


class InvalidArgument(KosmosError):
    """The request is malformed. Names the field so a client can point at it."""

    code = "INVALID_ARGUMENT"

    def __init__(
        self,
        field: str,
        reason: str,
        description: str,
        *,
        more: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(reason, f"{field}: {description}")
        self.violations = [FieldViolation(field, description), *more]


class NotFound(KosmosError):
    """A named resource does not exist."""

    code = "NOT_FOUND"

    def __init__(self, resource_type: str, name: str, reason: str | None = None) -> None:
        super().__init__(
            reason or f"{resource_type.upper()}_NOT_FOUND",
            f"{resource_type} {name!r} not found",
            metadata={"resource": name},
        )
        self.resource_type = resource_type
        self.name = name


class AlreadyExists(KosmosError):
    """The resource to create exists already, or a request id was reused for other content."""

    code = "ALREADY_EXISTS"


class Aborted(KosmosError):
    """A concurrent change won (an optimistic update found a newer revision); retry."""

    code = "ABORTED"


class FailedPrecondition(KosmosError):
    """The system is not in a state to do this yet (for example, a model is not fitted)."""

    code = "FAILED_PRECONDITION"


class Unsupported(KosmosError):
    """The operation is outside what this component supports."""

    code = "UNIMPLEMENTED"


class DeadlineExceeded(KosmosError):
    """The caller's deadline passed before the work could finish."""

    code = "DEADLINE_EXCEEDED"

    def __init__(self, stage: str, reason: str = "DEADLINE_EXCEEDED") -> None:
        super().__init__(reason, f"deadline exceeded during {stage}")


class Unavailable(KosmosError):
    """A dependency (database, remote plugin) cannot be reached; retrying may help."""

    code = "UNAVAILABLE"


class Unauthenticated(KosmosError):
    """The call carries no API key, or one that is unknown or revoked."""

    code = "UNAUTHENTICATED"


class PermissionDenied(KosmosError):
    """The key may not make this call: another shop, or beyond its scope.

    The message never says whether the other shop exists.
    """

    code = "PERMISSION_DENIED"
