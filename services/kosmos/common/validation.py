"""Shape checks shared by servicers: free attribute maps, list lengths, and the columns of
bulk requests (`ItemColumns`, `CustomerColumns`, `InteractionColumns`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import repeat
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np

from kosmos.common.errors import InvalidArgument
from kosmos.common.names import RESOURCE_ID, check_resource_id

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


def checked_ids(ids: Sequence[str], field: str, *, unique: str = "") -> list[str]:
    """A column of customer or item ids as a list, each distinct id matched once; the first
    bad one named (``field[n]``). With ``unique`` (a reason such as ``DUPLICATE_ITEM``), an id
    sent twice is refused too, naming its second entry."""
    ids = list(ids)
    distinct = set(ids)
    match = RESOURCE_ID.fullmatch
    bad = {i for i in distinct if match(i) is None}
    if bad:
        n = next(n for n, i in enumerate(ids) if i in bad)
        check_resource_id(ids[n], f"{field}[{n}]")
    if unique and len(distinct) != len(ids):
        first: dict[str, int] = {}
        for n, i in enumerate(ids):
            if first.setdefault(i, n) != n:
                raise InvalidArgument(f"{field}[{n}]", unique, f"repeats {field}[{first[i]}]")
    return ids


def check_not_both(request: Any, messages: str) -> None:
    """A bulk request sends its records as ``messages`` (a repeated field) or as ``columns``,
    not both."""
    if getattr(request, messages):
        raise InvalidArgument(
            "columns", "CONFLICTING_FIELDS", f"set either {messages} or columns, not both"
        )


def check_lengths(
    columns: Any, count: int, required: Sequence[str], optional: Sequence[str]
) -> None:
    """Every REQUIRED column of a columns message holds ``count`` entries; every OPTIONAL one
    as many or none. The violation names the column (``columns.titles``)."""
    for name in (*required, *optional):
        got = len(getattr(columns, name))
        if got != count and (name in required or got):
            raise InvalidArgument(
                f"columns.{name}",
                "LENGTH_MISMATCH",
                f"has {got} entries, {required[0]} {count}"
                + ("" if name in required else " (an optional column may also be empty)"),
            )


def check_texts(texts: Sequence[str], field: str, maximum: int) -> list[str]:
    """A column of strings as a list, none longer than ``maximum`` (the first named)."""
    texts = list(texts)
    if texts and max(map(len, texts)) > maximum:
        n = next(n for n, t in enumerate(texts) if len(t) > maximum)
        raise InvalidArgument(f"{field}[{n}]", "TOO_LONG", f"must be at most {maximum} characters")
    return texts


def non_negative(column: Sequence[float], count: int, field: str, reason: str) -> np.ndarray:
    """A column of numbers (prices, amounts) as a float array, ``count`` zeros when empty;
    the first entry that is not a finite number >= 0 (NaN included) is named."""
    numbers = np.array(column, dtype=np.float64) if column else np.zeros(count)
    with np.errstate(invalid="ignore"):
        invalid = ~(numbers >= 0) | ~np.isfinite(numbers)
    if invalid.any():
        raise InvalidArgument(
            f"{field}[{int(np.argmax(invalid))}]", reason, "must be a finite number >= 0"
        )
    return numbers


def attributes_json(columns: Sequence[Any], count: int, field: str) -> list[str]:
    """`AttributeColumn`s checked as `check_attributes` checks a map (at most 64 keys of 1-64
    characters, each key once, values at most 1024), and each record's attributes as the JSON
    text the stores keep; an empty value means the record has no such attribute.

    When every record has every key (a catalog's usual shape), the texts are joined in C from
    the values encoded a column at a time, exactly as ``json.dumps`` writes them; otherwise
    each record's dict goes through ``json.dumps``."""
    if not columns:
        return ["{}"] * count
    if len(columns) > MAX_ATTRIBUTES:
        raise InvalidArgument(field, "TOO_MANY_ATTRIBUTES", f"has more than {MAX_ATTRIBUTES} keys")
    keys: dict[str, int] = {}
    values: list[list[str]] = []
    for n, column in enumerate(columns):
        key = column.key
        if not 0 < len(key) <= MAX_ATTRIBUTE_KEY:
            raise InvalidArgument(
                f"{field}[{n}].key",
                "INVALID_ATTRIBUTE_KEY",
                f"keys must be 1-{MAX_ATTRIBUTE_KEY} characters",
            )
        if keys.setdefault(key, n) != n:
            raise InvalidArgument(
                f"{field}[{n}].key", "DUPLICATE_ATTRIBUTE", f"repeats {field}[{keys[key]}].key"
            )
        column_values = list(column.values)
        if len(column_values) != count:
            raise InvalidArgument(
                f"{field}[{n}].values",
                "LENGTH_MISMATCH",
                f"has {len(column_values)} entries, one per record ({count}) is needed",
            )
        if max(map(len, column_values), default=0) > MAX_ATTRIBUTE_VALUE:
            k = next(k for k, v in enumerate(column_values) if len(v) > MAX_ATTRIBUTE_VALUE)
            raise InvalidArgument(
                f"{field}[{n}].values[{k}]",
                "ATTRIBUTE_TOO_LONG",
                f"values must be at most {MAX_ATTRIBUTE_VALUE} characters",
            )
        values.append(column_values)
    if any("" in column_values for column_values in values):
        dumps = json.dumps
        names = list(keys)
        return [
            dumps({k: v for k, v in zip(names, row, strict=True) if v})
            for row in zip(*values, strict=True)
        ]
    pieces: list[Any] = []
    for n, (key, column_values) in enumerate(zip(keys, values, strict=True)):
        pieces.append(repeat(("{" if n == 0 else ", ") + encode_basestring_ascii(key) + ": "))
        pieces.append(map(encode_basestring_ascii, column_values))
    pieces.append(repeat("}"))
    return list(map("".join, zip(*pieces, strict=False)))  # the repeats run on
