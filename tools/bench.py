"""``make bench``: Recommend over gRPC on loopback against the floor of the same server stack.

The cluster runs as its own process (``python -m kosmos.cluster``, SQLite, a synthetic shop
loaded through the API). Load comes from separate client processes so the client's GIL is not
the server's. Each phase sends a fixed number of requests; we print p50/p99 latency and
throughput for Recommend and for the floor (``grpc.health.v1.Health/Check``, an empty RPC served
by the same server, thread pool and error interceptor), and their ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import secrets
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from kosmos.client import KosmosClient
from kosmos.datasets import generate
from kosmos.demo import SHOP, load
from kosmos.v1 import recommendation_service_pb2 as rpb
from kosmos.v1 import recommendation_service_pb2_grpc as rgrpc


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: np.ndarray
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000)


def _worker(args: tuple[str, str, int, int, list[str], int, str]) -> list[float]:
    address, kind, threads, per_thread, customers, seed, key = args
    import threading

    from kosmos.common.auth import with_key

    raw = grpc.insecure_channel(address)
    channel = with_key(raw, key)  # a storefront key, as a shop's frontend sends it
    health = health_pb2_grpc.HealthStub(channel)
    recs = rgrpc.RecommendationServiceStub(channel)
    out: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        mine = []
        barrier.wait()
        for _ in range(per_thread):
            if kind == "floor":  # else "recommend", or "api": the same RPC to the API floor
                request = health_pb2.HealthCheckRequest(service="")
                started = time.perf_counter()
                health.Check(request, timeout=5)
            else:
                customer = rng.choice(customers)
                request = rpb.RecommendRequest(
                    customer=f"shops/{SHOP}/customers/{customer}", page_size=10
                )
                started = time.perf_counter()
                recs.Recommend(request, timeout=5)
            mine.append(time.perf_counter() - started)
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    raw.close()
    return out


def measure(
    pool: mp.pool.Pool,
    address: str,
    kind: str,
    concurrency: int,
    requests: int,
    customers: list[str],
    key: str,
    client_processes: int = 4,
) -> Result:
    procs = min(concurrency, client_processes)
    threads = concurrency // procs
    per_thread = max(1, requests // concurrency)
    started = time.perf_counter()
    parts = pool.map(
        _worker, [(address, kind, threads, per_thread, customers, s, key) for s in range(procs)]
    )
    seconds = time.perf_counter() - started
    return Result(kind, concurrency, np.array([x for p in parts for x in p]), seconds)


def cpu_list(text: str) -> set[int]:
    """``"0,1"`` or ``"2-15"`` or ``"0,4-7"``: the CPUs, as ``taskset -c`` reads them."""
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _ranges(cpus: list[int]) -> str:
    """The opposite of `cpu_list`: ``[2, 3, 4, 7]`` is ``"2-4,7"``."""
    parts: list[str] = []
    for cpu in sorted(cpus):
        if parts and cpu == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def _pin(cpus: set[int]) -> None:
    """Keep this process (and what it starts) on ``cpus``; nothing when none are given."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children alive now (the supervisor's processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{candidate}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MiB."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{candidate}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def span_cost(n: int = 20000) -> tuple[float, float]:
    """Microseconds per server-like span (5 attributes, one child), recorded and unsampled."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    out = []
    for sampler in (ALWAYS_ON, ALWAYS_OFF):
        tracer = TracerProvider(sampler=sampler).get_tracer("bench")
        started = time.perf_counter()
        for _ in range(n):
            with tracer.start_as_current_span("rpc", attributes={"rpc.system": "grpc"}) as span:
                span.set_attribute("kosmos.shop", "acme")
                span.set_attribute("kosmos.offers.count", 10)
                with tracer.start_as_current_span("recommend.candidates") as child:
                    child.set_attribute("kosmos.candidates.count", 40)
                    child.set_attribute("kosmos.recommender", "als")
        out.append((time.perf_counter() - started) / n * 1e6)
    return out[0], out[1]


@contextmanager
def warm_domain(
    database_url: str, env: dict[str, str], customers: list[str]
) -> Iterator[Callable[[], object]]:
    """One ``Recommend`` in the domain alone, as a call: `Recommendations.recommend` in this
    process on the loaded shop, built as the server builds it (same settings), with no
    transport, interceptors or response messages, for a random customer; after 300 calls that
    fit the models in process and warm the caches."""
    from kosmos.common.config import RecommendationSettings
    from kosmos.recommendation import Context, build
    from kosmos.store import open_store

    store = open_store(database_url)
    try:
        built = build(store, RecommendationSettings.from_env(env))
        rng = random.Random(5)
        context = Context("", "", "", frozenset())

        def call() -> object:
            return built.recommendations.recommend(SHOP, rng.choice(customers), context, 10, 0)

        for _ in range(300):
            call()
        try:
            yield call
        finally:
            built.models.stop()
    finally:
        store.close()


def domain_cost(database_url: str, env: dict[str, str], customers: list[str], n: int) -> float:
    """Milliseconds of CPU per ``Recommend`` in the domain alone (`warm_domain`). The
    thread's own CPU time, so the machine's other load counts little; the median of five
    rounds."""
    import statistics

    with warm_domain(database_url, env, customers) as call:
        rounds = []
        for _ in range(5):
            started = time.thread_time()
            for _ in range(max(1, n // 5)):
                call()
            rounds.append((time.thread_time() - started) / max(1, n // 5) * 1000)
        return statistics.median(rounds)


def domain_threads_cost(
    database_url: str, env: dict[str, str], customers: list[str], n: int, threads: list[int]
) -> dict[int, float]:
    """Milliseconds of this process's CPU (every thread: the callers, the store's list writer)
    per ``Recommend`` in the domain alone (`warm_domain`), called from each of ``threads``
    threads at once: what a server's request threads cost each other in hand-offs of the GIL,
    without the transport. The median of three rounds."""
    import statistics

    out: dict[int, float] = {}
    with warm_domain(database_url, env, customers) as call:
        for count in threads:
            each = max(1, n // count // 3)

            def run(each: int = each) -> None:
                for _ in range(each):
                    call()

            rounds = []
            for _ in range(3):
                workers = [threading.Thread(target=run) for _ in range(count)]
                started = os.times()
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
                ended = os.times()
                cpu = ended.user - started.user + ended.system - started.system
                rounds.append(cpu / (each * count) * 1000)
            out[count] = statistics.median(rounds)
    return out


@contextmanager
def api_floor(
    args: argparse.Namespace, env: dict[str, str], processes: int, cpus: set[int]
) -> Iterator[tuple[str, int] | None]:
    """With ``--api-floor`` and one process: `tools/api_floor_server.py` on the loaded shop,
    as ``(address, pid)``: ``Recommend`` through the same server stack and servicer, each
    customer's page computed once at start, so the RPC costs what the transport and the API
    do with a domain that costs nothing."""
    if not args.api_floor or processes != 1:
        yield None
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api_floor_server.py")
    server = subprocess.Popen(
        [sys.executable, script],
        env={**env, "KOSMOS_API_FLOOR_LISTEN": "127.0.0.1:0"},
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: _pin(cpus)) if cpus else None,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("api-floor listening on "):
            raise SystemExit(f"the API floor did not start: {line!r}")
        yield line.strip().rsplit(" ", 1)[-1], server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)
        server.stdout.close()


@dataclass
class Phase:
    processes: int
    ratio: str
    result: Result
    cpu_ms: float  # server CPU per request


def run_setup(
    args: argparse.Namespace,
    processes: int,
    ratio: str,
    console: Console,
    shop: object,
    domain: dict[int, float] | None = None,
    threaded: dict[int, float] | None = None,
) -> tuple[list[Phase], float]:
    """One cluster with ``processes`` processes and sampling ``ratio``: every phase, and RSS;
    with ``domain``, also the domain's CPU per call on the same database at each of
    ``--domain-list-lengths`` (into ``domain``)."""
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": args.database or f"sqlite:///{tmp}/bench.db",
            "KOSMOS_LOG_LEVEL": "WARNING",
            "KOSMOS_BOOTSTRAP_KEY": secrets.token_urlsafe(32),
            "KOSMOS_PROCESSES": str(processes),
            "KOSMOS_TRACE_SAMPLE_RATIO": ratio,
            "KOSMOS_LIST_LENGTH": str(args.list_length),
        }
        server_cpus = cpu_list(args.server_cpus)
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            # The supervisor's processes inherit the mask.
            preexec_fn=(lambda: _pin(server_cpus)) if server_cpus else None,
        )
        try:
            line = server.stdout.readline()
            address = line.strip().rsplit(" ", 1)[-1]
            console.print(
                f"cluster at {address} ({processes} process(es), trace ratio {ratio}); loading"
                f" {args.customers} customers, {args.items} items"
            )
            with KosmosClient(address, timeout=60, api_key=env["KOSMOS_BOOTSTRAP_KEY"]) as client:
                load(client, shop, console)
                key = client.create_api_key("storefront", SHOP, "bench").secret
            customers = [c.customer_id for c in shop.customers]
            clients = args.client_processes
            with mp.get_context("spawn").Pool(
                clients, initializer=_pin, initargs=(cpu_list(args.client_cpus),)
            ) as pool:
                # Warm-up: enough connections that every process fits its models.
                measure(pool, address, "recommend", 16, 800, customers, key, clients)
                with api_floor(args, env, processes, server_cpus) as api:
                    if api is not None:
                        measure(pool, api[0], "api", 16, 400, customers, key, clients)
                    for c in args.concurrency:
                        for kind in ("floor", "api", "recommend"):
                            if kind == "api" and api is None:
                                continue
                            at, pid = api if kind == "api" else (address, server.pid)
                            cpu = _cpu_seconds(pid)
                            r = measure(pool, at, kind, c, args.requests, customers, key, clients)
                            cpu = _cpu_seconds(pid) - cpu
                            phases.append(Phase(processes, ratio, r, cpu / len(r.latencies) * 1000))
            rss = _rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
            server.stdout.close()
        if domain is not None:
            for length in args.domain_list_lengths:
                domain[length] = domain_cost(
                    env["KOSMOS_DATABASE_URL"],
                    {**env, "KOSMOS_LIST_LENGTH": str(length)},
                    customers,
                    args.requests,
                )
        if threaded is not None and args.domain_threads:
            threaded.update(
                domain_threads_cost(
                    env["KOSMOS_DATABASE_URL"], env, customers, args.requests, args.domain_threads
                )
            )
    return phases, rss


def plot(phases: list[Phase], path: str, title: str) -> None:
    """p50 (dashed) and p99 (solid) against the number of clients, one colour per setup."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(p.result.name, p.processes, p.ratio) for p in phases})
    colours = plt.get_cmap("tab10")
    for n, (name, processes, ratio) in enumerate(keys):
        mine = [p for p in phases if (p.result.name, p.processes, p.ratio) == keys[n]]
        label = f"{_NAMES[name]}, {processes} proc, trace {ratio}"
        xs = [p.result.concurrency for p in mine]
        colour = colours(n % 10)
        ax.plot(xs, [p.result.p(99) for p in mine], "o-", color=colour, label=label + ", p99")
        ax.plot(xs, [p.result.p(50) for p in mine], ".--", color=colour, label=label + ", p50")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency (ms)")
    ax.set_title(textwrap.fill(f"make bench: latency against load ({title})", 72), fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


_NAMES = {
    "floor": "Health/Check (floor)",
    "api": "Recommend, domain free (API floor)",
    "recommend": "Recommend",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=2000, help="requests per phase")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="KOSMOS_PROCESSES")
    p.add_argument(
        "--trace-ratios", nargs="+", default=["0.01"], help="KOSMOS_TRACE_SAMPLE_RATIO values"
    )
    p.add_argument("--plot", default="", help="write latency against load as a PNG here")
    p.add_argument(
        "--list-length", type=int, default=50, help="KOSMOS_LIST_LENGTH of the cluster (50)"
    )
    p.add_argument(
        "--domain-list-lengths",
        type=int,
        nargs="*",
        default=[50, 20],
        help="list lengths the domain alone is measured at (50 20; none: skip)",
    )
    p.add_argument(
        "--domain-threads",
        type=int,
        nargs="*",
        default=[1, 4],
        help="threads the domain alone is also called from at once, its process CPU measured"
        " (1 4; none: skip)",
    )
    p.add_argument(
        "--database",
        default="",
        help="an empty database for one setup (e.g. a PostgreSQL URL; default: a SQLite file)",
    )
    p.add_argument(
        "--server-cpus",
        default="auto",
        help="CPUs the cluster's processes run on, as taskset -c reads them (0,1); 'auto': the"
        " first two when the machine has 4 or more, else any (shared with the clients)",
    )
    p.add_argument(
        "--client-cpus",
        default="auto",
        help="CPUs the client processes run on (2-15); 'auto': the others of --server-cpus",
    )
    p.add_argument(
        "--client-processes", type=int, default=4, help="client processes sending the load (4)"
    )
    p.add_argument(
        "--api-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure Recommend with the domain taken out (tools/api_floor_server.py) in"
        " one-process setups",
    )
    args = p.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    if args.server_cpus == "auto":
        # The bar's shape: two server processes on two cores, the clients on other cores.
        args.server_cpus = f"{usable[0]},{usable[1]}" if len(usable) >= 4 else ""
    if args.client_cpus == "auto":
        apart = sorted(set(usable) - cpu_list(args.server_cpus))
        args.client_cpus = _ranges(apart) if args.server_cpus else ""
    if args.database and len(args.processes) * len(args.trace_ratios) > 1:
        raise SystemExit("--database holds one setup's shop: give one --processes and ratio")
    console = Console()

    recorded, unsampled = span_cost()
    console.print(
        f"span cost (a server span with one child, 5 attributes): recorded {recorded:.1f} µs,"
        f" unsampled {unsampled:.1f} µs"
    )
    shop = generate(customers=args.customers, items=args.items, end_time=time.time())
    phases: list[Phase] = []
    memory: list[tuple[int, str, float]] = []
    domain: dict[int, float] = {}
    threaded: dict[int, float] = {}
    for processes in args.processes:
        for ratio in args.trace_ratios:
            first = not phases
            found, rss = run_setup(
                args,
                processes,
                ratio,
                console,
                shop,
                domain if first else None,
                threaded if first else None,
            )
            phases += found
            memory.append((processes, ratio, rss))

    where = (
        f"server on CPUs {args.server_cpus or 'any'}, {args.client_processes} client"
        f" processes on CPUs {args.client_cpus or 'any'}"
        if args.server_cpus or args.client_cpus
        else "clients on the same cores"
    )
    table = Table(
        title=f"make bench — {len(shop.interactions)} interactions, {os.cpu_count()} cores"
        f" ({where}), loopback",
        title_justify="left",
    )
    for column in ("RPC", "proc", "trace", "clients", "req/s", "p50 ms", "p99 ms", "CPU ms/req"):
        table.add_column(column, justify="left" if column == "RPC" else "right")
    for ph in phases:
        r = ph.result
        table.add_row(
            _NAMES[r.name],
            str(ph.processes),
            ph.ratio,
            str(r.concurrency),
            f"{r.rps:,.0f}",
            f"{r.p(50):.2f}",
            f"{r.p(99):.2f}",
            f"{ph.cpu_ms:.2f}",
        )
    console.print(table)

    summary = Table(title="Recommend against the floor, same run", title_justify="left")
    for column in ("proc", "trace", "clients", "throughput", "CPU/req", "p50", "p99"):
        summary.add_column(column, justify="right")
    summary.add_column("API floor: throughput, CPU/req, p99", justify="right")
    by = {(ph.processes, ph.ratio, ph.result.concurrency, ph.result.name): ph for ph in phases}
    for (processes, ratio, c, name), rec in by.items():
        if name != "recommend":
            continue
        floor = by[(processes, ratio, c, "floor")]
        api = by.get((processes, ratio, c, "api"))
        summary.add_row(
            str(processes),
            ratio,
            str(c),
            f"{rec.result.rps / floor.result.rps:.0%}",
            f"{rec.cpu_ms / floor.cpu_ms:.2f}×",
            f"{rec.result.p(50) / floor.result.p(50):.2f}×",
            f"{rec.result.p(99) / floor.result.p(99):.2f}×",
            f"{api.result.rps / floor.result.rps:.0%}, {api.cpu_ms / floor.cpu_ms:.2f}×,"
            f" {api.result.p(99) / floor.result.p(99):.2f}×"
            if api is not None
            else "",
        )
    console.print(summary)
    if len(args.processes) > 1:
        first, *others = args.processes
        for other in others:
            for ratio in args.trace_ratios:
                for c in args.concurrency:
                    one = by[(first, ratio, c, "recommend")].result.rps
                    many = by[(other, ratio, c, "recommend")].result.rps
                    console.print(
                        f"Recommend at {c} clients, trace {ratio}: {other} processes"
                        f" {many / one:.2f}× the throughput of {first}"
                    )
    first_floor = next(ph for ph in phases if ph.result.name == "floor")
    for length, cost in domain.items():
        console.print(
            f"The domain alone (Recommendations.recommend in process, no transport), list"
            f" length {length}: {cost:.2f} ms CPU per call, {cost / first_floor.cpu_ms:.2f}× the"
            f" floor's CPU per RPC ({first_floor.cpu_ms:.2f} ms at"
            f" {first_floor.result.concurrency} client(s), {first_floor.processes} process(es))"
        )
    for count, cost in threaded.items():
        console.print(
            f"The domain alone from {count} thread(s) at once, list length {args.list_length}:"
            f" {cost:.2f} ms of the process's CPU per call (every thread, the list writer's"
            f" too), {cost / first_floor.cpu_ms:.2f}× the floor's CPU per RPC"
        )
    for processes, ratio, rss in memory:
        console.print(f"RSS after the run, {processes} process(es), trace {ratio}: {rss:,.0f} MiB")
    if args.plot:
        plot(phases, args.plot, where if args.server_cpus else f"{os.cpu_count()} shared cores")
        console.print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
