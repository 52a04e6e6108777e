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

Threads (issue 8): a fit or a load never runs on a request thread. A shop's first request starts
that shop's loader thread and waits for it no longer than its own deadline (a recommender still
loading is skipped for the next in the chain). Each shop has its own lock, so one shop's fit
never holds up another's. A refit is skipped while the shop's ``Store.data_version`` has not
moved, and between refits new interactions are folded into models that can
(``Capabilities.partial_fit``). ``ready`` turns true once the first background pass has
loaded or fitted every shop's routed models (health stays NOT_SERVING until then). In embedded
mode a ``trainer`` callback also publishes new versions in the background every
``KOSMOS_MODEL_REFRESH_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from opentelemetry import trace

from kosmos.common import deadline, metrics
from kosmos.common.deadline import deadline_scope
from kosmos.experiments.domain import base_recommender, variant_models
from kosmos.plugin import InteractionType, LoadedPlugin, Recommender, TrainingData
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights, to_plugin
from kosmos.recommendation.seen import Repeat, SeenPolicy, learn_repeatable
from kosmos.store import Store
from kosmos.store.events import HISTORY, MODEL, RESYNC, Event
from kosmos.training.artifacts import Artifacts
from kosmos.training.data import catalog_features, training_data

if TYPE_CHECKING:  # the resolver imports this package's seen-item policy
    from kosmos.shopconfig import EffectiveSettings
    from kosmos.shopconfig.documents import ShopDocuments

# A first request without a deadline waits this long at most for its shop's models.
FIRST_LOAD_WAIT_SECONDS = 60.0

IMPORT_QUIET_SECONDS = 30.0
"""A shop whose history is being imported (``ImportInteractions``) is neither refitted nor
folded in until its imports have been quiet this long (issue 12): the 1M-customer shop's
import cluster spent much of its import refitting and folding in a shop that kept growing,
holding the GIL the import's own requests needed. A request for a shop with no model yet
still fits one at once."""

REFIT_SPACING = 9.0
"""A shop's periodic in-process refit waits at least this many times its last refit's length
(reading the data and fitting) after that one ended, besides ``refresh_seconds``: so refitting
one shop takes at most a tenth of the process's time, however big the shop. A 14M-event shop
took a minute to read and fit, so it was refitted back to back while an import ran (issue 12:
the 1M-customer shop); between refits `fold_in` keeps models that can fold new interactions
in up to date."""

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class Serving:
    """A model in service and where it came from: an artifact version, or "in-process"."""

    model: Recommender
    version: str
    built_time: float = 0.0
    """When its data was read: the artifact's creation, or the in-process fit (epoch seconds)."""


class ShopSettings(Protocol):
    """Where per-shop settings come from (`kosmos.shopconfig.ShopConfig`)."""

    def settings_for(self, shop_id: str, revision: int | None = None) -> EffectiveSettings: ...

    def latest(self, shop_id: str) -> EffectiveSettings: ...


class Documents(Protocol):
    """Where a shop's experiments come from (`kosmos.shopconfig.documents.DocumentCache`)."""

    def for_shop(
        self, shop_id: str, revisions: Mapping[str, int] | None = None
    ) -> ShopDocuments: ...


@dataclass(frozen=True, slots=True)
class _ShopView:
    names: tuple[str, ...]  # the shop's recommenders, then its experiments' variant models
    plugin_settings: Mapping[str, Mapping[str, str]]
    weights: Weights
    seen_policy: SeenPolicy


def _categories(features: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Item id → category, from item features (an item's own ``category`` attribute wins)."""
    return {item_id: f.get("category", "") for item_id, f in features.items()}


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
        seen_policy: SeenPolicy | None = None,
        weights: Weights = DEFAULT_WEIGHTS,
        shop_settings: ShopSettings | None = None,
        trainer: Callable[[], object] | None = None,
        pins: Mapping[tuple[str, str], str] | None = None,
        documents: Documents | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        # Per-shop settings (routing, plugin settings, weights, seen-item policy) over the
        # cluster's, which the other arguments are (`kosmos.shopconfig`).
        self.shop_settings = shop_settings
        # Experiments whose variants have plugin settings of their own: models of their own,
        # named `kosmos.experiments.domain.variant_model` (``als@experiment.variant``).
        self.documents = documents
        self._variant_load: dict[str, tuple[int, threading.Event]] = {}
        self.seen_policy = seen_policy or SeenPolicy()
        self.weights = weights
        self._repeatable: dict[str, frozenset[str]] = {}
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
        self.trainer = trainer
        # (shop, recommender) → the version an operator pinned (KOSMOS_MODEL_PINS).
        self.pins = dict(pins or {})
        self._serving: dict[tuple[str, str], Serving] = {}
        self._fitted_shops: set[str] = set()
        self._guard = threading.Lock()  # only around the dicts below, never around work
        self._shop_locks: dict[str, threading.Lock] = {}
        self._first_load: dict[str, threading.Event] = {}
        self._fitted_data: dict[str, str] = {}  # shop -> data_version of its in-process fit
        self._folded_seq: dict[str, int] = {}  # shop -> newest interaction seq in the models
        self._timer = timer  # spaces periodic refits (`REFIT_SPACING`)
        self._refit_after: dict[str, float] = {}  # shop -> no periodic refit before this
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._imported: dict[str, float] = {}  # shop -> when (timer) it last imported history
        # A version made current by the trainer or a rollback, on any replica, is loaded at
        # once instead of at the next poll; a history import on any replica holds refits.
        store.subscribe(self._on_event)
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

    def importing(self, shop_id: str) -> bool:
        """Whether the shop imported history (``ImportInteractions``, through any replica) in
        the last `IMPORT_QUIET_SECONDS`: then it is neither refitted nor folded in."""
        return self._timer() - self._imported.get(shop_id, float("-inf")) < IMPORT_QUIET_SECONDS

    def _on_event(self, event: Event) -> None:
        if event.kind == HISTORY:
            self._imported[event.shop_id] = self._timer()
            return
        if self.artifacts is None:
            return  # nothing to load: every model is fitted here
        if event.kind == MODEL and event.shop_id in self._fitted_shops:
            shops = [event.shop_id]
        elif event.kind == RESYNC:
            shops = list(self._fitted_shops)
        else:
            return
        for shop_id in shops:
            threading.Thread(
                target=self._load_quietly, args=(shop_id,), name="kosmos-models-event", daemon=True
            ).start()

    def _load_quietly(self, shop_id: str) -> None:
        try:
            self.load_artifacts(shop_id)
        except Exception:  # the next poll tries again
            log.warning("loading new models of %r failed", shop_id, exc_info=True)

    def _lock_of(self, shop_id: str) -> threading.Lock:
        with self._guard:
            return self._shop_locks.setdefault(shop_id, threading.Lock())

    @property
    def ready(self) -> bool:
        """Whether every shop's routed models have been loaded or fitted once (or models are
        only loaded on demand: no background thread)."""
        return self._thread is None or self._ready.is_set()

    def create(self, name: str, shop_id: str = "") -> Recommender:
        """A fresh, unfitted instance of plugin ``name`` with the shop's settings for it (a
        variant model: its recommender with the shop's settings overlaid by the variant's)."""
        settings = self._for(shop_id).plugin_settings.get(name, {})
        return self.plugins[base_recommender(name)].factory(settings)

    def variant_models(self, shop_id: str) -> dict[str, tuple[str, Mapping[str, str]]]:
        """The shop's variant models: name → (recommender, the variant's own settings), for
        the experiments not ended (only recommenders this hub has)."""
        if self.documents is None or not shop_id:
            return {}
        found = variant_models(self.documents.for_shop(shop_id).experiments, self.clock())
        return {name: spec for name, spec in found.items() if spec[0] in self.plugins}

    def _experiments_revision(self, shop_id: str) -> int:
        if self.documents is None or not shop_id:
            return 0
        return self.documents.for_shop(shop_id).experiments_revision

    def _revision(self, shop_id: str) -> int:
        if self.shop_settings is None:
            return 0
        return self.shop_settings.settings_for(shop_id).revision

    def _for(self, shop_id: str) -> _ShopView:
        """What applies to one shop: its settings, or the cluster's."""
        if self.shop_settings is None or not shop_id:
            view = _ShopView(self.names, self.plugin_settings, self.weights, self.seen_policy)
        else:
            effective = self.shop_settings.settings_for(shop_id)
            view = _ShopView(
                tuple(n for n in effective.routing.names if n in self.plugins),
                effective.plugin_settings,
                effective.weights,
                effective.seen_items,
            )
        variants = self.variant_models(shop_id)
        if not variants:
            return view
        settings = {name: dict(values) for name, values in view.plugin_settings.items()}
        for name, (base, values) in variants.items():
            settings[name] = {**settings.get(base, {}), **values}
        return _ShopView(
            view.names + tuple(sorted(variants)), settings, view.weights, view.seen_policy
        )

    def _drop_ended(self, shop_id: str, view: _ShopView) -> None:
        """Drops the variant models of experiments that ended (or were replaced)."""
        for shop, name in list(self._serving):
            if shop == shop_id and "@" in name and name not in view.names:
                self._serving.pop((shop, name), None)
                log.info("dropped %s/%s: its experiment ended", shop_id, name)

    def get(self, shop_id: str, name: str) -> Recommender | None:
        """The serving model. A shop never seen before gets its models loaded or fitted on
        its own loader thread; the caller waits for that within its deadline only."""
        serving = self._serving.get((shop_id, name))
        if serving is None and shop_id not in self._fitted_shops:
            left = deadline.remaining()
            wait = FIRST_LOAD_WAIT_SECONDS if left is None else max(0.0, left)
            self._start_first_load(shop_id).wait(wait)
            serving = self._serving.get((shop_id, name))
        if serving is None and "@" in name and shop_id in self._fitted_shops:
            # A variant model of an experiment created since the shop's models were loaded.
            left = deadline.remaining()
            wait = FIRST_LOAD_WAIT_SECONDS if left is None else max(0.0, left)
            self._start_variant_load(shop_id).wait(wait)
            serving = self._serving.get((shop_id, name))
        return None if serving is None else serving.model

    def _start_variant_load(self, shop_id: str) -> threading.Event:
        """Loads or fits the shop's models once per experiments revision, in the background."""
        revision = self._experiments_revision(shop_id)
        with self._guard:
            started = self._variant_load.get(shop_id)
            if started is not None and started[0] == revision:
                return started[1]
            done = threading.Event()
            self._variant_load[shop_id] = (revision, done)

        def load() -> None:
            try:
                with deadline_scope(None):
                    self.load_artifacts(shop_id)
                    self.refresh_shop(shop_id)
            except Exception:
                log.exception("loading the variant models of shop %r failed", shop_id)
            finally:
                done.set()

        threading.Thread(target=load, name=f"kosmos-variants-{shop_id}", daemon=True).start()
        return done

    def serving(self, shop_id: str, name: str) -> Serving | None:
        """The serving model with its version and build time, as `get` found it (first
        loading the shop's models as `get` does)."""
        self.get(shop_id, name)
        return self._serving.get((shop_id, name))

    def _start_first_load(self, shop_id: str) -> threading.Event:
        with self._guard:
            done = self._first_load.get(shop_id)
            if done is not None:
                return done
            done = self._first_load[shop_id] = threading.Event()

        def load() -> None:
            # A model outlives the request that first needed it: not bounded by its deadline.
            try:
                with deadline_scope(None):
                    self.load_artifacts(shop_id)
                    self.refresh_shop(shop_id, only_if_missing=True)
            except Exception:
                log.exception("loading the models of shop %r failed", shop_id)
                with self._guard:
                    self._first_load.pop(shop_id, None)  # the next request tries again
            finally:
                done.set()

        threading.Thread(target=load, name=f"kosmos-models-{shop_id}", daemon=True).start()
        return done

    def repeatable(self, shop_id: str) -> frozenset[str]:
        """The items the shop's customers buy again (`kosmos.recommendation.seen`), learned at
        the shop's last refresh."""
        if shop_id not in self._fitted_shops:
            left = deadline.remaining()
            wait = FIRST_LOAD_WAIT_SECONDS if left is None else max(0.0, left)
            self._start_first_load(shop_id).wait(wait)
        return self._repeatable.get(shop_id, frozenset())

    def serve(self, shop_id: str, name: str, model: Recommender, version: str) -> None:
        """Puts an already fitted model into service (``kosmos evaluate`` serves the models it
        scored directly, so both paths rank with the very same model)."""
        self._serving[(shop_id, name)] = Serving(model, version)
        self._fitted_shops.add(shop_id)

    def learn_repeatable(self, shop_id: str, data: TrainingData) -> None:
        """Learns which of the shop's items are bought again, from ``data``."""
        self._repeatable[shop_id] = learn_repeatable(
            data.interactions, self._for(shop_id).seen_policy, _categories(data.item_features)
        )

    def _learn_from_purchases(self, shop_id: str, policy: SeenPolicy) -> None:
        """`learn_repeatable` on the shop's purchases and its items' categories alone."""
        with tracer.start_as_current_span("models.learn_repeatable") as span:
            span.set_attribute("kosmos.shop", shop_id)
            purchases = [
                to_plugin(i)
                for i in self.store.iter_interactions(shop_id, types=(InteractionType.PURCHASE,))
            ]
            span.set_attribute("kosmos.interactions.count", len(purchases))
            categories = _categories(catalog_features(self.store, shop_id))
            self._repeatable[shop_id] = learn_repeatable(purchases, policy, categories)

    def version(self, shop_id: str, name: str) -> str | None:
        serving = self._serving.get((shop_id, name))
        return None if serving is None else serving.version

    # -- artifacts ---------------------------------------------------------------------------

    def load_artifacts(self, shop_id: str) -> list[str]:
        """Swaps in every current artifact version of the shop not yet serving; returns names."""
        if self.artifacts is None:
            return []
        swapped = []
        with self._lock_of(shop_id):
            view = self._for(shop_id)
            self._drop_ended(shop_id, view)
            for name in view.names:
                current = self.pins.get((shop_id, name)) or self.artifacts.current(shop_id, name)
                serving = self._serving.get((shop_id, name))
                if current is None or (serving is not None and serving.version == current):
                    continue
                with tracer.start_as_current_span("models.load") as span:
                    span.set_attribute("kosmos.shop", shop_id)
                    span.set_attribute("kosmos.recommender", name)
                    span.set_attribute("kosmos.model.version", current)
                    model = self.create(name, shop_id)
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
        """Refits the shop's in-process recommenders and swaps the new models in; skipped
        while the shop's data has not changed since the last fit."""
        with self._lock_of(shop_id), tracer.start_as_current_span("models.refresh") as span:
            if only_if_missing and shop_id in self._fitted_shops:
                return  # Another thread fitted it while this one waited for the lock.
            span.set_attribute("kosmos.shop", shop_id)
            view = self._for(shop_id)
            data_version = self.store.data_version(shop_id)
            # A change of the shop's settings (plugin settings, weights) or experiments (variant
            # models) refits as new data does.
            revisions = f"{self._revision(shop_id)}/{self._experiments_revision(shop_id)}"
            fitted_key = f"{data_version}/{revisions}"
            self._drop_ended(shop_id, view)
            if shop_id in self._fitted_shops and self._fitted_data.get(shop_id) == fitted_key:
                span.set_attribute("kosmos.refresh.skipped", True)
                return
            names = [
                n
                for n in view.names
                if (self.artifacts is None or base_recommender(n) in self.fit_in_process)
                and not (
                    self.artifacts
                    and (self.pins.get((shop_id, n)) or self.artifacts.current(shop_id, n))
                )
            ]
            learn = view.seen_policy.repeat_purchase is Repeat.LEARNED
            began = self._timer()
            if learn and not names:
                # Every model comes from the trainer: the purchases are all there is to read
                # (a fresh replica of a 22.7M-event shop read the whole history for them).
                self._learn_from_purchases(shop_id, view.seen_policy)
            elif names or learn:
                read_time = self.clock()
                data = training_data(self.store, shop_id, read_time, view.weights)
                span.set_attribute("kosmos.interactions.count", len(data.interactions))
                if learn:
                    self.learn_repeatable(shop_id, data)
                # The fit read at least up to this seq; later ones are folded in (partial_fit).
                self._folded_seq[shop_id] = int(data_version.split(".", 1)[0])
                for name in names:
                    started = time.perf_counter()
                    model = self.create(name, shop_id)
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
            if names or learn:
                ended = self._timer()
                self._refit_after[shop_id] = ended + REFIT_SPACING * (ended - began)
            self._fitted_data[shop_id] = fitted_key
            self._fitted_shops.add(shop_id)

    def fold_in(self, shop_id: str) -> int:
        """Folds the interactions stored since the last fit into the shop's in-process models
        that support ``partial_fit``; returns how many were folded."""
        with self._lock_of(shop_id):
            if shop_id not in self._folded_seq:
                return 0
            models = [
                s.model
                for (shop, name), s in list(self._serving.items())
                if shop == shop_id
                and s.version == "in-process"
                and s.model.capabilities.partial_fit
            ]
            if not models:
                return 0
            after = self._folded_seq[shop_id]
            new = list(self.store.iter_interactions(shop_id, after_seq=after))
            if not new:
                return 0
            weights = self._for(shop_id).weights
            plugin_new = [to_plugin(i, weights) for i in new]
            for model in models:
                try:
                    model.partial_fit(plugin_new)
                except Exception:
                    log.exception("folding interactions into shop %r failed", shop_id)
            self._folded_seq[shop_id] = new[-1].seq
            return len(new)

    def refresh_all(self) -> None:
        """Loads new versions of every shop and refits the shops due (`REFIT_SPACING`)."""
        for shop_id in self.store.list_shop_ids():
            self.load_artifacts(shop_id)
            if self.importing(shop_id):
                continue  # a fit would learn half the history, and hold up the rest of it
            if self._timer() < self._refit_after.get(shop_id, float("-inf")):
                self.fold_in(shop_id)  # its last refit was long: fresh by folding in till then
                continue
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
        first = True
        while not self._stop.is_set():
            try:
                if first or (self.refresh_seconds > 0 and time.monotonic() >= next_refit):
                    if self.trainer is not None and not first:
                        self.trainer()  # embedded mode: publish new versions (skips unchanged)
                    self.refresh_all()
                    next_refit = time.monotonic() + self.refresh_seconds
                else:
                    self.poll()
                    for shop_id in list(self._fitted_shops):
                        if not self.importing(shop_id):
                            self.fold_in(shop_id)
            except Exception:
                log.exception("model refresh failed; serving the previous models")
            if first:
                first = False
                self._ready.set()
            wait = self.poll_seconds if self.artifacts is not None else self.refresh_seconds
            self._stop.wait(wait)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
