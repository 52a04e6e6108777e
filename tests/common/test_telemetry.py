"""Metrics, trace privacy, the standard OTel environment and trace ids in logs (issue 10)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kosmos.client import InteractionInput, InvalidArgumentError
from kosmos.common import metrics, telemetry
from kosmos.common.config import RecommendationSettings
from kosmos.plugin import LoadedPlugin
from kosmos.plugin.routing import Routing
from kosmos.recommendation import ModelHub
from kosmos.recommenders.popularity import create as popularity
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop
from tests.conftest import OPERATOR_KEY, start_cluster
from tests.helpers import small_shop
from tests.recommendation.test_servicer import Broken

# -- helpers -------------------------------------------------------------------------------


def points(reader, name: str, **attributes: str) -> list:
    """Data points of metric ``name`` whose attributes include ``attributes``."""
    wanted = {k.replace("__", "."): v for k, v in attributes.items()}
    found = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != name:
                    continue
                for p in metric.data.data_points:
                    if all(p.attributes.get(k) == v for k, v in wanted.items()):
                        found.append(p)
    return found


def total(reader, name: str, **attributes: str) -> float:
    """Sum of counter values (or histogram counts) of the matching points."""
    return sum(
        getattr(p, "value", None) or getattr(p, "count", 0)
        for p in points(reader, name, **attributes)
    )


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text exposition as {(name, labels): value}."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def value(samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


# -- /metrics from a running server -------------------------------------------------------


def test_a_running_cluster_serves_metrics_that_move(tmp_path):
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_METRICS_LISTEN": "127.0.0.1:0",
        # Metrics are per process (each of KOSMOS_PROCESSES serves its own endpoint): one
        # process gives this test every call in one place.
        "KOSMOS_PROCESSES": "1",
        "KOSMOS_DATABASE_URL": f"sqlite:///{tmp_path}/k.db",
        "KOSMOS_BOOTSTRAP_KEY": OPERATOR_KEY,  # the test's client sends it (KOSMOS_API_KEY)
        "OTEL_SERVICE_NAME": "kosmos-metrics-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listening = proc.stdout.readline()
        assert "listening on" in listening, listening + proc.stderr.read()
        address = listening.strip().rsplit(" ", 1)[1]
        metrics_line = proc.stdout.readline()
        assert "metrics on" in metrics_line, metrics_line
        url = metrics_line.strip().rsplit(" ", 1)[1]

        before = scrape(url)
        recommend = {"rpc_method": "kosmos.v1.RecommendationService/Recommend"}
        assert value(before, "rpc_server_call_duration_seconds_count", **recommend) == 0

        from kosmos.client import KosmosClient

        with KosmosClient(address) as client:
            small_shop(client)
            client.record_interactions(
                "acme",
                [
                    InteractionInput("alice", "i01", "view"),
                    InteractionInput("bob", "i02", "purchase"),
                ],
            )
            for _ in range(3):
                assert len(client.recommend("acme", "alice", page_size=4).offers) == 4
            with pytest.raises(InvalidArgumentError):
                client.recommend("acme", "alice", page_size=-1)

        after = scrape(url)
        # The resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) labels target_info.
        assert (
            value(
                after,
                "target_info",
                service_name="kosmos-metrics-test",
                deployment_environment_name="test",
            )
            == 1
        )
        assert value(after, "rpc_server_call_duration_seconds_count", **recommend) == 4
        assert (
            value(
                after,
                "rpc_server_call_duration_seconds_count",
                rpc_response_status_code="INVALID_ARGUMENT",
                error_type="INVALID_ARGUMENT",
                **recommend,
            )
            == 1
        )
        assert value(after, "rpc_server_call_duration_seconds_sum", **recommend) > 0
        assert value(after, "kosmos_offers_served_total", kosmos_recommender="popularity") == 12
        assert value(after, "kosmos_feedback_interactions_total") == 2
        assert (
            value(after, "kosmos_feedback_interactions_total", kosmos_interaction_type="purchase")
            == 1
        )
        ages = [dict(ls) for (n, ls), _v in after.items() if n == "kosmos_model_age_seconds"]
        assert {
            "kosmos_shop": "acme",
            "kosmos_recommender": "popularity",
            "kosmos_model_version": "in-process",
        } in [
            {k: d[k] for k in ("kosmos_shop", "kosmos_recommender", "kosmos_model_version")}
            for d in ages
        ]
        # Probes stay out of the RPC metrics.
        assert not any("grpc.health" in dict(ls).get("rpc_method", "") for (_n, ls) in after)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()


# -- domain metrics, in process -----------------------------------------------------------


def test_fallbacks_are_counted_by_recommender_and_reason(store, metric_reader):
    settings = RecommendationSettings(routing=Routing.parse("broken,popularity"), refresh_seconds=0)
    plugins = {
        "broken": LoadedPlugin("broken", lambda s: Broken(), "tests"),
        "popularity": LoadedPlugin("popularity", popularity, "kosmos"),
    }
    failed = total(
        metric_reader,
        "kosmos.recommend.fallbacks",
        kosmos__recommender="broken",
        kosmos__fallback__reason="failed",
    )
    served = total(metric_reader, "kosmos.offers.served", kosmos__recommender="popularity")
    c = start_cluster(store, settings, plugins)
    try:
        small_shop(c.client)
        c.client.recommend("acme", "alice", page_size=3)
        c.client.recommend("acme", "alice", page_size=3)
    finally:
        c.client.close()
        c.server.stop(None).wait()
    assert (
        total(
            metric_reader,
            "kosmos.recommend.fallbacks",
            kosmos__recommender="broken",
            kosmos__fallback__reason="failed",
        )
        == failed + 2
    )
    assert (
        total(metric_reader, "kosmos.offers.served", kosmos__recommender="popularity") == served + 6
    )


def test_each_recommenders_latency_in_the_chain_is_recorded_by_outcome(store, metric_reader):
    # Issue 14: the dashboard draws plugin latency from this histogram.
    settings = RecommendationSettings(routing=Routing.parse("broken,popularity"), refresh_seconds=0)
    plugins = {
        "broken": LoadedPlugin("broken", lambda s: Broken(), "tests"),
        "popularity": LoadedPlugin("popularity", popularity, "kosmos"),
    }
    name = "kosmos.recommender.duration"
    failed = total(metric_reader, name, kosmos__recommender="broken", kosmos__outcome="failed")
    ok = total(metric_reader, name, kosmos__recommender="popularity", kosmos__outcome="ok")
    c = start_cluster(store, settings, plugins)
    try:
        small_shop(c.client)
        c.client.recommend("acme", "alice", page_size=3)
    finally:
        c.client.close()
        c.server.stop(None).wait()
    assert total(metric_reader, name, kosmos__recommender="broken", kosmos__outcome="failed") == (
        failed + 1
    )
    assert total(metric_reader, name, kosmos__recommender="popularity", kosmos__outcome="ok") == (
        ok + 1
    )
    (point,) = points(metric_reader, name, kosmos__recommender="popularity", kosmos__outcome="ok")
    assert 0 < point.sum < 5  # seconds


def test_a_refit_records_freshness_and_training_duration(store, metric_reader):
    now = [1_000_000.0]
    hub = ModelHub(
        store,
        {"popularity": LoadedPlugin("popularity", popularity, "kosmos")},
        ("popularity",),
        {},
        refresh_seconds=0,
        clock=lambda: now[0],
    )
    fits = total(
        metric_reader,
        "kosmos.training.duration",
        kosmos__shop="fresh",
        kosmos__training__where="in_process",
    )
    store.create_shop(Shop("fresh"))
    store.create_customer(Customer("fresh", "alice"))
    store.upsert_items([Item("fresh", "i1")])
    hub.refresh_shop("fresh")
    assert points(metric_reader, "kosmos.feedback.freshness", kosmos__shop="fresh") == []
    now[0] += 90.0
    # New data since the fit (a refit of unchanged data is skipped, issue 8).
    store.record_interactions(
        "fresh", "r1", "h1", [Interaction("fresh", "alice", "i1", InteractionType.VIEW, now[0])]
    )
    hub.refresh_shop("fresh")
    (fresh,) = points(metric_reader, "kosmos.feedback.freshness", kosmos__shop="fresh")
    assert (fresh.count, fresh.sum) == (1, 90.0)
    assert (
        total(
            metric_reader,
            "kosmos.training.duration",
            kosmos__shop="fresh",
            kosmos__training__where="in_process",
        )
        == fits + 2
    )
    (age,) = [p for p in points(metric_reader, "kosmos.model.age", kosmos__shop="fresh")]
    assert age.attributes["kosmos.model.version"] == "in-process"


def test_event_lag_is_recorded_for_the_event_engine(metric_reader):
    def lag():
        found = points(metric_reader, "kosmos.events.lag", kosmos__events__stream="test-lag")
        return (found[0].count, found[0].sum) if found else (0, 0.0)

    count, seconds = lag()
    metrics.record_event_lag(0.25, stream="test-lag")
    metrics.record_event_lag(-1.0, stream="test-lag")  # clock skew counts as no lag
    assert lag() == (count + 2, pytest.approx(seconds + 0.25))


# -- traces --------------------------------------------------------------------------------


def test_server_spans_carry_no_peer_address_or_user_agent(kosmos, spans):
    small_shop(kosmos.client)
    kosmos.client.recommend("acme", "alice", page_size=2)
    server = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert server, "no server spans"
    for span in server:
        assert not set(span.attributes) & telemetry.PERSONAL_ATTRIBUTES, span.attributes
        assert span.attributes["rpc.system"] == "grpc"  # the rest survives
    (rec,) = [s for s in server if s.name.endswith("/Recommend")]
    assert rec.attributes["kosmos.shop"] == "acme"
    assert rec.attributes["kosmos.offers.count"] == 2
    steps = [s for s in spans.get_finished_spans() if s.name == "recommend.recommender"]
    assert steps and steps[0].attributes["kosmos.recommender"] == "popularity"
    assert steps[0].attributes["kosmos.model.version"] == "in-process"


def test_the_sdk_reads_service_name_resource_and_sampler_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "kosmos-from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.namespace.name=shop-a")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = telemetry.tracer_provider("kosmos-default", env=os.environ)
    assert provider.resource.attributes["service.name"] == "kosmos-from-env"
    assert provider.resource.attributes["k8s.namespace.name"] == "shop-a"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("dropped"):
        pass
    assert exporter.get_finished_spans() == ()
    assert "AlwaysOffSampler" in provider.sampler.get_description()
    provider.shutdown()

    monkeypatch.delenv("OTEL_SERVICE_NAME")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = telemetry.tracer_provider("kosmos-default", env=os.environ)
    assert provider.resource.attributes["service.name"] == "kosmos-default"
    assert "0.25" in provider.sampler.get_description()
    provider.shutdown()


@pytest.mark.parametrize(
    ("env", "exports"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ],
)
def test_traces_export_when_the_environment_asks(env, exports):
    assert (
        telemetry._exports(env, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        is exports
    )


# -- logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_lines_carry_the_trace_and_span_ids(log_format, spans):
    handler = telemetry.log_handler(log_format)
    out = io.StringIO()
    handler.setStream(out)
    logger = logging.getLogger(f"kosmos.test.{log_format}")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with trace.get_tracer(__name__).start_as_current_span("logged") as span:
            logger.warning("model %s swapped", "v2")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_id = format(span.get_span_context().span_id, "016x")
    inside, outside = out.getvalue().splitlines()
    if log_format == "json":
        record = json.loads(inside)
        assert record["message"] == "model v2 swapped"
        assert record["level"] == "WARNING"
        assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)
        assert json.loads(outside)["trace_id"] == ""
    else:
        assert f"trace_id={trace_id} span_id={span_id}" in inside
        assert "model v2 swapped" in inside


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="text, json"):
        telemetry.log_handler("xml")


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("KOSMOS_LOG_FORMAT", "xml"),
        ("KOSMOS_METRICS_LISTEN", "9464"),
        ("KOSMOS_METRICS_LISTEN", "h:x"),
    ],
)
def test_bad_telemetry_settings_stop_startup_naming_the_variable(variable, raw):
    from kosmos.common.config import ConfigError, ServerConfig

    with pytest.raises(ConfigError, match=variable):
        ServerConfig.from_env("KOSMOS_CLUSTER_LISTEN", "127.0.0.1:0", {variable: raw})


def test_telemetry_settings_default_to_text_logs_and_no_scrape_endpoint():
    from kosmos.common.config import ServerConfig

    config = ServerConfig.from_env("KOSMOS_CLUSTER_LISTEN", "127.0.0.1:0", {})
    assert (config.log_format, config.metrics_listen) == ("text", "")
    config = ServerConfig.from_env(
        "KOSMOS_CLUSTER_LISTEN",
        "127.0.0.1:0",
        {"KOSMOS_LOG_FORMAT": "JSON", "KOSMOS_METRICS_LISTEN": "0.0.0.0:9464"},
    )
    assert (config.log_format, config.metrics_listen) == ("json", "0.0.0.0:9464")


def test_requests_are_sampled_at_the_operators_ratio_and_follow_the_callers_decision():
    # Issue 12: without OTEL_TRACES_SAMPLER, KOSMOS_TRACE_SAMPLE_RATIO of new traces are
    # recorded; a caller's sampled trace is always followed, its unsampled one never; an
    # unrecorded span still carries a trace id (logs and INTERNAL messages name it).
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    from kosmos.common.config import ConfigError

    def recorded(ratio: str, parent_flags: TraceFlags | None = None) -> tuple[int, str]:
        provider = telemetry.tracer_provider(
            "kosmos-sampling", env={"KOSMOS_TRACE_SAMPLE_RATIO": ratio}
        )
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        context = None
        if parent_flags is not None:
            parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=parent_flags)
            context = set_span_in_context(NonRecordingSpan(parent))
        ids = set()
        for _ in range(200):
            with tracer.start_as_current_span("rpc", context=context) as span:
                span.set_attribute("kosmos.shop", "acme")
                ids.add(telemetry.current_trace_id())
        provider.shutdown()
        return len(exporter.get_finished_spans()), min(ids)

    assert recorded("1")[0] == 200
    none, trace_id = recorded("0")
    assert none == 0 and len(trace_id) == 32 and trace_id != "0" * 32
    assert 0 < recorded("0.5")[0] < 200
    assert recorded("0", TraceFlags(TraceFlags.SAMPLED))[0] == 200  # the caller sampled it
    assert recorded("1", TraceFlags(TraceFlags.DEFAULT))[0] == 0  # the caller did not
    with pytest.raises(ConfigError, match="KOSMOS_TRACE_SAMPLE_RATIO"):
        telemetry.tracer_provider("kosmos-sampling", env={"KOSMOS_TRACE_SAMPLE_RATIO": "2"})


@pytest.fixture
def traced_server() -> Iterator[grpc.Channel]:
    """A bare server with `telemetry.TracingInterceptor` alone, and methods that end every way
    a call can: answered, aborted (a server's error and a caller's), crashed, streamed."""
    inner = trace.get_tracer("test")

    def ok(request: bytes, context: grpc.ServicerContext) -> bytes:
        with inner.start_as_current_span("work"):
            return request

    def internal(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.INTERNAL, "boom")

    def missing(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def crash(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise ValueError("a bug")

    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"1"
        yield b"2"
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(f)
        for name, f in (("Ok", ok), ("Internal", internal), ("Missing", missing), ("Crash", crash))
    }
    handlers["Stream"] = grpc.unary_stream_rpc_method_handler(stream)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2),
        interceptors=[telemetry.TracingInterceptor()],
        handlers=[grpc.method_handlers_generic_handler("kosmos.test.Traced", handlers)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(None).wait()


def _server_span(spans: InMemorySpanExporter, method: str) -> Any:
    (span,) = [s for s in spans.get_finished_spans() if s.name == f"/kosmos.test.Traced/{method}"]
    assert span.kind == trace.SpanKind.SERVER
    return span


def test_server_spans_name_the_method_and_end_with_the_calls_status(traced_server, spans):
    # Issue 12: Kosmos's own server tracing, in place of the instrumentation's interceptor, makes
    # the spans that one did: the same names and attributes, the status the conventions give.
    assert traced_server.unary_unary("/kosmos.test.Traced/Ok")(b"x", timeout=5) == b"x"
    for method, code in (("Internal", "INTERNAL"), ("Missing", "NOT_FOUND"), ("Crash", "UNKNOWN")):
        with pytest.raises(grpc.RpcError) as caught:
            traced_server.unary_unary(f"/kosmos.test.Traced/{method}")(b"", timeout=5)
        assert caught.value.code().name == code
    with pytest.raises(grpc.RpcError) as caught:
        list(traced_server.unary_stream("/kosmos.test.Traced/Stream")(b"", timeout=5))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    ok = _server_span(spans, "Ok")
    assert dict(ok.attributes) == {
        "rpc.system": "grpc",
        "rpc.service": "kosmos.test.Traced",
        "rpc.method": "Ok",
        "rpc.grpc.status_code": 0,
    }
    assert ok.status.status_code == trace.StatusCode.UNSET
    (work,) = [s for s in spans.get_finished_spans() if s.name == "work"]
    assert work.parent.span_id == ok.context.span_id  # the handler runs inside the span

    internal = _server_span(spans, "Internal")
    assert internal.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert internal.status.status_code == trace.StatusCode.ERROR
    assert internal.status.description == "StatusCode.INTERNAL:boom"
    missing = _server_span(spans, "Missing")  # the caller's mistake: not the server's error
    assert missing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert missing.status.status_code == trace.StatusCode.UNSET
    crash = _server_span(spans, "Crash")
    assert crash.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNKNOWN.value[0]
    assert crash.status.status_code == trace.StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in crash.events] == ["ValueError"]
    streamed = _server_span(spans, "Stream")  # ends with the stream, not at its first message
    assert streamed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert streamed.status.status_code == trace.StatusCode.ERROR


def test_server_spans_continue_the_callers_trace_and_follow_its_sampling(traced_server, spans):
    call = traced_server.unary_unary("/kosmos.test.Traced/Ok")
    trace_id, parent = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    for flags in ("01", "00"):
        header = f"00-{trace_id:032x}-{parent:016x}-{flags}"
        assert call(b"", metadata=(("traceparent", header),), timeout=5) == b""
    (span,) = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert span.context.trace_id == trace_id and span.parent.span_id == parent
    assert span.parent.is_remote
    # With no trace header the call starts a trace of its own.
    spans.clear()
    assert call(b"", metadata=(("x-other", "1"),), timeout=5) == b""
    fresh = _server_span(spans, "Ok")
    assert fresh.parent is None and fresh.context.trace_id != trace_id
