"""Configuration from ``KOSMOS_*`` environment variables, each a documented constant.

A service's ``__main__`` reads the environment once, through these ``from_env`` methods, and
passes the result down; nothing else touches ``os.environ``. A bad value stops startup with the
variable's name. ``OTEL_*`` variables belong to the OpenTelemetry SDK. The README's
configuration table lists every variable below (a test keeps the two in step).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self, TypeVar

from kosmos.plugin.routing import Routing
from kosmos.plugin.routing import parse_names as _names

KOSMOS_DATABASE_URL = "KOSMOS_DATABASE_URL"
"""Where the data lives: ``sqlite:///path.db`` (embedded) or ``postgresql://...``.
Default: ``"sqlite:///kosmos.db"``."""

KOSMOS_CLUSTER_LISTEN = "KOSMOS_CLUSTER_LISTEN"
"""Address the all-in-one process (``python -m kosmos.cluster``) binds for every service.
Default: ``"0.0.0.0:50051"``."""

KOSMOS_PROFILE_LISTEN = "KOSMOS_PROFILE_LISTEN"
"""Address the profile service (profiles and catalog) binds. Default: ``"0.0.0.0:50061"``."""

KOSMOS_FEEDBACK_LISTEN = "KOSMOS_FEEDBACK_LISTEN"
"""Address the feedback service binds. Default: ``"0.0.0.0:50062"``."""

KOSMOS_RECOMMENDATION_LISTEN = "KOSMOS_RECOMMENDATION_LISTEN"
"""Address the recommendation service binds. Default: ``"0.0.0.0:50063"``."""

KOSMOS_WORKERS = "KOSMOS_WORKERS"
"""Threads serving RPCs in one server. Default: ``8`` (see the README: on few cores, more
threads mean more GIL contention; they also bound concurrent slow remote-plugin calls)."""

KOSMOS_GRACE_SECONDS = "KOSMOS_GRACE_SECONDS"
"""Seconds in-flight RPCs get to finish after SIGTERM. Default: ``5``."""

KOSMOS_LOG_LEVEL = "KOSMOS_LOG_LEVEL"
"""Python logging level. Default: ``"INFO"``."""

KOSMOS_LOG_FORMAT = "KOSMOS_LOG_FORMAT"
"""``text`` (one plain line per record) or ``json`` (one JSON object per line); both carry
``trace_id`` and ``span_id``. Default: ``"text"``."""

KOSMOS_METRICS_LISTEN = "KOSMOS_METRICS_LISTEN"
"""Address of the Prometheus scrape endpoint (``GET /metrics``), ``host:port``; empty: none
(OTLP export still works). The Kubernetes manifests set ``0.0.0.0:9464``. Default: empty."""

KOSMOS_ROUTING = "KOSMOS_ROUTING"
"""The recommender chain, comma-separated, tried in order; later ones fill what earlier ones
could not. One chain per segment: ``warm=als,popularity;cold=lightfm,popularity`` (cold: no
interactions yet). Default: ``"popularity"``."""

KOSMOS_DISABLED_RECOMMENDERS = "KOSMOS_DISABLED_RECOMMENDERS"
"""Recommender plugins never to load, comma-separated. Default: empty."""

KOSMOS_MODEL_REFRESH_SECONDS = "KOSMOS_MODEL_REFRESH_SECONDS"
"""How often the recommendation service refits in-process models from the store. Default: ``60``."""

KOSMOS_MAX_PER_CATEGORY = "KOSMOS_MAX_PER_CATEGORY"
"""Variety: at most this many offers of one category in a page, while others are left.
Default: ``3``."""

KOSMOS_RECENT_INTERACTIONS = "KOSMOS_RECENT_INTERACTIONS"
"""How many of a customer's latest interactions each recommendation reads. Default: ``25``."""

KOSMOS_REPURCHASE_COOLDOWN_HOURS = "KOSMOS_REPURCHASE_COOLDOWN_HOURS"
"""Hours during which a bought item is not offered again (buying again later is fine).
Default: ``24``."""

KOSMOS_MODEL_DIR = "KOSMOS_MODEL_DIR"
"""Where the trainer writes versioned model artifacts and recommendation replicas load them.
Empty: every routed recommender is fitted inside the recommendation process. Default: empty."""

KOSMOS_MODEL_POLL_SECONDS = "KOSMOS_MODEL_POLL_SECONDS"
"""How often a recommendation replica looks for a new current model version. Default: ``5``."""

KOSMOS_FIT_IN_PROCESS = "KOSMOS_FIT_IN_PROCESS"
"""With ``KOSMOS_MODEL_DIR`` set: recommenders fitted in process while they have no artifact
(cheap ones only). Default: ``"popularity"``."""

KOSMOS_MODEL_KEEP = "KOSMOS_MODEL_KEEP"
"""How many versions per shop and recommender the trainer keeps. Default: ``5``."""

KOSMOS_MODEL_PINS = "KOSMOS_MODEL_PINS"
"""Model versions an operator pinned, overriding the trainer's ``CURRENT``:
``shop/recommender=version,...`` (``kosmosctl models rollout`` writes it). Default: empty."""

KOSMOS_REMOTE_RECOMMENDERS = "KOSMOS_REMOTE_RECOMMENDERS"
"""Out-of-process plugins, ``name=host:port,...``, routed to like installed ones. Default: empty."""

KOSMOS_REMOTE_TIMEOUT_MS = "KOSMOS_REMOTE_TIMEOUT_MS"
"""The most one call to an out-of-process plugin may take (less if the caller has less left).
Default: ``250``."""

KOSMOS_PLUGIN_PREFIX = "KOSMOS_PLUGIN__"
"""``KOSMOS_PLUGIN__<NAME>__<SETTING>=value`` passes ``setting=value`` to plugin ``name``'s
factory, e.g. ``KOSMOS_PLUGIN__POPULARITY__HALF_LIFE_DAYS=7``. Default: none."""

KOSMOS_TARGET = "KOSMOS_TARGET"
"""Address the ``kosmos`` command and ``make bench`` call. Default: ``"localhost:50051"``."""


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the variable."""


T = TypeVar("T")
_NONE: tuple[str, ...] = ()


def _read(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


_NO_REMOTES: dict[str, str] = {}


def _remotes(raw: str) -> dict[str, str]:
    remotes = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, address = part.partition("=")
        if not sep:
            raise ValueError(f"expected name=host:port, got {part.strip()!r}")
        (name,) = _names(name)
        remotes[name] = _address(address.strip())
    return remotes


_NO_PINS: dict[tuple[str, str], str] = {}


def _pins(raw: str) -> dict[tuple[str, str], str]:
    pins = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, version = part.partition("=")
        shop, slash, recommender = key.strip().partition("/")
        if not sep or not slash or not shop or not recommender or not version.strip():
            raise ValueError(f"expected shop/recommender=version, got {part.strip()!r}")
        pins[(shop, recommender)] = version.strip()
    return pins


def _address(raw: str) -> str:
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port")
    return raw


def _log_format(raw: str) -> str:
    if raw.lower() not in ("text", "json"):
        raise ValueError("must be text or json")
    return raw.lower()


def _routing(raw: str) -> Routing:
    return Routing.parse(raw)


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return raw


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What every Kosmos server needs.

    Attributes:
        listen: The address to bind, ``host:port``; port 0 picks a free one.
        database_url: See `KOSMOS_DATABASE_URL`.
        workers: See `KOSMOS_WORKERS`.
        grace_seconds: See `KOSMOS_GRACE_SECONDS`.
        log_level: See `KOSMOS_LOG_LEVEL`.
        log_format: See `KOSMOS_LOG_FORMAT`.
        metrics_listen: See `KOSMOS_METRICS_LISTEN`.
    """

    listen: str
    database_url: str = "sqlite:///kosmos.db"
    workers: int = 8
    grace_seconds: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_listen: str = ""

    @classmethod
    def from_env(
        cls, listen_var: str, default_listen: str, env: Mapping[str, str] = os.environ
    ) -> Self:
        """Reads the server settings, binding the address in ``listen_var``."""
        defaults = cls(listen=default_listen)
        return cls(
            listen=_read(env, listen_var, default_listen, _address),
            database_url=_read(env, KOSMOS_DATABASE_URL, defaults.database_url, _database_url),
            workers=_read(env, KOSMOS_WORKERS, defaults.workers, _positive_int),
            grace_seconds=_read(
                env, KOSMOS_GRACE_SECONDS, defaults.grace_seconds, _non_negative_float
            ),
            log_level=_read(env, KOSMOS_LOG_LEVEL, defaults.log_level, str.upper),
            log_format=_read(env, KOSMOS_LOG_FORMAT, defaults.log_format, _log_format),
            metrics_listen=_read(env, KOSMOS_METRICS_LISTEN, defaults.metrics_listen, _address),
        )


@dataclass(frozen=True, slots=True)
class RecommendationSettings:
    """How the recommendation service picks, filters and refreshes recommenders.

    Attributes:
        routing: See `KOSMOS_ROUTING`.
        disabled: See `KOSMOS_DISABLED_RECOMMENDERS`.
        refresh_seconds: See `KOSMOS_MODEL_REFRESH_SECONDS`.
        max_per_category: See `KOSMOS_MAX_PER_CATEGORY`.
        recent_interactions: See `KOSMOS_RECENT_INTERACTIONS`.
        repurchase_cooldown_hours: See `KOSMOS_REPURCHASE_COOLDOWN_HOURS`.
        model_dir: See `KOSMOS_MODEL_DIR`.
        model_poll_seconds: See `KOSMOS_MODEL_POLL_SECONDS`.
        fit_in_process: See `KOSMOS_FIT_IN_PROCESS`.
        model_keep: See `KOSMOS_MODEL_KEEP`.
        model_pins: See `KOSMOS_MODEL_PINS`; (shop, recommender) → version.
        remote: See `KOSMOS_REMOTE_RECOMMENDERS`; name → ``host:port``.
        remote_timeout_ms: See `KOSMOS_REMOTE_TIMEOUT_MS`.
        plugin_settings: See `KOSMOS_PLUGIN_PREFIX`; plugin name → setting → value.
    """

    routing: Routing = field(default_factory=Routing)
    disabled: frozenset[str] = frozenset()
    refresh_seconds: float = 60.0
    max_per_category: int = 3
    recent_interactions: int = 25
    repurchase_cooldown_hours: float = 24.0
    model_dir: str = ""
    model_poll_seconds: float = 5.0
    fit_in_process: frozenset[str] = frozenset({"popularity"})
    model_keep: int = 5
    remote: Mapping[str, str] = field(default_factory=dict)
    remote_timeout_ms: float = 250.0
    plugin_settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    model_pins: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Self:
        """Reads the recommendation settings; raises ConfigError naming a bad variable."""
        defaults = cls()
        routing = _read(env, KOSMOS_ROUTING, defaults.routing, _routing)
        plugin_settings: dict[str, dict[str, str]] = {}
        for name, value in env.items():
            if name.startswith(KOSMOS_PLUGIN_PREFIX):
                plugin, sep, setting = name[len(KOSMOS_PLUGIN_PREFIX) :].partition("__")
                if not sep or not plugin or not setting:
                    raise ConfigError(f"{name}: expected {KOSMOS_PLUGIN_PREFIX}<NAME>__<SETTING>")
                plugin_settings.setdefault(plugin.lower(), {})[setting.lower()] = value
        return cls(
            routing=routing,
            disabled=frozenset(_read(env, KOSMOS_DISABLED_RECOMMENDERS, _NONE, _names)),
            refresh_seconds=_read(
                env, KOSMOS_MODEL_REFRESH_SECONDS, defaults.refresh_seconds, _non_negative_float
            ),
            max_per_category=_read(
                env, KOSMOS_MAX_PER_CATEGORY, defaults.max_per_category, _positive_int
            ),
            recent_interactions=_read(
                env, KOSMOS_RECENT_INTERACTIONS, defaults.recent_interactions, _positive_int
            ),
            repurchase_cooldown_hours=_read(
                env,
                KOSMOS_REPURCHASE_COOLDOWN_HOURS,
                defaults.repurchase_cooldown_hours,
                _non_negative_float,
            ),
            model_dir=env.get(KOSMOS_MODEL_DIR, "").strip(),
            model_poll_seconds=_read(
                env, KOSMOS_MODEL_POLL_SECONDS, defaults.model_poll_seconds, _positive_float
            ),
            fit_in_process=frozenset(
                _read(env, KOSMOS_FIT_IN_PROCESS, tuple(defaults.fit_in_process), _names)
            ),
            model_keep=_read(env, KOSMOS_MODEL_KEEP, defaults.model_keep, _positive_int),
            remote=_read(env, KOSMOS_REMOTE_RECOMMENDERS, _NO_REMOTES, _remotes),
            remote_timeout_ms=_read(
                env, KOSMOS_REMOTE_TIMEOUT_MS, defaults.remote_timeout_ms, _positive_float
            ),
            plugin_settings=plugin_settings,
            model_pins=_read(env, KOSMOS_MODEL_PINS, _NO_PINS, _pins),
        )
