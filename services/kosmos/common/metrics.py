"""Kosmos's own metrics, on the OpenTelemetry metrics API only.

`kosmos.common.telemetry.configure` installs the SDK (OTLP export and the Prometheus scrape
endpoint); until it runs, or in a process that never calls it, every instrument here is a no-op
proxy, so domain code records unconditionally. The RPC metrics (``rpc.server.call.duration``)
come from the telemetry interceptor; the README's "Observe" section lists every metric.

Attributes never carry customer or item ids: a shop, a recommender, a model version, an
interaction type and a reason are few, so every series stays small.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

meter = metrics.get_meter("kosmos")

# Seconds, from a fast cache hit to a slow refit: the SDK's default buckets are for milliseconds.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
            3600, 7200, 21600, 86400)  # fmt: skip

OFFERS_SERVED = meter.create_counter(
    "kosmos.offers.served",
    unit="{offer}",
    description="Offers returned to shoppers, by the recommender that proposed each.",
)
FALLBACKS = meter.create_counter(
    "kosmos.recommend.fallbacks",
    unit="{fallback}",
    description="Times the routed chain moved past a recommender: no_model, failed or short.",
)
INTERACTIONS_INGESTED = meter.create_counter(
    "kosmos.feedback.interactions",
    unit="{interaction}",
    description="Interactions stored by the feedback service (replays not counted).",
)
FRESHNESS = meter.create_histogram(
    "kosmos.feedback.freshness",
    unit="s",
    description="From the oldest interaction a new model adds to that model serving.",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
TRAINING_DURATION = meter.create_histogram(
    "kosmos.training.duration",
    unit="s",
    description="Time to fit one recommender for one shop (trainer or in-process refit).",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
EVENT_LAG = meter.create_histogram(
    "kosmos.events.lag",
    unit="s",
    description="From an event's publication on the event engine to its handling here.",
    explicit_bucket_boundaries_advisory=_SECONDS,
)


def record_offers(recommenders: Iterable[str], rpc: str) -> None:
    """Counts served offers, one per entry of ``recommenders`` (the recommender of each offer).

    Args:
        recommenders: The recommender behind each offer of the page.
        rpc: ``recommend`` or ``similar_items``.
    """
    counts: dict[str, int] = {}
    for name in recommenders:
        counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        OFFERS_SERVED.add(count, {"kosmos.recommender": name, "kosmos.rpc": rpc})


def record_fallback(recommender: str, reason: str) -> None:
    """Counts the chain moving past ``recommender`` for ``reason`` (no_model, failed, short)."""
    FALLBACKS.add(1, {"kosmos.recommender": recommender, "kosmos.fallback.reason": reason})


def record_interactions(types: Iterable[str]) -> None:
    """Counts stored interactions by type (``view``, ``purchase``...)."""
    counts: dict[str, int] = {}
    for name in types:
        counts[name] = counts.get(name, 0) + 1
    for name, count in counts.items():
        INTERACTIONS_INGESTED.add(count, {"kosmos.interaction.type": name})


def record_freshness(seconds: float, shop: str, recommender: str) -> None:
    """Records how long feedback took to reach a serving model of ``recommender``."""
    FRESHNESS.record(max(seconds, 0.0), {"kosmos.shop": shop, "kosmos.recommender": recommender})


def record_training(seconds: float, shop: str, recommender: str, outcome: str, where: str) -> None:
    """Records one fit.

    Args:
        seconds: How long the fit took.
        shop: The shop trained.
        recommender: The recommender trained.
        outcome: ``ok`` or ``error``.
        where: ``trainer`` (the CronJob) or ``in_process`` (a recommendation replica).
    """
    TRAINING_DURATION.record(
        seconds,
        {
            "kosmos.shop": shop,
            "kosmos.recommender": recommender,
            "kosmos.training.outcome": outcome,
            "kosmos.training.where": where,
        },
    )


def record_event_lag(seconds: float, stream: str = "") -> None:
    """Records the lag of one event: now minus the time it was published.

    The event engine's consumers call this for each event they handle, e.g.
    ``record_event_lag(time.time() - event.publish_time, stream="interactions")``.

    Args:
        seconds: The lag; negative values (clock skew) count as 0.
        stream: The stream or channel the event came from.
    """
    EVENT_LAG.record(max(seconds, 0.0), {"kosmos.events.stream": stream} if stream else {})


@dataclass(frozen=True, slots=True)
class ModelState:
    """One serving model, as the model gauges report it."""

    shop: str
    recommender: str
    version: str
    built_time: float
    """When the model was built: the artifact's creation or the in-process fit (epoch seconds)."""


class ModelSource(Protocol):
    """What holds serving models (a recommendation replica's model hub)."""

    def model_states(self) -> Iterable[ModelState]: ...


_sources: weakref.WeakSet[ModelSource] = weakref.WeakSet()
_sources_lock = threading.Lock()


def watch_models(source: ModelSource) -> None:
    """Reports ``source.model_states()`` in ``kosmos.model.age`` for as long as it lives."""
    with _sources_lock:
        _sources.add(source)


def _models() -> Iterator[ModelState]:
    with _sources_lock:
        sources = list(_sources)
    for source in sources:
        yield from source.model_states()


def _model_age(_options: CallbackOptions) -> Iterable[Observation]:
    now = time.time()
    return [
        Observation(
            max(now - m.built_time, 0.0),
            {
                "kosmos.shop": m.shop,
                "kosmos.recommender": m.recommender,
                "kosmos.model.version": m.version,
            },
        )
        for m in _models()
    ]


meter.create_observable_gauge(
    "kosmos.model.age",
    callbacks=[_model_age],
    unit="s",
    description="Age of each serving model; its kosmos.model.version attribute names the version.",
)
