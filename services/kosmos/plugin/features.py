"""Item features from a catalog entry, built one way for serving, training and evaluation.

Free text (a title, a description attribute) becomes word features, ``word:<TOKEN>`` = ``"1"``,
so two items that share words share features; a whole sentence as one value would be a feature
of one item alone. Short values without spaces (``colour=red``) stay categorical. The price
goes in twice: the number itself (``price``, for models that read numbers, such as a ranker) and
its octave (``price_band``, for models that one-hot features). One-hot encoders skip the names
in `NUMERIC`.

`kosmos.training.data` (what the service fits on) and `kosmos.evaluation.datasets` (what
``kosmos evaluate`` fits on) both call `item_features` and `tokenize`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = ["NUMERIC", "WORD_PREFIX", "categorical", "item_features", "price_band", "tokenize"]

WORD_PREFIX = "word:"
NUMERIC = frozenset({"price"})
"""Feature names whose value is a number, not a category: one-hot encoders leave them out."""
MIN_WORD = 3
_WORD = re.compile(rf"[^\W\d_]{{{MIN_WORD},}}")


def tokenize(text: str) -> list[str]:
    """The words of ``text``: runs of at least three letters, upper-cased, each once, in order.

    ``"Set of 3 Cake Tins, Pantry design"`` → ``["SET", "CAKE", "TINS", "PANTRY", "DESIGN"]``.
    Digits and punctuation split words; short words (``of``) carry little and are dropped.
    """
    return list(dict.fromkeys(_WORD.findall(text.upper())))


def price_band(price: float) -> str:
    """Octaves of price, ``"0"`` to ``"9"``: band 3 is 1 to 2 (in the shop's currency) and each
    band up doubles it."""
    return str(max(0, min(math.floor(math.log2(price)) + 3, 9)))


def _free_text(value: str) -> bool:
    return any(c.isspace() for c in value.strip())


def item_features(
    attributes: Mapping[str, str],
    *,
    title: str = "",
    category: str = "",
    brand: str = "",
    price: float = 0.0,
) -> dict[str, str]:
    """An item's features: categorical attributes as they are, free-text attributes and the
    title as word features, category, brand, and the price with its band (when above 0).

    Attributes that name ``category``, ``brand``, ``price`` or ``price_band`` themselves are
    kept over the computed ones.
    """
    features: dict[str, str] = {}
    words: list[str] = tokenize(title) if title else []
    for key, value in attributes.items():
        if _free_text(value):
            words.extend(tokenize(value))
        elif value:
            features[key] = value
    features.update((f"{WORD_PREFIX}{w}", "1") for w in dict.fromkeys(words))
    if category:
        features.setdefault("category", category)
    if brand:
        features.setdefault("brand", brand)
    if price > 0 and math.isfinite(price):
        features.setdefault("price", f"{price:g}")
        features.setdefault("price_band", price_band(price))
    return features


def categorical(features: Mapping[str, str]) -> dict[str, str]:
    """``features`` without the numeric ones (what a one-hot encoder should see)."""
    return {k: v for k, v in features.items() if k not in NUMERIC}
