"""Shape checks shared by servicers: free attribute maps and list lengths."""

from __future__ import annotations

from collections.abc import Mapping

from kosmos.common.errors import InvalidArgument

MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 1024


def check_attributes(attributes: Mapping[str, str], field: str) -> dict[str, str]:
    """Attribute maps: at most 64 entries, keys 1-64 characters, values at most 1024."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidArgument(field, "TOO_MANY_ATTRIBUTES", f"has more than {MAX_ATTRIBUTES} keys")
    for key, value in attributes.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            raise InvalidArgument(
                f"{field}[{key!r}]",
                "INVALID_ATTRIBUTE_KEY",
                f"keys must be 1-{MAX_ATTRIBUTE_KEY} characters",
            )
        if len(value) > MAX_ATTRIBUTE_VALUE:
            raise InvalidArgument(
                f"{field}[{key!r}]",
                "ATTRIBUTE_TOO_LONG",
                f"values must be at most {MAX_ATTRIBUTE_VALUE} characters",
            )
    return dict(attributes)


def plain_attributes(attributes: Mapping[str, str]) -> dict[str, str] | None:
    """``attributes`` as a dict when they plainly pass `check_attributes`, else None (then
    `check_attributes` names the entry at fault): the fast path of batch validation."""
    if len(attributes) > MAX_ATTRIBUTES:
        return None
    # Key by key: dict() of a protobuf map goes through Python's Mapping mixin, 3x slower.
    found = {key: attributes[key] for key in attributes}
    for key, value in found.items():
        if not 0 < len(key) <= MAX_ATTRIBUTE_KEY or len(value) > MAX_ATTRIBUTE_VALUE:
            return None
    return found


def check_count(count: int, field: str, maximum: int, *, minimum: int = 0) -> None:
    """A repeated field's length is within [minimum, maximum]."""
    if count < minimum:
        raise InvalidArgument(field, "MISSING_FIELD", f"needs at least {minimum} entries")
    if count > maximum:
        raise InvalidArgument(field, "TOO_MANY_ENTRIES", f"takes at most {maximum} entries")
