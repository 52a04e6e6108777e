"""Kosmos recommender plugins over `implicit <https://github.com/benfred/implicit>`_.

Registered under the ``kosmos.recommenders`` entry-point group (see this package's
``pyproject.toml``); the core finds them there and never imports this package by name:

- ``als``: alternating least squares, with request-time fold-in, ``partial_fit`` and ``explain``.
- ``bpr``: Bayesian personalised ranking.
- ``item_item``: item-item nearest neighbours, cosine or BM25 similarity.

Each factory takes the plugin's settings (strings, from ``KOSMOS_PLUGIN__<NAME>__<SETTING>``)
and raises ValueError naming any setting it does not know or cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping

from kosmos_implicit._factors import ALSRecommender, BPRRecommender
from kosmos_implicit._item_item import ItemItemRecommender
from kosmos_implicit._settings import (
    Setting,
    choice,
    non_negative_float,
    non_negative_int,
    parse_settings,
    positive_float,
    positive_int,
)

__all__ = [
    "ALS_SETTINGS",
    "BPR_SETTINGS",
    "ITEM_ITEM_SETTINGS",
    "ALSRecommender",
    "BPRRecommender",
    "ItemItemRecommender",
    "create_als",
    "create_bpr",
    "create_item_item",
]

_SEED = Setting(int, 42, "an integer seed; a fixed seed makes fitting twice give the same model")
_THREADS = Setting(non_negative_int, 1, "a thread count; 0 means one per core")
_ANN_MIN_ITEMS = Setting(
    non_negative_int,
    # Below this many live items the full scan is as cheap as the index (tools/bench_catalog.py).
    20_000,
    "a non-negative integer: from this many live items on, serve from an ANN index (0: never)",
)
_ANN_EF_SEARCH = Setting(positive_int, 128, "a positive integer (HNSW search breadth)")

ALS_SETTINGS: Mapping[str, Setting] = {
    "factors": Setting(positive_int, 64, "a positive integer"),
    "regularization": Setting(non_negative_float, 0.01, "a non-negative number"),
    "alpha": Setting(positive_float, 1.0, "a positive number (confidence = alpha × weight)"),
    "iterations": Setting(positive_int, 15, "a positive integer"),
    "random_state": _SEED,
    "num_threads": _THREADS,
    "ann_min_items": _ANN_MIN_ITEMS,
    "ann_ef_search": _ANN_EF_SEARCH,
}
"""``als`` settings: name → how it is read, its default and what it must be."""

BPR_SETTINGS: Mapping[str, Setting] = {
    "factors": Setting(positive_int, 64, "a positive integer"),
    "learning_rate": Setting(positive_float, 0.005, "a positive number"),
    "regularization": Setting(non_negative_float, 0.01, "a non-negative number"),
    "iterations": Setting(positive_int, 100, "a positive integer"),
    "random_state": _SEED,
    "num_threads": _THREADS,
    "ann_min_items": _ANN_MIN_ITEMS,
    "ann_ef_search": _ANN_EF_SEARCH,
}
"""``bpr`` settings. More than one thread makes SGD, and so the model, irreproducible."""

ITEM_ITEM_SETTINGS: Mapping[str, Setting] = {
    "k": Setting(positive_int, 50, "a positive integer (neighbours kept per item)"),
    "similarity": Setting(choice("cosine", "bm25"), "cosine", "cosine or bm25"),
    "k1": Setting(non_negative_float, 1.2, "a non-negative number (BM25 term saturation)"),
    "b": Setting(non_negative_float, 0.75, "a number from 0 to 1 (BM25 length normalisation)"),
    "num_threads": _THREADS,
}
"""``item_item`` settings; ``k1`` and ``b`` only matter with ``similarity=bm25``."""


def create_als(settings: Mapping[str, str]) -> ALSRecommender:
    """Entry point ``als``: implicit's ALS from its settings (see `ALS_SETTINGS`)."""
    return ALSRecommender(parse_settings("als", settings, ALS_SETTINGS))


def create_bpr(settings: Mapping[str, str]) -> BPRRecommender:
    """Entry point ``bpr``: implicit's BPR from its settings (see `BPR_SETTINGS`)."""
    return BPRRecommender(parse_settings("bpr", settings, BPR_SETTINGS))


def create_item_item(settings: Mapping[str, str]) -> ItemItemRecommender:
    """Entry point ``item_item``: item-item neighbours from its settings (`ITEM_ITEM_SETTINGS`)."""
    values = parse_settings("item_item", settings, ITEM_ITEM_SETTINGS)
    if not 0.0 <= values["b"] <= 1.0:
        raise ValueError(f"item_item: setting b={values['b']!r} is invalid: a number from 0 to 1")
    return ItemItemRecommender(values)
