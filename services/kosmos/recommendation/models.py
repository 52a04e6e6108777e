"""The fitted recommenders of every shop, and how they are refreshed.

Each (shop, recommender) pair is fitted on a fresh instance and swapped in whole, so requests
never see a half-fitted model. A shop is fitted on first use and then every
``KOSMOS_MODEL_REFRESH_SECONDS`` in a background thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from opentelemetry import trace

from kosmos.plugin import LoadedPlugin, Recommender, TrainingData
from kosmos.recommendation.signals import to_plugin
from kosmos.store import Store

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

PAGE = 1000


def training_data(store: Store, shop_id: str, now: float) -> TrainingData:
    """Everything a recommender fits on for one shop, read from the store."""
    items: dict[str, dict[str, str]] = {}
    after = ""
    while batch := store.list_items(shop_id, after, PAGE):
        for item in batch:
            features = dict(item.attributes)
            for key in ("category", "brand"):
                if getattr(item, key):
                    features[key] = getattr(item, key)
            items[item.item_id] = features
        after = batch[-1].item_id
    customers: dict[str, dict[str, str]] = {}
    after = ""
    while page := store.list_customers(shop_id, after, PAGE):
        customers.update((c.customer_id, dict(c.attributes)) for c in page)
        after = page[-1].customer_id
    interactions = [to_plugin(i) for i in store.iter_interactions(shop_id)]
    return TrainingData(
        interactions=interactions,
        item_ids=list(items),
        customer_features=customers,
        item_features=items,
        now=now,
    )


class ModelHub:
    """Holds the serving instance of each routed recommender for each shop."""

    def __init__(
        self,
        store: Store,
        plugins: Mapping[str, LoadedPlugin],
        names: tuple[str, ...],
        plugin_settings: Mapping[str, Mapping[str, str]],
        refresh_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.names = names
        self.plugin_settings = plugin_settings
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._models: dict[tuple[str, str], Recommender] = {}
        self._fitted_shops: set[str] = set()
        self._fit_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def create(self, name: str) -> Recommender:
        """A fresh, unfitted instance of plugin ``name`` with its configured settings."""
        return self.plugins[name].factory(self.plugin_settings.get(name, {}))

    def get(self, shop_id: str, name: str) -> Recommender | None:
        """The serving model, fitting the shop first if it never was."""
        if shop_id not in self._fitted_shops:
            self.refresh_shop(shop_id, only_if_missing=True)
        return self._models.get((shop_id, name))

    def refresh_shop(self, shop_id: str, *, only_if_missing: bool = False) -> None:
        """Refits every routed recommender of one shop and swaps the new models in."""
        with self._fit_lock, tracer.start_as_current_span("models.refresh") as span:
            if only_if_missing and shop_id in self._fitted_shops:
                return  # Another request fitted it while this one waited for the lock.
            span.set_attribute("kosmos.shop", shop_id)
            data = training_data(self.store, shop_id, self.clock())
            span.set_attribute("kosmos.interactions.count", len(data.interactions))
            for name in self.names:
                started = time.perf_counter()
                model = self.create(name)
                try:
                    model.fit(data)
                except Exception:
                    # One failing recommender leaves the previous model serving.
                    log.exception("fitting %r for shop %r failed", name, shop_id)
                    continue
                self._models[(shop_id, name)] = model
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
            self.refresh_shop(shop_id)

    def start(self) -> None:
        """Fits every shop now and again every ``refresh_seconds`` (0 turns refreshing off)."""
        if self.refresh_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="kosmos-models", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_all()
            except Exception:
                log.exception("model refresh failed; serving the previous models")
            self._stop.wait(self.refresh_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
