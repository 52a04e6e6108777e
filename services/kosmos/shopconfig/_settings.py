"""What applies to one shop: its own settings over the cluster-wide environment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from types import MappingProxyType
from typing import Any

from kosmos.common.config import DEFAULT_LIST_LENGTH, RecommendationSettings
from kosmos.plugin import LoadedPlugin, RecommenderFactory, discover
from kosmos.plugin.routing import Routing
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights
from kosmos.recommendation.seen import Repeat, SeenPolicy
from kosmos.store import Store
from kosmos.store.records import InteractionType

LEARNED, ALWAYS, NEVER = Repeat.LEARNED.value, Repeat.ALWAYS.value, Repeat.NEVER.value


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """Everything configurable per shop, as it applies to one shop right now.

    Attributes:
        shop_id: The shop.
        revision: The shop's settings revision these come from (0: the cluster's alone).
        routing: The recommender chains.
        plugin_settings: Plugin name → setting → value (the cluster's, overridden key by key).
        max_per_category: Variety: offers per category in a page while others are left.
        list_length: Offers in the list behind a recommendation id (``KOSMOS_LIST_LENGTH``).
        seen_items: The seen-item policy.
        weights: Interaction weights (`kosmos.plugin.signals.to_plugin` takes them).
    """

    shop_id: str
    revision: int
    routing: Routing
    plugin_settings: Mapping[str, Mapping[str, str]]
    max_per_category: int
    seen_items: SeenPolicy
    weights: Weights = DEFAULT_WEIGHTS
    list_length: int = DEFAULT_LIST_LENGTH
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def cluster_policy(defaults: RecommendationSettings) -> SeenPolicy:
    """The cluster-wide seen-item policy (``KOSMOS_OWNED_INTERACTIONS`` and friends)."""
    return SeenPolicy(
        owned_types=defaults.owned_types,
        repeat_purchase=Repeat(defaults.repeat_purchase),
        repurchase_threshold=defaults.repurchase_threshold,
        repeatable_item_ids=defaults.repeatable_items,
        repeatable_categories=defaults.repeatable_categories,
    )


def _frozen(settings: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in settings.items()})


def resolve(
    shop_id: str, revision: int, document: Mapping[str, Any], defaults: RecommendationSettings
) -> EffectiveSettings:
    """A shop's settings document over the cluster's; each field the shop did not set is the
    cluster's.

    The document is what `ShopSettingsService` stored (validated on write): the fields the shop
    set, named as in ``kosmos.v1.ShopSettings``.
    """
    routing = Routing.parse(document["routing"]) if document.get("routing") else defaults.routing
    plugins = {name: dict(values) for name, values in defaults.plugin_settings.items()}
    for name, values in (document.get("plugin_settings") or {}).items():
        plugins.setdefault(name, {}).update(values)
    seen = document.get("seen_items") or {}
    policy = cluster_policy(defaults)
    if seen.get("owned_types"):
        owned = frozenset(InteractionType[k.upper()] for k in seen["owned_types"])
        policy = dataclass_replace(policy, owned_types=owned)
    if seen.get("repeat_purchase_mode"):
        policy = dataclass_replace(policy, repeat_purchase=Repeat(seen["repeat_purchase_mode"]))
    if seen.get("repurchase_threshold") is not None:
        policy = dataclass_replace(policy, repurchase_threshold=seen["repurchase_threshold"])
    if seen.get("repeatable_item_ids"):
        policy = dataclass_replace(
            policy, repeatable_item_ids=frozenset(seen["repeatable_item_ids"])
        )
    if seen.get("repeatable_categories"):
        policy = dataclass_replace(
            policy, repeatable_categories=frozenset(seen["repeatable_categories"])
        )
    weights = defaults.weights
    overrides: dict[str, Any] = {
        k: float(v) for k, v in (document.get("interaction_weights") or {}).items()
    }
    if overrides:
        weights = dataclass_replace(weights, **overrides)
    return EffectiveSettings(
        shop_id=shop_id,
        revision=revision,
        routing=routing,
        plugin_settings=_frozen(plugins),
        max_per_category=int(document.get("max_per_category") or defaults.max_per_category),
        seen_items=policy,
        weights=DEFAULT_WEIGHTS if weights == DEFAULT_WEIGHTS else weights,
        list_length=int(document.get("list_length") or defaults.list_length),
        document=document,
    )


class ShopConfig:
    """Per-shop settings for serving and training, cached by revision.

    `settings_for` costs one indexed read of the shop's revision number; the settings are
    resolved again only when it changed, so an update counts from the next request in every
    replica.
    """

    def __init__(self, store: Store, defaults: RecommendationSettings) -> None:
        self.store = store
        self.defaults = defaults
        self._cache: dict[str, EffectiveSettings] = {}
        self._lock = threading.Lock()

    def latest(self, shop_id: str) -> EffectiveSettings:
        """The settings last resolved for ``shop_id``, without a read (a request that reads the
        revision with its other inputs checks it with `settings_for` afterwards)."""
        cached = self._cache.get(shop_id)
        return cached if cached is not None else self.settings_for(shop_id)

    def settings_for(self, shop_id: str, revision: int | None = None) -> EffectiveSettings:
        """The settings that apply to ``shop_id`` now (the cluster's for an unknown shop), at
        ``revision`` when the caller read it already (`kosmos.store.ShopRevisions`)."""
        if revision is None:
            revision = self.store.settings_revision(shop_id) or 0
        cached = self._cache.get(shop_id)
        if cached is not None and cached.revision == revision:
            return cached
        document: Mapping[str, Any] = {}
        if revision:
            stored = self.store.get_shop_settings(shop_id, revision)
            document = stored.document if stored is not None else {}
        effective = resolve(shop_id, revision, document, self.defaults)
        with self._lock:
            self._cache[shop_id] = effective
        return effective


Recommenders = Mapping[str, RecommenderFactory | None]
"""What a shop's settings may name: recommender name → its factory, which checks plugin
settings (a ValueError names a bad one), or None when they cannot be checked here (an
out-of-process plugin)."""


def known_recommenders(
    defaults: RecommendationSettings, plugins: Mapping[str, LoadedPlugin] | None = None
) -> Recommenders:
    """The recommenders a shop's settings may name: ``plugins`` (the ones a cluster loaded), or
    else the installed ones (entry points, imported now) less the disabled ones; plus the
    out-of-process ones (``KOSMOS_REMOTE_RECOMMENDERS``)."""
    if plugins is None:
        plugins = discover(disabled=defaults.disabled | set(defaults.remote))
    known: dict[str, RecommenderFactory | None] = {
        name: None if plugin.distribution.startswith("remote:") else plugin.factory
        for name, plugin in plugins.items()
    }
    known.update((name, None) for name in defaults.remote)
    return known
