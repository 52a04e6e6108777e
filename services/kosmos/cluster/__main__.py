"""``python -m kosmos.cluster``: the whole cluster in one process (embedded SQLite by default)."""

from kosmos.cluster import services
from kosmos.common.config import KOSMOS_CLUSTER_LISTEN, RecommendationSettings
from kosmos.common.runner import run_service

if __name__ == "__main__":
    run_service(
        "kosmos",
        KOSMOS_CLUSTER_LISTEN,
        "127.0.0.1:50051",
        lambda store, env: services(store, RecommendationSettings.from_env(env)),
    )
