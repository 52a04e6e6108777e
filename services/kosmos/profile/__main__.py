"""``python -m kosmos.profile``: the profile service (profiles and catalog) on its own."""

from collections.abc import Callable

from kosmos.common.config import KOSMOS_PROFILE_LISTEN, RecommendationSettings
from kosmos.common.runner import run_service
from kosmos.profile import services
from kosmos.shopconfig import known_recommenders


def _known(settings: RecommendationSettings) -> Callable[[], frozenset[str]]:
    names = known_recommenders(settings)
    return lambda: names


if __name__ == "__main__":
    run_service(
        "kosmos-profile",
        KOSMOS_PROFILE_LISTEN,
        "0.0.0.0:50061",
        # Shop settings may route to the recommenders this cluster's environment knows.
        lambda store, env: services(store, _known(RecommendationSettings.from_env(env))),
    )
