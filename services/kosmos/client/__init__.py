"""The Python client for Kosmos: `KosmosClient` and the typed errors it raises."""

from kosmos.client._client import (
    InteractionInput,
    KosmosClient,
    Recommendations,
    interaction_type,
)
from kosmos.client._errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    KosmosRpcError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from kosmos.common.tls import ClientTls

__all__ = [
    "ClientTls",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InteractionInput",
    "InvalidArgumentError",
    "KosmosClient",
    "KosmosRpcError",
    "NotFoundError",
    "PermissionDeniedError",
    "Recommendations",
    "UnauthenticatedError",
    "UnavailableError",
    "interaction_type",
]
