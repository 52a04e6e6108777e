"""Resource names (``shops/{shop}/customers/{customer}``) and page tokens.

Parsing raises InvalidArgument naming the request field, so every servicer reports a bad name
the same way. Ids are matched in full (``re.fullmatch``): ``"demo\\n"`` is not ``"demo"``.
Page tokens are signed with the server secret (`kosmos.common.signing`) and bound to the
request that made them; this module is the one decoder for all of them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from kosmos.common import signing
from kosmos.common.errors import InvalidArgument

SHOP_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")
MAX_PAGE_TOKEN = 1024
MAX_PAGE_BYTES = 2 * 1024 * 1024
"""A list page stops growing here, well under gRPC's 4 MiB message limit, whatever its size."""

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def check_shop_id(value: str, field: str) -> str:
    """Returns ``value`` if it is a valid shop id, else raises InvalidArgument on ``field``."""
    if not value:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    if not SHOP_ID.fullmatch(value):
        raise InvalidArgument(
            field, "INVALID_ID", "must be 1-63 of a-z, 0-9 and '-', starting with a letter"
        )
    return value


def check_resource_id(value: str, field: str) -> str:
    """Returns ``value`` if it is a valid customer or item id, else raises InvalidArgument."""
    if not value:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    if not RESOURCE_ID.fullmatch(value):
        raise InvalidArgument(
            field,
            "INVALID_ID",
            "must be 1-128 of letters, digits and '._@:-', starting with a letter or digit",
        )
    return value


def _parts(name: str, field: str, pattern: tuple[str, ...]) -> list[str]:
    if not name:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    parts = name.split("/")
    expected = "/".join(f"{p}/{{{p[:-1]}}}" for p in pattern)
    if len(parts) != 2 * len(pattern) or any(parts[2 * i] != p for i, p in enumerate(pattern)):
        raise InvalidArgument(field, "INVALID_NAME", f"must look like {expected}")
    ids = parts[1::2]
    check_shop_id(ids[0], field)
    for value in ids[1:]:
        check_resource_id(value, field)
    return ids


def parse_shop(name: str, field: str) -> str:
    """``shops/{shop}`` → shop id."""
    return _parts(name, field, ("shops",))[0]


def parse_customer(name: str, field: str) -> tuple[str, str]:
    """``shops/{shop}/customers/{customer}`` → (shop id, customer id)."""
    shop, customer = _parts(name, field, ("shops", "customers"))
    return shop, customer


def parse_item(name: str, field: str) -> tuple[str, str]:
    """``shops/{shop}/items/{item}`` → (shop id, item id)."""
    shop, item = _parts(name, field, ("shops", "items"))
    return shop, item


def shop_name(shop: str) -> str:
    return f"shops/{shop}"


def customer_name(shop: str, customer: str) -> str:
    return f"shops/{shop}/customers/{customer}"


def item_name(shop: str, item: str) -> str:
    return f"shops/{shop}/items/{item}"


def interaction_name(shop: str, customer: str, seq: int) -> str:
    return f"shops/{shop}/customers/{customer}/interactions/{seq}"


def page_size(
    value: int,
    field: str = "page_size",
    *,
    default: int = DEFAULT_PAGE_SIZE,
    maximum: int = MAX_PAGE_SIZE,
) -> int:
    """AIP-158: 0 → ``default``, negative → INVALID_ARGUMENT, above ``maximum`` → ``maximum``."""
    if value < 0:
        raise InvalidArgument(field, "NEGATIVE_PAGE_SIZE", "must not be negative")
    return default if value == 0 else min(value, maximum)


def fits(messages: Sequence[Message], budget: int = MAX_PAGE_BYTES) -> int:
    """How many of ``messages`` (at least one) fit in a response of ``budget`` bytes.

    Regression (issue 9): a page of maximal profiles overflowed the client's message limit
    and broke ListCustomers for the whole shop; a short page with a next token does not.
    """
    used = 0
    for n, message in enumerate(messages):
        used += message.ByteSize() + 8  # with the field's tag and length
        if used > budget and n > 0:
            return n
    return len(messages)


def encode_page_token(scope: str, cursor: dict[str, Any]) -> str:
    """An opaque token carrying ``cursor``, valid only for requests with the same ``scope``.

    The cursor travels in the clear (it holds ids and offsets the caller has seen) but is
    signed together with ``scope``, so a token cannot be forged or moved to another request.
    """
    raw = json.dumps(cursor, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return payload + "." + signing.mac("page-token", scope, payload)


def decode_page_token(token: str, scope: str, field: str = "page_token") -> dict[str, Any] | None:
    """The cursor in ``token``; None for an empty token; InvalidArgument if it is not ours."""
    if not token:
        return None
    payload, _, signature = token.partition(".")
    if len(token) > MAX_PAGE_TOKEN or not signing.verify(
        signing.mac("page-token", scope, payload), signature
    ):
        raise InvalidArgument(field, "INVALID_PAGE_TOKEN", "is not a token this request returned")
    # Signed by us, so the shape is the one we wrote; the checks below guard against our own
    # bugs (an old token format), not against callers.
    try:
        cursor = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        cursor = None
    if not isinstance(cursor, dict):
        raise InvalidArgument(field, "INVALID_PAGE_TOKEN", "is not a token this request returned")
    return cursor


def parse_recommender(name: str, field: str) -> tuple[str, str]:
    """``shops/{shop}/recommenders/{recommender}`` → (shop id, recommender name)."""
    shop, recommender = _parts(name, field, ("shops", "recommenders"))
    return shop, recommender
