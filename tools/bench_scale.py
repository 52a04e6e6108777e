"""Fast at any size (issue 12): ``Recommend`` latency, ANN recall and training time as a shop grows.

One dimension at a time: shops of ``--customers`` sizes (each with ``--fixed-items`` items), then
of ``--items`` sizes (each with ``--fixed-customers`` customers). For each shop:

1. the generator writes it (`kosmos.datasets.write`, JSON Lines);
2. a cluster started as its own process (``python -m kosmos.cluster``, SQLite) loads it through
   the public API (`kosmos.bulk`, as ``kosmos import`` does);
3. a fresh cluster on that database, routed ``als,popularity``, fits its models at start
   (health turns SERVING once they are ready); then ``--requests`` Recommend calls over gRPC,
   one at a time, for random customers: p50 and p99, and each p50 against the p50 of the
   smallest shop of its dimension (the bar: within 20%). The cluster's peak RSS (every process)
   is sampled throughout;
4. in this process, from the same database (`kosmos.training.data.training_data`, as the trainer
   reads it): each plugin's ``fit`` timed beside its library's own fit on the same matrix
   (implicit's ``AlternatingLeastSquares.fit``, ``BayesianPersonalizedRanking.fit``,
   ``CosineRecommender.fit``; lightfm's ``LightFM.fit``; for popularity a numpy count of the
   same events), and ALS's ANN recall@10 against the exact top 10 of the same factors (the index
   is forced on at every size; ``ann_min_items``, 20,000 by default, decides where it serves).

``--database URL --shop SHOP --customers N`` measures a shop already loaded (e.g. the
1M-customer run with ``kosmos import``) instead: steps 3 and 4 only.

    .venv/bin/python tools/bench_scale.py                      # small: a minute or two
    .venv/bin/python tools/bench_scale.py --customers 10000 100000 1000000 --fixed-items 10000 \\
        --items 3000 10000 100000 --fixed-customers 100000
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from kosmos import bulk
from kosmos.client import KosmosClient
from kosmos.common.auth import with_key
from kosmos.datasets import write
from kosmos.datasets.synthetic import customer_id
from kosmos.plugin import RecommendQuery, TrainingData
from kosmos.store import open_store
from kosmos.training.data import training_data
from kosmos.v1 import recommendation_service_pb2 as rpb
from kosmos.v1 import recommendation_service_pb2_grpc as rgrpc

SHOP = "scale"
BAR = 1.20
console = Console(width=170)


@dataclass
class Shop:
    dimension: str  # "customers" or "items": which size this row varies
    customers: int
    items: int
    database: str = ""
    shop: str = SHOP
    events: int = 0
    generate_s: float = 0.0
    load_s: float = 0.0
    serving_s: float = 0.0  # cluster start to SERVING: the in-process ALS + popularity fits
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    peak_rss_mib: float = 0.0
    recall: float = float("nan")
    ann_serves: bool = False
    fits: dict[str, tuple[float, float]] = field(default_factory=dict)  # plugin, library s


def _rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the supervisor's processes), KiB."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


@contextmanager
def cluster(database: str, key: str, **env: str) -> Iterator[tuple[str, Callable[[], float]]]:
    """A cluster as its own process on ``database``: its address and its peak RSS so far."""
    server = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"],
        env={
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": database,
            "KOSMOS_LOG_LEVEL": "WARNING",
            "KOSMOS_BOOTSTRAP_KEY": key,
            "KOSMOS_SECRET": key,
            "KOSMOS_PROCESSES": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peak[0] = max(peak[0], _rss_kib(server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert server.stdout is not None
        address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        yield address, lambda: peak[0] / 1024
    finally:
        done.set()
        sampler.join()
        server.terminate()
        server.wait(timeout=120)
        if server.stdout is not None:
            server.stdout.close()


def load(shop: Shop, folder: Path, key: str) -> None:
    """Imports the generated files through the API, as ``kosmos import`` does."""
    with (
        cluster(shop.database, key) as (address, _),
        KosmosClient(address, timeout=300, api_key=key) as client,
    ):
        client.create_shop(shop.shop, shop.shop)
        started = time.perf_counter()
        for kind, run in (
            ("items", bulk.import_items),
            ("customers", bulk.import_customers),
            ("interactions", bulk.import_interactions),
        ):
            began = time.perf_counter()
            count = run(client, shop.shop, bulk.read_records(folder / f"{kind}.jsonl"))
            seconds = time.perf_counter() - began
            console.print(f"  loaded {count:,} {kind} in {seconds:.1f}s ({count / seconds:,.0f}/s)")
        shop.load_s = time.perf_counter() - started


def serve(shops: list[Shop], key: str, requests: int) -> None:
    """A fresh cluster on each shop's database, all up at once: time to SERVING, then
    Recommend p50/p99 in rounds that go from shop to shop (so the load of a shared machine
    falls on every size alike), and each cluster's peak RSS."""
    with ExitStack() as stack:
        stubs = []
        for shop in shops:
            started = time.perf_counter()
            address, peak = stack.enter_context(
                cluster(shop.database, key, KOSMOS_ROUTING="als,popularity")
            )
            channel = grpc.insecure_channel(address)
            stack.callback(channel.close)
            health = health_pb2_grpc.HealthStub(channel)
            # Watch streams the status as it changes: SERVING once the models are fitted.
            for reply in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=7200):
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            shop.serving_s = time.perf_counter() - started
            console.print(
                f"  {shop.customers:,} × {shop.items:,}: serving after {shop.serving_s:.1f}s"
            )
            with KosmosClient(address, timeout=60, api_key=key) as admin:
                secret = admin.create_api_key("storefront", shop.shop, f"bench-{key[:6]}").secret
            stubs.append((rgrpc.RecommendationServiceStub(with_key(channel, secret)), peak))
        rng = random.Random(1)
        latencies: list[list[float]] = [[] for _ in shops]
        rounds = 10
        for r in range(rounds + 1):  # round 0 warms caches and connections
            for shop, (stub, _), mine in zip(shops, stubs, latencies, strict=True):
                for _ in range(max(1, requests // rounds)):
                    customer = customer_id(rng.randrange(shop.customers))
                    request = rpb.RecommendRequest(
                        customer=f"shops/{shop.shop}/customers/{customer}", page_size=10
                    )
                    began = time.perf_counter()
                    reply = stub.Recommend(request, timeout=30)
                    if r:
                        mine.append(time.perf_counter() - began)
                    assert len(reply.offers) == 10, reply
        for shop, (_, peak), mine in zip(shops, stubs, latencies, strict=True):
            shop.p50_ms = float(np.percentile(mine, 50) * 1000)
            shop.p99_ms = float(np.percentile(mine, 99) * 1000)
            shop.peak_rss_mib = peak()


def _timed(fit: Callable[[], object]) -> float:
    started = time.perf_counter()
    fit()
    return time.perf_counter() - started


def train(shop: Shop, plugins: list[str], queries: int) -> None:
    """Each plugin's fit beside its library's fit on the same matrix; ALS's ANN recall@10."""
    store = open_store(shop.database)
    data = training_data(store, shop.shop, time.time())
    store.close()
    # A shop given by --database was not generated here: its sizes are what it holds.
    shop.items = shop.items or len(data.item_ids)
    shop.events = shop.events or len(data.interactions)
    for name in plugins:
        plugin, library = _fit_pair(name, data, shop, queries)
        shop.fits[name] = (plugin, library)
        console.print(
            f"  {name}: fit {plugin:.2f}s, library {library:.2f}s ({plugin / library:.2f}×)"
        )


def _fit_pair(name: str, data: TrainingData, shop: Shop, queries: int) -> tuple[float, float]:
    import kosmos_implicit
    from kosmos_implicit._common import single_threaded_blas
    from kosmos_implicit._matrix import Matrix

    if name == "popularity":
        from kosmos.recommenders.popularity import create

        model: Any = create({})
        plugin = _timed(lambda: model.fit(data))

        def count() -> object:
            ids = np.array([i.item_id for i in data.interactions])
            return np.unique(ids, return_counts=True)

        return plugin, _timed(count)
    if name in ("als", "bpr"):
        model = (kosmos_implicit.create_als if name == "als" else kosmos_implicit.create_bpr)({})
        plugin = _timed(lambda: model.fit(data))
        matrix = Matrix.build(data).user_items
        with single_threaded_blas():
            own = model._new_model()  # the library's model, with the plugin's parameters
            library = _timed(lambda: own.fit(matrix, show_progress=False))
        if name == "als":
            shop.ann_serves = model._state.index is not None
            shop.recall = _recall(model, data, queries)
        return plugin, library
    if name == "item_item":
        from implicit.nearest_neighbours import CosineRecommender

        model = kosmos_implicit.create_item_item({})
        plugin = _timed(lambda: model.fit(data))
        matrix = Matrix.build(data).user_items
        with single_threaded_blas():
            own = CosineRecommender(K=int(model.settings["k"]), num_threads=1)
            library = _timed(lambda: own.fit(matrix, show_progress=False))
        return plugin, library
    if name == "lightfm":
        from kosmos_lightfm import LightFMRecommender, LightFMSettings
        from lightfm import LightFM

        s = LightFMSettings()
        model = LightFMRecommender(s, keep_training_state=True)
        plugin = _timed(lambda: model.fit(data))
        state = model.training_state
        assert state is not None
        own = LightFM(
            no_components=s.no_components,
            loss=s.loss,
            learning_rate=s.learning_rate,
            item_alpha=s.item_alpha,
            user_alpha=s.user_alpha,
            max_sampled=s.max_sampled,
            random_state=s.random_state,
        )
        library = _timed(
            lambda: own.fit(
                state.interactions,
                user_features=state.user_features,
                item_features=state.item_features,
                sample_weight=state.sample_weight,
                epochs=s.epochs,
                num_threads=s.num_threads,
            )
        )
        return plugin, library
    raise SystemExit(f"unknown plugin {name!r}")


def _recall(model: Any, data: TrainingData, queries: int) -> float:
    """recall@10 of the ANN index (forced on) against the exact scan, on the same factors."""
    import kosmos_implicit

    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        exact = kosmos_implicit.create_als({"ann_min_items": "0"})
        exact.load(Path(tmp))
        approximate = kosmos_implicit.create_als({"ann_min_items": "1"})
        approximate.load(Path(tmp))
    rng = random.Random(2)
    customers = sorted(
        {i.customer_id for i in data.interactions[:: max(1, len(data.interactions) // 20000)]}
    )
    hits = total = 0
    for c in rng.sample(customers, min(queries, len(customers))):
        query = RecommendQuery(customer_id=c, k=10, filter_already_seen=True)
        truth = {s.item_id for s in exact.recommend(query)}
        hits += len(truth & {s.item_id for s in approximate.recommend(query)})
        total += len(truth)
    return hits / max(total, 1)


def report(shops: list[Shop], title: str) -> None:
    table = Table(title=title, title_justify="left")
    columns = ["customers", "items", "events", "load s", "serving after s", "p50 ms", "p99 ms"]
    columns += ["p50 / smallest", "peak RSS MiB", "ANN serves", "ANN recall@10"]
    for column in columns:
        table.add_column(column, justify="right")
    smallest = {s.dimension: s for s in reversed(shops)}
    for s in shops:
        ratio = s.p50_ms / smallest[s.dimension].p50_ms
        table.add_row(
            f"{s.customers:,}",
            f"{s.items:,}",
            f"{s.events:,}",
            f"{s.load_s:.0f}" if s.load_s else "-",
            f"{s.serving_s:.1f}",
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            f"{ratio:.2f}× {'ok' if ratio <= BAR else 'over 1.20'}",
            f"{s.peak_rss_mib:,.0f}",
            "yes" if s.ann_serves else "no",
            f"{s.recall:.3f}",
        )
    console.print(table)
    fits = Table(title="Training: each plugin's fit beside its library's own", title_justify="left")
    for column in ("customers", "items", "plugin", "fit s", "library s", "fit / library"):
        fits.add_column(column, justify="right")
    listed = set()
    for s in shops:
        if (s.customers, s.items) in listed:
            continue
        listed.add((s.customers, s.items))
        for name, (plugin, library) in s.fits.items():
            fits.add_row(
                f"{s.customers:,}",
                f"{s.items:,}",
                name,
                f"{plugin:.2f}",
                f"{library:.2f}",
                f"{plugin / library:.2f}×",
            )
    console.print(fits)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--customers", type=int, nargs="*", default=[1000, 3000])
    p.add_argument("--fixed-items", type=int, default=1000, help="items of the customer sizes")
    p.add_argument("--items", type=int, nargs="*", default=[300, 1000, 3000])
    p.add_argument("--fixed-customers", type=int, default=1000, help="customers of item sizes")
    p.add_argument("--sessions", type=float, default=4.0, help="sessions per customer (4)")
    p.add_argument("--requests", type=int, default=300, help="Recommend calls per shop")
    p.add_argument("--recall-queries", type=int, default=200)
    p.add_argument(
        "--plugins", nargs="*", default=["popularity", "als", "bpr", "lightfm", "item_item"]
    )
    p.add_argument("--database", help="measure this loaded shop instead (with --shop)")
    p.add_argument("--shop", default=SHOP)
    p.add_argument(
        "--work", type=Path, help="keep the shops here, and reuse those loaded (default: temp)"
    )
    args = p.parse_args()
    key = secrets.token_urlsafe(32)
    # CosineRecommender.fit converts the CSR matrix to COO and back, and says so; it is the
    # library's own path, which is the point of the floor.
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    console.print(f"{os.cpu_count()} cores, shared with the load and whatever else runs")
    if args.database:
        if len(args.customers) != 1:
            raise SystemExit("--database needs --customers N: how many the shop has")
        shop = Shop("customers", args.customers[0], 0, args.database, args.shop)
        serve([shop], key, args.requests)
        console.print(f"  p50 {shop.p50_ms:.2f} ms, p99 {shop.p99_ms:.2f} ms")
        train(shop, args.plugins, args.recall_queries)
        report([shop], f"Recommend on {args.database}")
        return 0
    sizes = [("customers", c, args.fixed_items) for c in args.customers]
    sizes += [("items", args.fixed_customers, i) for i in args.items]
    shops: list[Shop] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for dimension, customers, items in sizes:
            same = next((s for s in shops if (s.customers, s.items) == (customers, items)), None)
            if same is not None:  # both dimensions hold this size: measured once
                shops.append(replace(same, dimension=dimension, database=""))
                continue
            folder = work / f"shop-{customers}x{items}"
            shop = Shop(dimension, customers, items, f"sqlite:///{folder}/kosmos.db")
            console.print(f"[bold]{customers:,} customers × {items:,} items[/bold]")
            loaded = folder / "loaded"  # --work kept a shop loaded by an earlier run
            if loaded.exists():
                shop.events, shop.load_s = (int(float(x)) for x in loaded.read_text().split())
                console.print(f"  {shop.events:,} events loaded by an earlier run")
            else:
                started = time.perf_counter()
                counts = write(folder, customers, items, sessions_per_customer=args.sessions)
                shop.generate_s = time.perf_counter() - started
                shop.events = counts["interactions"]
                console.print(f"  generated {shop.events:,} events in {shop.generate_s:.1f}s")
                load(shop, folder, key)
                loaded.write_text(f"{shop.events} {shop.load_s}")
            shops.append(shop)
        unique = [s for s in shops if s.database]
        console.print("[bold]Recommend, every shop served at once[/bold]")
        serve(unique, key, args.requests)
        for shop in unique:
            console.print(f"[bold]training on {shop.customers:,} × {shop.items:,}[/bold]")
            train(shop, args.plugins, args.recall_queries)
        for n, shop in enumerate(shops):
            if not shop.database:  # the other dimension's shop of this size
                twin = next(
                    u for u in unique if (u.customers, u.items) == (shop.customers, shop.items)
                )
                shops[n] = replace(twin, dimension=shop.dimension)
    report(shops, "Recommend as the shop grows, one dimension at a time (loopback, 1 process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
