"""``python -m kosmos.feedback``: the feedback service on its own."""

from kosmos.common.config import KOSMOS_FEEDBACK_LISTEN
from kosmos.common.runner import run_service
from kosmos.feedback import services

if __name__ == "__main__":
    run_service(
        "kosmos-feedback",
        KOSMOS_FEEDBACK_LISTEN,
        "127.0.0.1:50062",
        lambda store, _env: services(store),
    )
