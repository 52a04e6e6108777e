"""The OpenTelemetry demo's recommendation contract, answered by Kosmos.

The demo's frontend calls ``oteldemo.RecommendationService/ListRecommendations`` with the
shopper's ``user_id`` and the ``product_ids`` in view; the demo's own service ignores the user
and answers five products at random. `build_adapter` serves that same contract (the demo's own
``demo.proto``, vendored here) and answers from Kosmos: ``Recommend`` for the user as a customer
of one shop (`KOSMOS_OTELDEMO_SHOP`), the products in view as the page's items (never offered
back), and, for a user Kosmos does not know yet, the items similar to the first product in
view. ``python -m kosmos.oteldemo`` runs it (see the README's "OpenTelemetry demo" section).
"""

from kosmos.oteldemo._adapter import (
    DEFAULT_LISTEN,
    DEFAULT_SHOP,
    MAX_RESPONSES,
    RecommendationAdapter,
    build_adapter,
)

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_SHOP",
    "MAX_RESPONSES",
    "RecommendationAdapter",
    "build_adapter",
]
