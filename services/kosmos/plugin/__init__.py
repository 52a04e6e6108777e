"""The recommender plugin contract, its discovery, and the conformance suite
(`kosmos.plugin.testing`)."""

from kosmos.plugin.protocol import (
    Capabilities,
    Contribution,
    ExplainQuery,
    Interaction,
    InteractionType,
    NotFitted,
    Recommender,
    RecommenderFactory,
    RecommendQuery,
    Scored,
    SimilarItemsQuery,
    TrainingData,
    Unsupported,
)
from kosmos.plugin.reasons import closest_history
from kosmos.plugin.registry import ENTRY_POINT_GROUP, LoadedPlugin, PluginLoadError, discover

__all__ = [
    "ENTRY_POINT_GROUP",
    "Capabilities",
    "Contribution",
    "ExplainQuery",
    "Interaction",
    "InteractionType",
    "LoadedPlugin",
    "NotFitted",
    "PluginLoadError",
    "RecommendQuery",
    "Recommender",
    "RecommenderFactory",
    "Scored",
    "SimilarItemsQuery",
    "TrainingData",
    "Unsupported",
    "closest_history",
    "discover",
]
