"""Kosmos recommender plugin ``lightfm``: a LightFM hybrid model with cold start from features.

Registered under the ``kosmos.recommenders`` entry-point group as
``lightfm = kosmos_lightfm:create``; the core never imports this package by name.
"""

from kosmos_lightfm._recommender import (
    COLD_REASON,
    FALLBACK_REASON,
    SIMILAR_REASON,
    WARM_REASON,
    LightFMRecommender,
    TrainingState,
    create,
)
from kosmos_lightfm._settings import LOSSES, NAME, LightFMSettings

__all__ = [
    "COLD_REASON",
    "FALLBACK_REASON",
    "LOSSES",
    "NAME",
    "SIMILAR_REASON",
    "WARM_REASON",
    "LightFMRecommender",
    "LightFMSettings",
    "TrainingState",
    "create",
]
