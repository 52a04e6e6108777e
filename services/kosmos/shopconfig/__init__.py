"""Per-shop configuration: what a shop sets (`ShopSettingsService`) over the cluster's
environment, resolved for serving and training.

    config = ShopConfig(store, RecommendationSettings.from_env())
    effective = config.settings_for("demo")   # cheap: one read of the revision number
    effective.routing, effective.plugin_settings, effective.max_per_category
    effective.seen_items.excluded(owned, learned, placement)  # kosmos.recommendation.seen
    to_plugin(interaction, effective.weights)

Imports no grpc: the service lives in `kosmos.shopconfig.servicer`.
"""

from kosmos.shopconfig._settings import (
    ALWAYS,
    LEARNED,
    NEVER,
    EffectiveSettings,
    Recommenders,
    ShopConfig,
    cluster_policy,
    known_recommenders,
    resolve,
)

__all__ = [
    "ALWAYS",
    "LEARNED",
    "NEVER",
    "EffectiveSettings",
    "Recommenders",
    "ShopConfig",
    "cluster_policy",
    "known_recommenders",
    "resolve",
]
