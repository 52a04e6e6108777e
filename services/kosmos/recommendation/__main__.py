"""``python -m kosmos.recommendation``: the recommendation service on its own."""

from kosmos.common.config import KOSMOS_RECOMMENDATION_LISTEN, RecommendationSettings
from kosmos.common.runner import run_service
from kosmos.recommendation import services

if __name__ == "__main__":
    run_service(
        "kosmos-recommendation",
        KOSMOS_RECOMMENDATION_LISTEN,
        "127.0.0.1:50063",
        lambda store, env: services(store, RecommendationSettings.from_env(env)),
    )
