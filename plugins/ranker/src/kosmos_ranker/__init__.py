"""Kosmos learned ranker: LightGBM LambdaRank over the candidates of other recommenders.

Entry point ``ranker`` (`create`). Its sources are other installed recommenders, found by entry
point as the service finds them; see the package README for the features and settings.
"""

from kosmos_ranker._features import Stats, feature_names, price_of
from kosmos_ranker._ranker import RankerRecommender, create, split_settings

__all__ = ["RankerRecommender", "Stats", "create", "feature_names", "price_of", "split_settings"]
