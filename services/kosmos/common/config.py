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
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any, Self, TypeVar

from kosmos.common.tls import ClientTls, TlsFiles
from kosmos.plugin.routing import Routing
from kosmos.plugin.routing import parse_names as _names
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights
from kosmos.store.records import InteractionType

KOSMOS_DATABASE_URL = "KOSMOS_DATABASE_URL"
"""Where the data lives: ``sqlite:///path.db`` (embedded) or ``postgresql://...``.
Default: ``"sqlite:///kosmos.db"``."""

KOSMOS_CLUSTER_LISTEN = "KOSMOS_CLUSTER_LISTEN"
"""Address the all-in-one process (``python -m kosmos.cluster``) binds for every service.
Default: ``"127.0.0.1:50051"`` (loopback: set ``0.0.0.0:50051`` to serve the network)."""

KOSMOS_PROFILE_LISTEN = "KOSMOS_PROFILE_LISTEN"
"""Address the profile service (profiles and catalog) binds. Default: ``"127.0.0.1:50061"``."""

KOSMOS_FEEDBACK_LISTEN = "KOSMOS_FEEDBACK_LISTEN"
"""Address the feedback service binds. Default: ``"127.0.0.1:50062"``."""

KOSMOS_RECOMMENDATION_LISTEN = "KOSMOS_RECOMMENDATION_LISTEN"
"""Address the recommendation service binds. Default: ``"127.0.0.1:50063"``."""

KOSMOS_WORKERS = "KOSMOS_WORKERS"
"""Threads serving RPCs in one server. Default: ``8`` (see the README: on few cores, more
threads mean more GIL contention; they also bound concurrent slow remote-plugin calls)."""

KOSMOS_PROCESSES = "KOSMOS_PROCESSES"
"""Server processes sharing the listening port (``SO_REUSEPORT``; the kernel spreads
connections over them), each with its own workers, store connections, models and health; one
supervisor forwards SIGTERM to all and restarts one that dies. Python runs one thread at a time
per process, so this is how a service uses more than one core. Default: the cores this process
may use (its CPU affinity, capped by a cgroup CPU limit, as in a Kubernetes pod)."""

KOSMOS_GRACE_SECONDS = "KOSMOS_GRACE_SECONDS"
"""Seconds in-flight RPCs get to finish after SIGTERM. Default: ``5``."""

KOSMOS_HEARTBEAT_SECONDS = "KOSMOS_HEARTBEAT_SECONDS"
"""Seconds between the heartbeats each serving process records in the store, which the
dashboard's per-replica health reads (``GET /replicas``); a replica is stale after three
missed beats. Default: ``5``."""

KOSMOS_AUTH_CACHE_SECONDS = "KOSMOS_AUTH_CACHE_SECONDS"
"""Seconds a serving process keeps an API key it has looked up, instead of reading the store on
every call; ``0`` reads it every call. A revoked key is refused at once by the process that
revoked it and, on PostgreSQL, by every replica as soon as the revocation's event arrives;
within this many seconds everywhere. Default: ``1``."""

KOSMOS_DRAIN_SECONDS = "KOSMOS_DRAIN_SECONDS"
"""Seconds a server keeps serving after SIGTERM with health already NOT_SERVING, so load
balancers and pollers stop sending before it stops accepting. SIGINT skips it. Default: ``5``."""

KOSMOS_LOG_LEVEL = "KOSMOS_LOG_LEVEL"
"""Python logging level. Default: ``"INFO"``."""

KOSMOS_LOG_FORMAT = "KOSMOS_LOG_FORMAT"
"""``text`` (one plain line per record) or ``json`` (one JSON object per line); both carry
``trace_id`` and ``span_id``. Default: ``"text"``."""

KOSMOS_METRICS_LISTEN = "KOSMOS_METRICS_LISTEN"
"""Address of the Prometheus scrape endpoint (``GET /metrics``), ``host:port``; empty: none
(OTLP export still works). The Kubernetes manifests set ``0.0.0.0:9464``. Default: empty."""

KOSMOS_TRACE_SAMPLE_RATIO = "KOSMOS_TRACE_SAMPLE_RATIO"
"""The share of requests, 0 to 1, that start a recorded (and, with OTLP configured, exported)
trace; a request whose caller sent a sampled trace context is always recorded (parent-based),
one whose caller sent an unsampled one never. An unrecorded request still has a trace id (in
its log lines and error messages) but builds no span. Overridden by the SDK's own
``OTEL_TRACES_SAMPLER``. Default: ``0.01`` (see the README: a recorded span costs tens of
microseconds of one core)."""

DEFAULT_TRACE_SAMPLE_RATIO = 0.01

KOSMOS_OTELDEMO_LISTEN = "KOSMOS_OTELDEMO_LISTEN"
"""Address ``python -m kosmos.oteldemo`` binds: the OpenTelemetry demo's
``oteldemo.RecommendationService``. Default: ``"0.0.0.0:9001"`` (the demo's
``RECOMMENDATION_PORT``)."""

KOSMOS_OTELDEMO_SHOP = "KOSMOS_OTELDEMO_SHOP"
"""The Kosmos shop that answers the OpenTelemetry demo (its product ids are the shop's item
ids, its user ids the shop's customer ids). Default: ``"otel-demo"``."""

KOSMOS_HTTP_LISTEN = "KOSMOS_HTTP_LISTEN"
"""Address of the HTTP port beside the gRPC one (Connect JSON/binary, gRPC-Web, the storefront
and dashboard pages, ``/metrics``). Default: empty, none; ``make run``: ``127.0.0.1:8080``."""

KOSMOS_WEB_DIR = "KOSMOS_WEB_DIR"
"""The built storefront and dashboard the HTTP port serves (``npm run build``'s ``dist``).
Default: ``services/web/dist`` of the checkout; the Docker image: ``/opt/kosmos/web``."""

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

KOSMOS_LIST_LENGTH = "KOSMOS_LIST_LENGTH"
"""How many offers the list behind a recommendation id holds: a first page ranks this many,
later pages are slices of it (a larger first page ranks a list of its own size). Fewer cost
less per first page; a shop that never pages past its first page needs no more than it shows.
1 to ``MAX_LIST_LENGTH`` (200). Default: ``50``."""

DEFAULT_LIST_LENGTH = 50
MAX_LIST_LENGTH = 200
"""The longest list a shop may keep behind a recommendation id (``KOSMOS_LIST_LENGTH``, the
per-shop ``list_length``)."""

KOSMOS_RECENT_INTERACTIONS = "KOSMOS_RECENT_INTERACTIONS"
"""How many of a customer's latest interactions each recommendation reads. Default: ``25``."""

KOSMOS_REPURCHASE_COOLDOWN_HOURS = "KOSMOS_REPURCHASE_COOLDOWN_HOURS"
"""Hours during which a bought item is not offered again (buying again later is fine).
Default: ``24``."""

KOSMOS_MODEL_DIR = "KOSMOS_MODEL_DIR"
"""Where the trainer writes versioned model artifacts and recommendation replicas load them.
Empty: every routed recommender is fitted inside the recommendation process. Default: empty."""

KOSMOS_MODEL_STORE = "KOSMOS_MODEL_STORE"
"""Where model versions live: ``files`` (under ``KOSMOS_MODEL_DIR``) or ``database`` (in the
store's ``model_artifacts`` table, so replicas need no shared volume; ``KOSMOS_MODEL_DIR``, if
set, is then only a local cache of unpacked versions). Default: ``"files"``."""

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

KOSMOS_INTERACTION_WEIGHTS = "KOSMOS_INTERACTION_WEIGHTS"
"""Interaction weights, ``kind=weight,...`` for any of ``view``, ``click``, ``add_to_cart``,
``purchase`` and ``rating`` (per star); kinds left out keep their default. A shop's own settings
override it; ``rating_per_star=0`` makes a rating weigh ``rating`` whatever its stars (having
rated is the signal). Default: ``"view=1,click=2,add_to_cart=4,purchase=8,rating=1"``."""

KOSMOS_QUANTITY_EXPONENT = "KOSMOS_QUANTITY_EXPONENT"
"""How much a purchase's quantity counts, 0 to 1: a purchase weighs
``purchase × quantity^exponent``. Default: ``0`` (quantity does not count)."""

KOSMOS_OWNED_INTERACTIONS = "KOSMOS_OWNED_INTERACTIONS"
"""The interaction kinds that make an item "owned" by a customer (the seen-item policy),
comma-separated. Default: ``"purchase,rating"``."""

KOSMOS_REPEAT_PURCHASE = "KOSMOS_REPEAT_PURCHASE"
"""Whether owned items are offered again: ``learned`` (when the item's repurchase rate reaches
`KOSMOS_REPURCHASE_THRESHOLD`), ``always`` or ``never``. Default: ``"learned"``."""

KOSMOS_REPURCHASE_THRESHOLD = "KOSMOS_REPURCHASE_THRESHOLD"
"""With ``learned``: the share of an item's buyers who bought it again from which it is offered
again, 0 to 1. Default: ``0.1`` (measured: see the README's served-path figures)."""

KOSMOS_REPEATABLE_ITEMS = "KOSMOS_REPEATABLE_ITEMS"
"""Item ids always offered again, comma-separated. Default: empty."""

KOSMOS_REPEATABLE_CATEGORIES = "KOSMOS_REPEATABLE_CATEGORIES"
"""Categories whose items are always offered again, comma-separated. Default: empty."""

KOSMOS_TARGET = "KOSMOS_TARGET"
"""Address the ``kosmos`` command and ``make bench`` call. Default: ``"localhost:50051"``."""


KOSMOS_BOOTSTRAP_KEY = "KOSMOS_BOOTSTRAP_KEY"
"""An operator API key accepted without being stored (at least 32 characters), so that a fresh
cluster can create its first shops and keys. Never logged. Default: empty (none)."""

KOSMOS_BOOTSTRAP_KEY_FILE = "KOSMOS_BOOTSTRAP_KEY_FILE"
"""A file holding the bootstrap operator key (a mounted secret), read at startup; used when
`KOSMOS_BOOTSTRAP_KEY` is not set. Default: empty."""

KOSMOS_REFLECTION = "KOSMOS_REFLECTION"
"""``true`` serves gRPC server reflection (``grpcurl list``). Default: ``false``."""

KOSMOS_SECRET = "KOSMOS_SECRET"
"""The server secret (at least 16 characters) that signs page tokens and recommendation ids
and keys plugin pseudonyms; every process of a cluster needs the same one. Default: a random
one per process (the embedded mode: tokens and ids then end with the process)."""

KOSMOS_TLS_CERT = "KOSMOS_TLS_CERT"
"""PEM certificate chain a server presents; with `KOSMOS_TLS_KEY` every port serves TLS, and
rotated files are picked up without a restart. Default: empty (plaintext)."""

KOSMOS_TLS_KEY = "KOSMOS_TLS_KEY"
"""PEM private key of `KOSMOS_TLS_CERT`. Default: empty."""

KOSMOS_TLS_CLIENT_CA = "KOSMOS_TLS_CLIENT_CA"
"""PEM CA whose certificates clients must present (mutual TLS). Default: empty (no client
certificates asked for)."""

KOSMOS_TLS_CA = "KOSMOS_TLS_CA"
"""PEM CA that outgoing calls (the ``kosmos`` command, remote plugins) trust; setting it turns
TLS on for them. Default: empty (plaintext)."""

KOSMOS_TLS_CLIENT_CERT = "KOSMOS_TLS_CLIENT_CERT"
"""PEM client certificate outgoing calls present (mutual TLS). Default: empty."""

KOSMOS_TLS_CLIENT_KEY = "KOSMOS_TLS_CLIENT_KEY"
"""PEM private key of `KOSMOS_TLS_CLIENT_CERT`. Default: empty."""

KOSMOS_API_KEY = "KOSMOS_API_KEY"
"""The API key the ``kosmos`` command and `kosmos.client.KosmosClient` send. Default: empty."""


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


def _read_secret(env: Mapping[str, str], name: str, parse: Callable[[str], str]) -> str:
    """Like `_read`, but a bad value is never echoed: it may be a real secret."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return ""
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _list_length(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_LIST_LENGTH:
        raise ValueError(f"must be 1 to {MAX_LIST_LENGTH}")
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


def _model_store(raw: str) -> str:
    if raw.strip() not in ("files", "database"):
        raise ValueError("must be files or database")
    return raw.strip()


WEIGHTED_KINDS = ("view", "click", "add_to_cart", "purchase", "rating")
REPEAT_PURCHASE_MODES = ("learned", "always", "never")
DEFAULT_OWNED = frozenset({InteractionType.PURCHASE, InteractionType.RATING})


def _weights(raw: str) -> Weights:
    values: dict[str, Any] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        kind, sep, number = part.partition("=")
        kind = kind.strip().lower()
        if kind == "rating_per_star" and number.strip() in ("0", "1"):
            values[kind] = number.strip() == "1"  # 0: a rating weighs `rating` whatever its stars
            continue
        if not sep or kind not in WEIGHTED_KINDS:
            raise ValueError(
                f"expected kind=weight with kind one of {WEIGHTED_KINDS}, got {part!r}"
            )
        values[kind] = _weight(number)
    return dataclass_replace(DEFAULT_WEIGHTS, **values)


def _weight(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1e6:
        raise ValueError("a weight must be a number from 0 to 1000000")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


def _kinds(raw: str) -> frozenset[InteractionType]:
    kinds = set()
    for name in _names(raw):
        try:
            kinds.add(InteractionType[name.upper()])
        except KeyError:
            raise ValueError(f"unknown interaction kind {name!r}") from None
    return frozenset(kinds)


def _mode(raw: str) -> str:
    if raw.lower() not in REPEAT_PURCHASE_MODES:
        raise ValueError(f"must be one of {', '.join(REPEAT_PURCHASE_MODES)}")
    return raw.lower()


def _list(raw: str) -> frozenset[str]:
    return frozenset(v.strip() for v in raw.split(",") if v.strip())


def _weights_from_env(env: Mapping[str, str]) -> Weights:
    weights = _read(env, KOSMOS_INTERACTION_WEIGHTS, DEFAULT_WEIGHTS, _weights)
    exponent = _read(env, KOSMOS_QUANTITY_EXPONENT, weights.quantity_exponent, _fraction)
    if exponent != weights.quantity_exponent:
        weights = dataclass_replace(weights, quantity_exponent=exponent)
    # The defaults themselves, when nothing changed: `signals.to_plugin` has a fast path for them.
    return DEFAULT_WEIGHTS if weights == DEFAULT_WEIGHTS else weights


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
        drain_seconds: See `KOSMOS_DRAIN_SECONDS`.
        bootstrap_key: See `KOSMOS_BOOTSTRAP_KEY`.
        reflection: See `KOSMOS_REFLECTION`.
        secret: See `KOSMOS_SECRET`; empty: a random one.
        tls: See `KOSMOS_TLS_CERT`; None: plaintext.
        client_tls: See `KOSMOS_TLS_CA`; None: plaintext outgoing calls.
        log_format: See `KOSMOS_LOG_FORMAT`.
        metrics_listen: See `KOSMOS_METRICS_LISTEN`.
        processes: See `KOSMOS_PROCESSES`.
        http_listen: See `KOSMOS_HTTP_LISTEN`.
        web_dir: See `KOSMOS_WEB_DIR`; empty: the checkout's ``services/web/dist``.
        heartbeat_seconds: See `KOSMOS_HEARTBEAT_SECONDS`.
        auth_cache_seconds: See `KOSMOS_AUTH_CACHE_SECONDS`.
    """

    listen: str
    database_url: str = "sqlite:///kosmos.db"
    workers: int = 4
    grace_seconds: float = 5.0
    log_level: str = "INFO"
    drain_seconds: float = 5.0
    bootstrap_key: str = field(default="", repr=False)
    reflection: bool = False
    secret: str = field(default="", repr=False)
    tls: TlsFiles | None = None
    client_tls: ClientTls | None = None
    log_format: str = "text"
    metrics_listen: str = ""
    processes: int = 1
    http_listen: str = ""
    web_dir: str = ""
    heartbeat_seconds: float = 5.0
    auth_cache_seconds: float = 1.0

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
            drain_seconds=_read(
                env, KOSMOS_DRAIN_SECONDS, defaults.drain_seconds, _non_negative_float
            ),
            bootstrap_key=_read_secret(env, KOSMOS_BOOTSTRAP_KEY, _bootstrap_key)
            or _read_secret(env, KOSMOS_BOOTSTRAP_KEY_FILE, _bootstrap_key_file),
            reflection=_read(env, KOSMOS_REFLECTION, False, _bool),
            secret=_read_secret(env, KOSMOS_SECRET, _secret),
            tls=server_tls_from_env(env),
            client_tls=client_tls_from_env(env),
            log_format=_read(env, KOSMOS_LOG_FORMAT, defaults.log_format, _log_format),
            metrics_listen=_read(env, KOSMOS_METRICS_LISTEN, defaults.metrics_listen, _address),
            processes=_read(env, KOSMOS_PROCESSES, usable_cores(), _positive_int),
            http_listen=_read(env, KOSMOS_HTTP_LISTEN, defaults.http_listen, _address),
            web_dir=_read(env, KOSMOS_WEB_DIR, defaults.web_dir, str),
            heartbeat_seconds=_read(
                env, KOSMOS_HEARTBEAT_SECONDS, defaults.heartbeat_seconds, _positive_float
            ),
            auth_cache_seconds=_read(
                env, KOSMOS_AUTH_CACHE_SECONDS, defaults.auth_cache_seconds, _non_negative_float
            ),
        )


def trace_sample_ratio(env: Mapping[str, str] = os.environ) -> float:
    """`KOSMOS_TRACE_SAMPLE_RATIO`, checked.

    Raises:
        ConfigError: Not a number from 0 to 1.
    """
    return _read(env, KOSMOS_TRACE_SAMPLE_RATIO, DEFAULT_TRACE_SAMPLE_RATIO, _ratio)


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a number from 0 to 1")
    return value


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU limit
    (a container's ``resources.limits.cpu``, rounded up); at least 1."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity stands
    return max(1, cores)


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be true or false")
    return value in ("true", "1", "yes")


def _bootstrap_key(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters")
    return raw


def _bootstrap_key_file(raw: str) -> str:
    try:
        content = Path(raw).read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from None
    return _bootstrap_key(content)


def _secret(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters")
    return raw


def _readable(name: str, path: str) -> str:
    if path and not os.path.isfile(path):
        raise ConfigError(f"{name}={path!r}: no such file")
    return path


def server_tls_from_env(env: Mapping[str, str] = os.environ) -> TlsFiles | None:
    """`KOSMOS_TLS_CERT`, `KOSMOS_TLS_KEY` and `KOSMOS_TLS_CLIENT_CA`; None without a cert."""
    cert = _readable(KOSMOS_TLS_CERT, env.get(KOSMOS_TLS_CERT, "").strip())
    key = _readable(KOSMOS_TLS_KEY, env.get(KOSMOS_TLS_KEY, "").strip())
    client_ca = _readable(KOSMOS_TLS_CLIENT_CA, env.get(KOSMOS_TLS_CLIENT_CA, "").strip())
    if not cert and not key:
        if client_ca:
            raise ConfigError(
                f"{KOSMOS_TLS_CLIENT_CA} needs {KOSMOS_TLS_CERT} and {KOSMOS_TLS_KEY}"
            )
        return None
    if not cert or not key:
        raise ConfigError(f"{KOSMOS_TLS_CERT} and {KOSMOS_TLS_KEY} go together")
    return TlsFiles(cert, key, client_ca)


def client_tls_from_env(env: Mapping[str, str] = os.environ) -> ClientTls | None:
    """`KOSMOS_TLS_CA`, `KOSMOS_TLS_CLIENT_CERT`, `KOSMOS_TLS_CLIENT_KEY`; None when all unset."""
    ca = _readable(KOSMOS_TLS_CA, env.get(KOSMOS_TLS_CA, "").strip())
    cert = _readable(KOSMOS_TLS_CLIENT_CERT, env.get(KOSMOS_TLS_CLIENT_CERT, "").strip())
    key = _readable(KOSMOS_TLS_CLIENT_KEY, env.get(KOSMOS_TLS_CLIENT_KEY, "").strip())
    if bool(cert) != bool(key):
        raise ConfigError(f"{KOSMOS_TLS_CLIENT_CERT} and {KOSMOS_TLS_CLIENT_KEY} go together")
    if not (ca or cert):
        return None
    return ClientTls(ca, cert, key)


@dataclass(frozen=True, slots=True)
class RecommendationSettings:
    """How the recommendation service picks, filters and refreshes recommenders.

    Attributes:
        routing: See `KOSMOS_ROUTING`.
        disabled: See `KOSMOS_DISABLED_RECOMMENDERS`.
        refresh_seconds: See `KOSMOS_MODEL_REFRESH_SECONDS`.
        max_per_category: See `KOSMOS_MAX_PER_CATEGORY`.
        list_length: See `KOSMOS_LIST_LENGTH`.
        recent_interactions: See `KOSMOS_RECENT_INTERACTIONS`.
        repurchase_cooldown_hours: See `KOSMOS_REPURCHASE_COOLDOWN_HOURS`.
        model_dir: See `KOSMOS_MODEL_DIR`.
        model_store: See `KOSMOS_MODEL_STORE`.
        model_poll_seconds: See `KOSMOS_MODEL_POLL_SECONDS`.
        fit_in_process: See `KOSMOS_FIT_IN_PROCESS`.
        model_keep: See `KOSMOS_MODEL_KEEP`.
        model_pins: See `KOSMOS_MODEL_PINS`; (shop, recommender) → version.
        remote: See `KOSMOS_REMOTE_RECOMMENDERS`; name → ``host:port``.
        remote_timeout_ms: See `KOSMOS_REMOTE_TIMEOUT_MS`.
        plugin_settings: See `KOSMOS_PLUGIN_PREFIX`; plugin name → setting → value.
        remote_tls: See `KOSMOS_TLS_CA`: how to call out-of-process plugins.
        weights: See `KOSMOS_INTERACTION_WEIGHTS` and `KOSMOS_QUANTITY_EXPONENT`.
        owned_types: See `KOSMOS_OWNED_INTERACTIONS`.
        repeat_purchase: See `KOSMOS_REPEAT_PURCHASE`.
        repurchase_threshold: See `KOSMOS_REPURCHASE_THRESHOLD`.
        repeatable_items: See `KOSMOS_REPEATABLE_ITEMS`.
        repeatable_categories: See `KOSMOS_REPEATABLE_CATEGORIES`.

    Each shop may override routing, plugin settings, variety, the list length, the seen-item
    policy and the weights (`kosmos.shopconfig`); these are the cluster-wide defaults.
    """

    routing: Routing = field(default_factory=Routing)
    disabled: frozenset[str] = frozenset()
    refresh_seconds: float = 60.0
    max_per_category: int = 3
    list_length: int = DEFAULT_LIST_LENGTH
    recent_interactions: int = 25
    repurchase_cooldown_hours: float = 24.0
    model_dir: str = ""
    model_poll_seconds: float = 5.0
    model_store: str = "files"
    fit_in_process: frozenset[str] = frozenset({"popularity"})
    model_keep: int = 5
    remote: Mapping[str, str] = field(default_factory=dict)
    remote_timeout_ms: float = 250.0
    plugin_settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    remote_tls: ClientTls | None = None
    weights: Weights = DEFAULT_WEIGHTS
    owned_types: frozenset[InteractionType] = DEFAULT_OWNED
    repeat_purchase: str = "learned"
    repurchase_threshold: float = 0.1
    repeatable_items: frozenset[str] = frozenset()
    repeatable_categories: frozenset[str] = frozenset()
    train_in_background: bool = False
    """Embedded mode (``make run``): the recommendation process also runs the trainer every
    ``refresh_seconds`` (skipping unchanged shops), so models keep up without a CronJob."""
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
            list_length=_read(env, KOSMOS_LIST_LENGTH, defaults.list_length, _list_length),
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
            model_store=_read(env, KOSMOS_MODEL_STORE, defaults.model_store, _model_store),
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
            remote_tls=client_tls_from_env(env),
            weights=_weights_from_env(env),
            owned_types=_read(env, KOSMOS_OWNED_INTERACTIONS, defaults.owned_types, _kinds),
            repeat_purchase=_read(env, KOSMOS_REPEAT_PURCHASE, defaults.repeat_purchase, _mode),
            repurchase_threshold=_read(
                env, KOSMOS_REPURCHASE_THRESHOLD, defaults.repurchase_threshold, _fraction
            ),
            repeatable_items=_read(env, KOSMOS_REPEATABLE_ITEMS, frozenset(), _list),
            repeatable_categories=_read(env, KOSMOS_REPEATABLE_CATEGORIES, frozenset(), _list),
            model_pins=_read(env, KOSMOS_MODEL_PINS, _NO_PINS, _pins),
        )
