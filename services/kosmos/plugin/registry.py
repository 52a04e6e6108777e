"""Finds recommender plugins by entry point, exactly as it finds a partner's.

Built-ins (popularity, and the LightFM and implicit packages under ``plugins/``) register in
their own ``pyproject.toml`` under ``kosmos.recommenders``; the core never imports them by name.
A plugin that fails to load is logged and skipped, unless the configuration needs it: then
startup fails naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from importlib import metadata

from kosmos.plugin.protocol import RecommenderFactory

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kosmos.recommenders"


class PluginLoadError(RuntimeError):
    """A plugin the configuration needs is missing, disabled or broken."""


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """A plugin found and imported: its name, factory and the distribution that ships it."""

    name: str
    factory: RecommenderFactory
    distribution: str


def discover(
    required: Collection[str] = (),
    disabled: Collection[str] = (),
    entry_points: Callable[[], Iterable[metadata.EntryPoint]] | None = None,
) -> dict[str, LoadedPlugin]:
    """Loads every registered recommender plugin.

    Args:
        required: Names the configuration routes to; any that cannot load fails startup.
        disabled: Names never to load (``KOSMOS_DISABLED_RECOMMENDERS``).
        entry_points: Where to look; the installed distributions by default (tests pass fakes).

    Returns:
        Plugin name → loaded plugin.

    Raises:
        PluginLoadError: A required plugin is missing, disabled or fails to import.
    """
    found = entry_points() if entry_points else metadata.entry_points(group=ENTRY_POINT_GROUP)
    loaded: dict[str, LoadedPlugin] = {}
    failures: dict[str, str] = {}
    for ep in found:
        if ep.group != ENTRY_POINT_GROUP:
            continue
        if ep.name in disabled:
            log.info("recommender plugin %r is disabled", ep.name)
            continue
        if ep.name in loaded:
            raise PluginLoadError(f"two plugins are registered as {ep.name!r}")
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            factory = ep.load()
        except Exception as exc:  # A broken third-party plugin must not take the service down.
            failures[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("recommender plugin %r (%s) failed to load: %s", ep.name, dist, exc)
            continue
        if not callable(factory):
            failures[ep.name] = f"{ep.value} is not callable"
            continue
        loaded[ep.name] = LoadedPlugin(ep.name, factory, dist)
    for name in required:
        if name in loaded:
            continue
        if name in disabled:
            why = "it is disabled by KOSMOS_DISABLED_RECOMMENDERS"
        elif name in failures:
            why = f"it failed to load ({failures[name]})"
        else:
            why = f"no installed package registers it under {ENTRY_POINT_GROUP!r}"
        raise PluginLoadError(f"recommender {name!r} is routed to, but {why}")
    return loaded
