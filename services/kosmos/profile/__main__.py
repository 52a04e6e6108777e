"""``python -m kosmos.profile``: the profile service (profiles and catalog) on its own."""

from kosmos.common.config import KOSMOS_PROFILE_LISTEN
from kosmos.common.runner import run_service
from kosmos.profile import services

if __name__ == "__main__":
    run_service(
        "kosmos-profile",
        KOSMOS_PROFILE_LISTEN,
        "127.0.0.1:50061",
        lambda store, _env: services(store),
    )
