"""``python -m kosmos.profile``: the profile service (profiles and catalog) on its own."""

from kosmos.common.config import KOSMOS_PROFILE_LISTEN, RecommendationSettings
from kosmos.common.runner import run_service
from kosmos.profile import installed_recommenders, services

if __name__ == "__main__":
    run_service(
        "kosmos-profile",
        KOSMOS_PROFILE_LISTEN,
        "127.0.0.1:50061",
        # Shop settings may name the recommenders this cluster's environment allows.
        lambda store, env: services(
            store, installed_recommenders(RecommendationSettings.from_env(env))
        ),
    )
