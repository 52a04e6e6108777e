"""``make bench-quality``: what a shopper receives, measured the way a shop would measure it.

A real data set's training part goes into a running cluster (``python -m kosmos.cluster``, its
own process, SQLite) through the public gRPC API — catalog, profiles, one event per purchase or
rating, with their event times — and the service fits its routed recommenders. Then every test
customer asks ``Recommend`` once for 10 offers at the split's cutoff (``request_time``), over
gRPC, and the answers are scored. In the same run, on the same split: the plugins scored
directly (`kosmos.evaluation.evaluate`) and the library called directly (implicit's ALS,
numpy popularity; `tools/eval_baselines.py`; with ``--repeats`` the library's own list that may
include what the customer has). The bar: served within noise of the plugin and of the library.

    .venv/bin/python tools/bench_quality.py --data-dir ../shared/data --dataset online-retail
    .venv/bin/python tools/bench_quality.py --data-dir ../shared/data --dataset ml-100k
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))  # eval_baselines beside this file

import numpy as np  # noqa: E402
from eval_baselines import ALS, SEED, _Index, direct_popularity  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from kosmos.client import KosmosClient  # noqa: E402
from kosmos.evaluation import Dataset, Result, Split, evaluate, score  # noqa: E402
from kosmos.evaluation.cli import load  # noqa: E402
from kosmos.evaluation.datasets import DataNotFound  # noqa: E402
from kosmos.plugin import InteractionType, discover  # noqa: E402
from kosmos.plugin.routing import Routing  # noqa: E402
from kosmos.v1 import common_pb2  # noqa: E402

K = 10
BATCH = 1000
IMPORT_BATCH = 10_000
SHOP = "bench"
TYPES = {t: getattr(common_pb2, f"INTERACTION_TYPE_{t.name}") for t in InteractionType}
ROUTING = {
    "online-retail": "warm=als,popularity;cold=popularity",
    "ml-100k": "warm=als,popularity;cold=popularity",
}
# The shop's weights, as the data set's own (`kosmos.evaluation.datasets`): one purchase line
# is one purchase whatever its quantity; having rated a film is the signal, whatever the stars.
WEIGHTS = {"online-retail": "purchase=1", "ml-100k": "rating=1,rating_per_star=0"}
KEY = "bench-quality-operator-key-0123456789"


def _batches(rows: Sequence[object], size: int = BATCH) -> Iterator[Sequence[object]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def load_through_api(
    client: KosmosClient, dataset: Dataset, split: Split, console: Console
) -> dict[str, float]:
    """The training split through the public bulk API (``CreateCustomers``,
    ``ImportInteractions``), as a shop would load its history; returns records/s."""
    rates: dict[str, float] = {}
    client.create_shop(SHOP, dataset.name)
    customers = sorted({*dataset.customer_features, *split.test})
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("catalog", total=len(dataset.item_ids))
        started = time.perf_counter()
        for batch in _batches(list(dataset.item_ids)):
            items = []
            for item_id in batch:
                entry = dataset.catalog.get(str(item_id))
                items.append(
                    common_pb2.Item(
                        name=f"shops/{SHOP}/items/{item_id}",
                        title=(entry.title if entry else "")[:200] or str(item_id),
                        category=entry.category if entry else "",
                        price=entry.price if entry else 0.0,
                    )
                )
            client.upsert_items(SHOP, items)
            progress.advance(task, len(batch))
        rates["items/s"] = len(dataset.item_ids) / (time.perf_counter() - started)
        task = progress.add_task("customers", total=len(customers))
        started = time.perf_counter()
        for batch in _batches(customers):
            client.create_customers(
                SHOP,
                [
                    common_pb2.Customer(
                        name=f"shops/{SHOP}/customers/{c}",
                        attributes=dict(dataset.customer_features.get(str(c), {})),
                    )
                    for c in batch
                ],
            )
            progress.advance(task, len(batch))
        rates["customers/s"] = len(customers) / (time.perf_counter() - started)
        task = progress.add_task("events", total=len(split.train))
        started = time.perf_counter()
        for batch in _batches(list(split.train), IMPORT_BATCH):
            messages = []
            for i in batch:
                m = common_pb2.Interaction(
                    customer=f"shops/{SHOP}/customers/{i.customer_id}",
                    item_id=i.item_id,
                    type=TYPES[i.type],
                    value=i.value,
                )
                m.event_time.FromDatetime(_when(i.time))
                messages.append(m)
            client.import_interactions(SHOP, messages, request_id=uuid.uuid4().hex)
            progress.advance(task, len(batch))
        rates["events/s"] = len(split.train) / (time.perf_counter() - started)
    return rates


def library_als(index: _Index, split: Split) -> Result:
    """implicit's ALS on the invoice-count matrix with its own ``recommend``; items the customer
    already has are filtered only when the test holds new items only (the library's own
    "include seen items" list otherwise)."""
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(**ALS, random_state=SEED, num_threads=1, dtype=np.float32)
        model.fit(index.counts, show_progress=False)
    warm = [c for c in split.test if c in index.customer]
    rows = np.array([index.customer[c] for c in warm], dtype=np.int32)
    ids, _ = model.recommend(
        rows, index.counts[rows], N=K, filter_already_liked_items=split.new_items_only
    )
    rankings = {c: index.ids(ids[n]) for n, c in enumerate(warm)}
    seen = "seen items filtered" if split.new_items_only else "seen items included"
    return score(f"implicit ALS ({seen})", rankings, split, len(index.items), K, math.nan)


def served_rankings(
    client: KosmosClient, split: Split, console: Console
) -> tuple[dict[str, list[str]], float]:
    """Every test customer's 10 offers through Recommend at the split's now; µs per call."""
    now = _when(split.now)
    rankings: dict[str, list[str]] = {}
    customers = sorted(split.test)
    client.recommend(SHOP, customers[0], page_size=K, request_time=now, timeout=600)  # fit
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Recommend", total=len(customers))
        for customer in customers:
            page = client.recommend(SHOP, customer, page_size=K, request_time=now)
            rankings[customer] = [o.item.rsplit("/", 1)[1] for o in page.offers]
            progress.advance(task)
    return rankings, (time.perf_counter() - started) / len(customers) * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", choices=sorted(ROUTING), default="online-retail")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--repeats", action="store_true", help="test repeat purchases too")
    p.add_argument("--routing", help="KOSMOS_ROUTING for the served chain (default per data set)")
    args = p.parse_args()
    console = Console()
    ns = argparse.Namespace(dataset=args.dataset, data_dir=args.data_dir, repeats=args.repeats)
    try:
        with console.status(f"loading {args.dataset}"):
            dataset, split = load(ns)
    except DataNotFound as error:
        console.print(f"[yellow]skipped[/yellow]: {error}")
        return 0
    args.routing = args.routing or ROUTING[args.dataset]
    routing = args.routing
    settings = {"als": {k: str(v) for k, v in ALS.items()}}
    if any(n not in ("als", "popularity") for n in Routing.parse(routing).names):
        raise SystemExit("--routing: this bench routes to als and popularity only")
    console.print(
        f"{dataset.summary}\nsplit: {split.description}; {len(split.test):,} test customers "
        f"({len(split.warm):,} warm); routing {routing}",
        highlight=False,
    )
    results: list[tuple[str, Result]] = []
    index = _Index(dataset, split)
    results.append(("library", direct_popularity(index, split)))
    results.append(("library", library_als(index, split)))
    plugins = discover(required=["als", "popularity"])
    evaluation = evaluate(
        dataset, split, plugins, ["popularity", "als"], [Routing.parse(args.routing)], settings
    )
    results += [("plugins (kosmos evaluate)", r) for r in evaluation.results]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/quality.db",
            "KOSMOS_LOG_LEVEL": "WARNING",
            "KOSMOS_ROUTING": routing,
            "KOSMOS_MODEL_REFRESH_SECONDS": "0",
            "KOSMOS_BOOTSTRAP_KEY": KEY,
            "KOSMOS_INTERACTION_WEIGHTS": WEIGHTS[args.dataset],
            **{f"KOSMOS_PLUGIN__ALS__{k.upper()}": str(v) for k, v in ALS.items()},
            "KOSMOS_PLUGIN__POPULARITY__HALF_LIFE_DAYS": "14",
            # The shop's seen-item policy for the question asked: testing new items only,
            # nothing the customer touched may come back (like filter_already_seen); testing
            # repeat purchases too, what people buy again may.
            **(
                {"KOSMOS_REPEAT_PURCHASE": "learned"}
                if args.repeats
                else {
                    "KOSMOS_REPEAT_PURCHASE": "never",
                    "KOSMOS_OWNED_INTERACTIONS": "view,click,add_to_cart,purchase,rating",
                }
            ),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            with KosmosClient(address, api_key=KEY, timeout=60) as client:
                rates = load_through_api(client, dataset, split, console)
                rankings, us = served_rankings(client, split, console)
        finally:
            server.terminate()
            server.wait(timeout=30)
            if server.stdout is not None:
                server.stdout.close()
    served = score(
        f"Recommend over gRPC (routed {routing})",
        rankings,
        split,
        len(dataset.item_ids),
        K,
        math.nan,
        us,
    )
    results.append(("served (the API)", served))
    table = Table(title=f"{dataset.name}: NDCG@{K}, same split, one run", title_justify="left")
    for column in ("path", "recommender", "all", "warm", "cold", "µs/customer"):
        table.add_column(column, justify="left" if column in ("path", "recommender") else "right")
    for path, r in results:
        table.add_row(
            path,
            r.name,
            *(
                f"{r.scores[p].ndcg:.4f}" if r.scores[p].customers else ""
                for p in ("all", "warm", "cold")
            ),
            "" if math.isnan(r.recommend_us) else f"{r.recommend_us:,.0f}",
        )
    console.print(table)
    console.print(
        "intake through the API: " + ", ".join(f"{v:,.0f} {k}" for k, v in rates.items()),
        highlight=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
