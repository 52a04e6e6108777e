"""The trainer: fits every routed recommender of every shop and publishes a new version.

Run as ``python -m kosmos.trainer`` (a CronJob in the cluster). Recommendation replicas pick
the new version up on their own (``KOSMOS_MODEL_POLL_SECONDS``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from rich.table import Table

from kosmos.common import metrics
from kosmos.plugin import LoadedPlugin, TrainingData
from kosmos.store import Store
from kosmos.training.artifacts import Artifacts
from kosmos.training.data import training_data
from kosmos.training.holdout import holdout_metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What happened to one (shop, recommender)."""

    shop: str
    recommender: str
    version: str | None
    interactions: int
    fit_seconds: float
    error: str = ""
    skipped: bool = False
    """No fit: the current version was fitted on the same data (`Store.data_version`)."""


def _unchanged(artifacts: Artifacts, shop: str, name: str, data_version: str) -> str | None:
    """The current version's name when it was fitted on ``data_version``; None otherwise."""
    current = artifacts.current(shop, name)
    if current is None:
        return None
    for version in artifacts.versions(shop, name):
        if version.version == current and version.data_version == data_version:
            return current
    return None


def train(
    store: Store,
    artifacts: Artifacts,
    plugins: Mapping[str, LoadedPlugin],
    names: Sequence[str],
    plugin_settings: Mapping[str, Mapping[str, str]],
    shops: Iterable[str] | None = None,
    keep: int = 5,
    on_step: Callable[[TrainResult], None] | None = None,
    force: bool = False,
    evaluate: bool = True,
    variants: Callable[[str], Mapping[str, tuple[str, Mapping[str, str]]]] | None = None,
) -> list[TrainResult]:
    """Fits ``names`` for each shop and publishes each model as the new current version.

    A recommender that fails to fit is reported and leaves the current version serving.

    Args:
        on_step: Called after each (shop, recommender) with its result (progress display).
        force: Fit even when the shop's data has not changed since the current version.
        evaluate: Give each version its holdout figures (`kosmos.training.holdout`): one more
            fit, on the shop's history up to its last 10% of events.
        variants: A shop's experiment variant models (`ModelHub.variant_models`): model name
            (``als@experiment.variant``) → (recommender, the variant's settings). Each whose
            recommender is in ``names`` is fitted with ``plugin_settings`` overlaid by the
            variant's and published under its own name; those of ended experiments are
            deleted.
    """
    results = []
    for shop in shops if shops is not None else store.list_shop_ids():
        with tracer.start_as_current_span("train.shop") as span:
            span.set_attribute("kosmos.shop", shop)
            data_version = store.data_version(shop)
            data = None
            own = dict(variants(shop)) if variants is not None else {}
            jobs = [(name, name, dict(plugin_settings.get(name, {}))) for name in names]
            jobs += [
                (model, base, {**plugin_settings.get(base, {}), **values})
                for model, (base, values) in sorted(own.items())
                if base in names
            ]
            for gone in artifacts.recommenders(shop):
                if "@" in gone and gone not in own:
                    artifacts.drop(shop, gone)  # its experiment ended
            for name, base, settings in jobs:
                unchanged = None if force else _unchanged(artifacts, shop, name, data_version)
                if unchanged is not None:  # the shop's data has not moved since that fit
                    result = TrainResult(shop, name, unchanged, 0, 0.0, skipped=True)
                    results.append(result)
                    if on_step is not None:
                        on_step(result)
                    continue
                if data is None:
                    data = training_data(store, shop, time.time())
                plugin = plugins[base]
                started = time.perf_counter()
                with tracer.start_as_current_span("train.fit") as fit_span:
                    fit_span.set_attribute("kosmos.shop", shop)
                    fit_span.set_attribute("kosmos.recommender", name)
                    fit_span.set_attribute("kosmos.interactions.count", len(data.interactions))
                    result = _fit_one(
                        artifacts,
                        plugin,
                        shop,
                        name,
                        settings,
                        data,
                        keep,
                        started,
                        data_version,
                        evaluate,
                    )
                    if result.version:
                        # Versions that may hold an erased customer go once replaced.
                        artifacts.prune_masked(shop, name, store.latest_mask_time(shop))
                    if result.version:
                        fit_span.set_attribute("kosmos.model.version", result.version)
                    else:
                        fit_span.set_status(Status(StatusCode.ERROR, result.error))
                metrics.record_training(
                    result.fit_seconds, shop, name, "error" if result.error else "ok", "trainer"
                )
                results.append(result)
                if on_step is not None:
                    on_step(result)
    return results


def _fit_one(
    artifacts: Artifacts,
    plugin: LoadedPlugin,
    shop: str,
    name: str,
    settings: dict[str, str],
    data: TrainingData,
    keep: int,
    started: float,
    data_version: str = "",
    evaluate: bool = True,
) -> TrainResult:
    try:
        model = plugin.factory(settings)
        model.fit(data)
        seconds = time.perf_counter() - started
        figures: dict[str, float] = {}
        if evaluate:
            try:
                figures = holdout_metrics(plugin, settings, data)
            except Exception:  # the figures are for people; a failure must not stop publishing
                log.exception("holdout figures for %r of shop %r failed", name, shop)
        version = artifacts.publish(
            shop,
            name,
            model.save,
            interactions=len(data.interactions),
            fit_seconds=seconds,
            distribution=plugin.distribution,
            settings=settings,
            data_version=data_version,
            metrics=figures,
        )
        artifacts.prune(shop, name, keep)
        return TrainResult(shop, name, version.version, len(data.interactions), seconds)
    except Exception as exc:  # One plugin's failure must not stop the others.
        log.exception("training %r for shop %r failed", name, shop)
        return TrainResult(
            shop,
            name,
            None,
            len(data.interactions),
            time.perf_counter() - started,
            f"{type(exc).__name__}: {exc}",
        )


def results_table(results: list[TrainResult]) -> Table:
    table = Table(title="Training", title_justify="left")
    for column in ("shop", "recommender", "version", "interactions", "fit s", "error"):
        table.add_column(column, justify="right" if column in ("interactions", "fit s") else "left")
    for r in results:
        table.add_row(
            r.shop,
            r.recommender,
            r.version or "-",
            f"{r.interactions:,}",
            f"{r.fit_seconds:.2f}",
            r.error or ("unchanged data: fit skipped" if r.skipped else ""),
        )
    return table
