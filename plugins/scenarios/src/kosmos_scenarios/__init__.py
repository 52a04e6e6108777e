"""Kosmos shopping-scenario recommenders, each a plugin on the ordinary contract.

- ``buy_again``: the customer's own items by repurchase cycle (`BuyAgainRecommender`).
- ``bought_together``: co-basket partners of the items in view (`BoughtTogetherRecommender`).
- ``trending``: items whose recent rate rises above their baseline (`TrendingRecommender`).
- ``new_arrivals``: the newest items, tilted to the customer's categories
  (`NewArrivalsRecommender`).

numpy and scipy only; the core finds them by entry point (``kosmos.recommenders``).
"""

from kosmos_scenarios._bought_together import BoughtTogetherRecommender, create_bought_together
from kosmos_scenarios._buy_again import BuyAgainRecommender, create_buy_again
from kosmos_scenarios._common import History
from kosmos_scenarios._trending import (
    NewArrivalsRecommender,
    TrendingRecommender,
    create_new_arrivals,
    create_trending,
)

__all__ = [
    "BoughtTogetherRecommender",
    "BuyAgainRecommender",
    "History",
    "NewArrivalsRecommender",
    "TrendingRecommender",
    "create_bought_together",
    "create_buy_again",
    "create_new_arrivals",
    "create_trending",
]
