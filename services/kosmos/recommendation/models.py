"""The serving model of each (shop, recommender), where it comes from, and how it is swapped.

Two sources:
- **artifacts** (``KOSMOS_MODEL_DIR``): the trainer publishes versions; a replica loads the
  current one, looks for a new current version every ``KOSMOS_MODEL_POLL_SECONDS`` and swaps it
  in. Rolling back is the trainer's ``CURRENT`` pointing at an older version.
- **in process**: recommenders without artifacts (all of them when no model directory is set;
  otherwise those in ``KOSMOS_FIT_IN_PROCESS``) are fitted here on first use and refitted every
  ``KOSMOS_MODEL_REFRESH_SECONDS``.

Either way a new model is built on a fresh instance and swapped in with one assignment:
requests in flight keep the model they started with, none is dropped or sees half a model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from opentelemetry import trace

from kosmos.common import metrics
from kosmos.common.deadline import deadline_scope
from kosmos.plugin import LoadedPlugin, Recommender
from kosmos.store import Store
from kosmos.training.artifacts import Artifacts
from kosmos.training.data import training_data

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class Serving:
    """A model in service and where it came from: an artifact version, or "in-process"."""

    model: Recommender
    version: str
    built_time: float = 0.0
    """When its data was read: the artifact's creation, or the in-process fit (epoch seconds)."""


class ModelHub:
    """Holds the serving model of each routed recommender for each shop."""

    def __init__(
        self,
        store: Store,
        plugins: Mapping[str, LoadedPlugin],
        names: tuple[str, ...],
        plugin_settings: Mapping[str, Mapping[str, str]],
        refresh_seconds: float,
        artifacts: Artifacts | None = None,
        fit_in_process: Collection[str] = ("popularity",),
        poll_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        pins: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.names = names
        self.plugin_settings = plugin_settings
        self.refresh_seconds = refresh_seconds
        self.artifacts = artifacts
        # Without artifacts, everything is fitted here.
        self.fit_in_process = frozenset(names if artifacts is None else fit_in_process)
        self.poll_seconds = poll_seconds
        self.clock = clock
        # (shop, recommender) → the version an operator pinned (KOSMOS_MODEL_PINS).
        self.pins = dict(pins or {})
        self._serving: dict[tuple[str, str], Serving] = {}
        self._fitted_shops: set[str] = set()
        self._fit_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.watch_models(self)

    def model_states(self) -> list[metrics.ModelState]:
        """Every serving model (the ``kosmos.model.age`` gauge reads this)."""
        return [
            metrics.ModelState(shop, name, s.version, s.built_time)
            for (shop, name), s in list(self._serving.items())
        ]

    def _swap(self, shop_id: str, name: str, serving: Serving) -> None:
        previous = self._serving.get((shop_id, name))
        self._serving[(shop_id, name)] = serving
        if previous is not None and previous.built_time:
            # Feedback recorded just after the previous model read its data waited until now.
            metrics.record_freshness(serving.built_time - previous.built_time, shop_id, name)

    def create(self, name: str) -> Recommender:
        """A fresh, unfitted instance of plugin ``name`` with its configured settings."""
        return self.plugins[name].factory(self.plugin_settings.get(name, {}))

    def get(self, shop_id: str, name: str) -> Recommender | None:
        """The serving model; loads or fits the shop's models first if it never was."""
        serving = self._serving.get((shop_id, name))
        if serving is None and shop_id not in self._fitted_shops:
            # A model outlives the request that first needed it: fitting or loading it is not
            # bounded by that shopper's deadline (the shopper's request still is).
            with deadline_scope(None):
                self.load_artifacts(shop_id)
                self.refresh_shop(shop_id, only_if_missing=True)
            serving = self._serving.get((shop_id, name))
        return None if serving is None else serving.model

    def version(self, shop_id: str, name: str) -> str | None:
        serving = self._serving.get((shop_id, name))
        return None if serving is None else serving.version

    # -- artifacts ---------------------------------------------------------------------------

    def load_artifacts(self, shop_id: str) -> list[str]:
        """Swaps in every current artifact version of the shop not yet serving; returns names."""
        if self.artifacts is None:
            return []
        swapped = []
        with self._load_lock:
            for name in self.names:
                current = self.pins.get((shop_id, name)) or self.artifacts.current(shop_id, name)
                serving = self._serving.get((shop_id, name))
                if current is None or (serving is not None and serving.version == current):
                    continue
                with tracer.start_as_current_span("models.load") as span:
                    span.set_attribute("kosmos.shop", shop_id)
                    span.set_attribute("kosmos.recommender", name)
                    span.set_attribute("kosmos.model.version", current)
                    model = self.create(name)
                    try:
                        model.load(self.artifacts.folder(shop_id, name, current))
                        built = next(
                            v.create_time
                            for v in self.artifacts.versions(shop_id, name)
                            if v.version == current
                        )
                    except Exception:
                        log.exception(
                            "loading %s/%s version %s failed; keeping %s",
                            shop_id,
                            name,
                            current,
                            serving.version if serving else "nothing",
                        )
                        continue
                self._swap(shop_id, name, Serving(model, current, built))
                swapped.append(name)
                log.info("serving %s/%s version %s", shop_id, name, current)
        return swapped

    def poll(self) -> None:
        """Looks for new current versions of every shop seen so far."""
        for shop_id in {shop for shop, _ in self._serving} | self._fitted_shops:
            self.load_artifacts(shop_id)

    # -- in-process fitting ------------------------------------------------------------------

    def refresh_shop(self, shop_id: str, *, only_if_missing: bool = False) -> None:
        """Refits the shop's in-process recommenders and swaps the new models in."""
        with self._fit_lock, tracer.start_as_current_span("models.refresh") as span:
            if only_if_missing and shop_id in self._fitted_shops:
                return  # Another request fitted it while this one waited for the lock.
            span.set_attribute("kosmos.shop", shop_id)
            names = [
                n
                for n in self.names
                if n in self.fit_in_process
                and not (
                    self.artifacts
                    and (self.pins.get((shop_id, n)) or self.artifacts.current(shop_id, n))
                )
            ]
            if names:
                read_time = self.clock()
                data = training_data(self.store, shop_id, read_time)
                span.set_attribute("kosmos.interactions.count", len(data.interactions))
                for name in names:
                    started = time.perf_counter()
                    model = self.create(name)
                    try:
                        with tracer.start_as_current_span("models.fit") as fit_span:
                            fit_span.set_attribute("kosmos.shop", shop_id)
                            fit_span.set_attribute("kosmos.recommender", name)
                            model.fit(data)
                    except Exception:
                        # One failing recommender leaves the previous model serving.
                        log.exception("fitting %r for shop %r failed", name, shop_id)
                        metrics.record_training(
                            time.perf_counter() - started, shop_id, name, "error", "in_process"
                        )
                        continue
                    metrics.record_training(
                        time.perf_counter() - started, shop_id, name, "ok", "in_process"
                    )
                    self._swap(shop_id, name, Serving(model, "in-process", read_time))
                    log.info(
                        "fitted %r for shop %r on %d interactions in %.2fs",
                        name,
                        shop_id,
                        len(data.interactions),
                        time.perf_counter() - started,
                    )
            self._fitted_shops.add(shop_id)

    def refresh_all(self) -> None:
        for shop_id in self.store.list_shop_ids():
            self.load_artifacts(shop_id)
            self.refresh_shop(shop_id)

    # -- background --------------------------------------------------------------------------

    def start(self) -> None:
        """Loads or fits every shop now, then keeps models fresh in a background thread."""
        if self._thread is not None or (self.refresh_seconds <= 0 and self.artifacts is None):
            return
        self._thread = threading.Thread(target=self._loop, name="kosmos-models", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_refit = 0.0
        while not self._stop.is_set():
            try:
                if self.refresh_seconds > 0 and time.monotonic() >= next_refit:
                    self.refresh_all()
                    next_refit = time.monotonic() + self.refresh_seconds
                else:
                    self.poll()
            except Exception:
                log.exception("model refresh failed; serving the previous models")
            wait = self.poll_seconds if self.artifacts is not None else self.refresh_seconds
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
