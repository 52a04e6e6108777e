"""Shared fixtures: a real cluster server in process on a free port, a real SQLite store, and an
in-memory span exporter behind the global tracer provider."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kosmos import cluster
from kosmos.client import KosmosClient
from kosmos.common import telemetry
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import build_server
from kosmos.plugin import LoadedPlugin
from kosmos.store import SQLiteStore

_EXPORTER = InMemorySpanExporter()


_METRICS = InMemoryMetricReader()


def pytest_configure(config: pytest.Config) -> None:
    # The global providers can be set once per process: the tests share one, reset per test.
    # They are built as production builds them (privacy sampler included), without exporters.
    provider = telemetry.tracer_provider("kosmos-tests", env={})
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    meters, _address = telemetry.meter_provider("kosmos-tests", env={}, readers=[_METRICS])
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


@dataclass
class Cluster:
    address: str
    port: int
    server: grpc.Server
    store: SQLiteStore
    client: KosmosClient
    channel: grpc.Channel


def start_cluster(
    store: SQLiteStore,
    settings: RecommendationSettings | None = None,
    plugins: dict[str, LoadedPlugin] | None = None,
) -> Cluster:
    settings = settings or RecommendationSettings(refresh_seconds=0)
    server, port, _health = build_server(
        "127.0.0.1:0", 8, cluster.services(store, settings, plugins)
    )
    server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=5)
    return Cluster(address, port, server, store, KosmosClient(address), channel)


@pytest.fixture
def kosmos(store) -> Iterator[Cluster]:
    c = start_cluster(store)
    yield c
    c.client.close()
    c.channel.close()
    c.server.stop(None).wait()


@pytest.fixture
def client(kosmos) -> KosmosClient:
    return kosmos.client
