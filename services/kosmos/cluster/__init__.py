"""Every Kosmos service in one process on one port: the embedded mode."""

from __future__ import annotations

from collections.abc import Mapping

from kosmos import feedback, profile, recommendation
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import Service
from kosmos.plugin import LoadedPlugin
from kosmos.shopconfig import known_recommenders
from kosmos.store import Store

__all__ = ["services"]


def services(
    store: Store,
    settings: RecommendationSettings,
    plugins: Mapping[str, LoadedPlugin] | None = None,
) -> list[Service]:
    """Profile, catalog, feedback and recommendation, built by their own factories."""
    if plugins is None:
        plugins = recommendation.load_plugins(settings)
    known = known_recommenders(settings, plugins)
    return [
        *profile.services(store, lambda: known),
        *feedback.services(store),
        *recommendation.services(store, settings, plugins),
    ]
