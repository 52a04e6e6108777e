"""Shared fixtures: a real cluster server in process on a free port, a real SQLite store, and an
in-memory span exporter behind the global tracer provider."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import grpc
import pytest
from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from kosmos import cluster
from kosmos.client import KosmosClient
from kosmos.common import telemetry
from kosmos.common.auth import Authorizer, with_key
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import build_server
from kosmos.plugin import LoadedPlugin
from kosmos.store import SQLiteStore

_EXPORTER = InMemorySpanExporter()


_METRICS = InMemoryMetricReader()
# The same instruments in Prometheus text, as a process's KOSMOS_METRICS_LISTEN serves them
# (the dashboard's /metrics in tests/web).
_PROMETHEUS = CollectorRegistry()


def prometheus_text() -> bytes:
    """This test process's metrics as the Prometheus endpoint would serve them."""
    text: bytes = generate_latest(_PROMETHEUS)
    return text


def pytest_configure(config: pytest.Config) -> None:
    # A KosmosClient made without api_key= reads KOSMOS_API_KEY: tests that build their own
    # client against a test cluster need not know about keys.
    os.environ.setdefault("KOSMOS_API_KEY", OPERATOR_KEY)
    # The global providers can be set once per process: the tests share one, reset per test.
    # They are built as production builds them (privacy sampler included), without exporters.
    # Every request traced (production samples KOSMOS_TRACE_SAMPLE_RATIO of them).
    provider = telemetry.tracer_provider("kosmos-tests", env={"KOSMOS_TRACE_SAMPLE_RATIO": "1"})
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    meters, _address = telemetry.meter_provider(
        "kosmos-tests", env={}, readers=[_METRICS, PrometheusMetricReader(registry=_PROMETHEUS)]
    )
    metrics.set_meter_provider(meters)


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The reader behind the global meter provider (cumulative: compare before and after)."""
    return _METRICS


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def store(tmp_path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "kosmos.db")
    yield s
    s.close()


POSTGRES_URL = os.environ.get(
    "KOSMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh schema of its own (other agents' tests share the database): the
    store's tables, and its connections' ``application_name``, carry the schema's name.
    Skips when PostgreSQL is unreachable, except under CI=true, where it fails."""
    import psycopg

    schema = f"kosmos_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in POSTGRES_URL else "?"
        options = quote(f"-c search_path={schema}")
        yield f"{POSTGRES_URL}{separator}options={options}&application_name={schema}"
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


# The operator key every test cluster accepts (KOSMOS_BOOTSTRAP_KEY in production): the
# fixture's client and channel send it, so tests that are not about access need no keys.
OPERATOR_KEY = "test-operator-key-0123456789abcdef"


@dataclass
class Cluster:
    address: str
    port: int
    server: grpc.Server
    store: SQLiteStore
    client: KosmosClient
    channel: grpc.Channel
    """Sends `OPERATOR_KEY` with every call."""
    raw_channel: grpc.Channel
    """Sends no key: for tests of authentication (set your own metadata)."""
    operator_key: str = OPERATOR_KEY

    def close(self) -> None:
        self.client.close()
        self.raw_channel.close()
        self.server.stop(None).wait()


def start_cluster(
    store: SQLiteStore,
    settings: RecommendationSettings | None = None,
    plugins: dict[str, LoadedPlugin] | None = None,
) -> Cluster:
    settings = settings or RecommendationSettings(refresh_seconds=0)
    server, port, _health = build_server(
        "127.0.0.1:0",
        8,
        cluster.services(store, settings, plugins),
        auth=Authorizer(store, OPERATOR_KEY, cache_seconds=1.0),  # as served
    )
    server.start()
    address = f"127.0.0.1:{port}"
    raw = grpc.insecure_channel(address)
    grpc.channel_ready_future(raw).result(timeout=5)
    channel = with_key(raw, OPERATOR_KEY)
    client = KosmosClient(address, api_key=OPERATOR_KEY)
    return Cluster(address, port, server, store, client, channel, raw)


@pytest.fixture
def kosmos(store) -> Iterator[Cluster]:
    c = start_cluster(store)
    yield c
    c.close()


@pytest.fixture
def client(kosmos) -> KosmosClient:
    return kosmos.client
