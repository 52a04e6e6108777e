"""Parses a plugin's settings: strings from ``KOSMOS_PLUGIN__<NAME>__<SETTING>`` variables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: how to read it, its default, and what it means (for error messages)."""

    parse: Callable[[str], Any]
    default: Any
    rule: str


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a non-negative number")
    return value


def choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def parse_settings(
    plugin: str, settings: Mapping[str, str], spec: Mapping[str, Setting]
) -> dict[str, Any]:
    """Reads ``settings`` against ``spec``; names are case-insensitive (env vars are upper case).

    Raises:
        ValueError: A setting is unknown (all unknown names are listed) or has a bad value.
    """
    given = {name.lower(): value for name, value in settings.items()}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError(f"{plugin}: unknown settings {unknown}; known: {sorted(spec)}")
    values: dict[str, Any] = {}
    for name, setting in spec.items():
        if name not in given:
            values[name] = setting.default
            continue
        try:
            values[name] = setting.parse(given[name].strip())
        except ValueError as exc:
            raise ValueError(
                f"{plugin}: setting {name}={given[name]!r} is invalid: {setting.rule}"
            ) from exc
    return values
