"""``make bench-quality``: what a shopper receives, measured the way a shop would measure it.

A real data set's training part goes into a running cluster (``python -m kosmos.cluster``, its
own process, SQLite) through the public gRPC API — catalog, profiles, one event per purchase or
rating, with their event times — and the service fits its routed recommenders. Then every test
customer asks ``Recommend`` once for 10 offers at the split's cutoff (``request_time``), over
gRPC, and the answers are scored. In the same run, on the same split: the plugins scored
directly (`kosmos.evaluation.evaluate`) and the library called directly (implicit's ALS,
numpy popularity; `tools/eval_baselines.py`). The bar: served within noise of the plugin and of
the library.

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

from eval_baselines import ALS, _Index, direct_als, direct_popularity  # noqa: E402

from kosmos.client import InteractionInput, KosmosClient  # noqa: E402
from kosmos.evaluation import Dataset, Result, Split, evaluate, score  # noqa: E402
from kosmos.evaluation.cli import load  # noqa: E402
from kosmos.evaluation.datasets import DataNotFound  # noqa: E402
from kosmos.plugin import InteractionType, discover  # noqa: E402
from kosmos.plugin.routing import Routing  # noqa: E402
from kosmos.v1 import common_pb2  # noqa: E402

K = 10
BATCH = 1000
SHOP = "bench"
TYPES = {
    InteractionType.PURCHASE: "purchase",
    InteractionType.RATING: "rating",
    InteractionType.VIEW: "view",
    InteractionType.CLICK: "click",
    InteractionType.ADD_TO_CART: "add_to_cart",
    InteractionType.DISMISS: "dismiss",
}
ROUTING = {
    "online-retail": "warm=als,popularity;cold=popularity",
    "ml-100k": "warm=als,popularity;cold=popularity",
}


def _batches(rows: Sequence[object], size: int = BATCH) -> Iterator[Sequence[object]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def load_through_api(
    client: KosmosClient, dataset: Dataset, split: Split, console: Console
) -> dict[str, float]:
    """The training split through the public API; returns items/s, customers/s and events/s."""
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
                        available=True,
                    )
                )
            client.upsert_items(SHOP, items)
            progress.advance(task, len(batch))
        rates["items/s"] = len(dataset.item_ids) / (time.perf_counter() - started)
        task = progress.add_task("customers", total=len(customers))
        started = time.perf_counter()
        for customer in customers:
            client.create_customer(
                SHOP, customer, dict(dataset.customer_features.get(customer, {}))
            )
            progress.advance(task)
        rates["customers/s"] = len(customers) / (time.perf_counter() - started)
        task = progress.add_task("events", total=len(split.train))
        started = time.perf_counter()
        for batch in _batches(list(split.train)):
            client.record_interactions(
                SHOP,
                [
                    InteractionInput(
                        i.customer_id,
                        i.item_id,
                        TYPES[i.type],
                        value=i.value,
                        event_time=_when(i.time),
                    )
                    for i in batch
                ],
                request_id=uuid.uuid4().hex,
            )
            progress.advance(task, len(batch))
        rates["events/s"] = len(split.train) / (time.perf_counter() - started)
    return rates


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
    args = p.parse_args()
    console = Console()
    ns = argparse.Namespace(dataset=args.dataset, data_dir=args.data_dir, repeats=args.repeats)
    try:
        with console.status(f"loading {args.dataset}"):
            dataset, split = load(ns)
    except DataNotFound as error:
        console.print(f"[yellow]skipped[/yellow]: {error}")
        return 0
    routing = ROUTING[args.dataset]
    settings = {"als": {k: str(v) for k, v in ALS.items()}}
    console.print(
        f"{dataset.summary}\nsplit: {split.description}; {len(split.test):,} test customers "
        f"({len(split.warm):,} warm); routing {routing}",
        highlight=False,
    )
    results: list[tuple[str, Result]] = []
    index = _Index(dataset, split)
    results.append(("library", direct_popularity(index, split)))
    results.append(("library", direct_als(index, split)))
    plugins = discover(required=["als", "popularity"])
    evaluation = evaluate(
        dataset, split, plugins, ["popularity", "als"], [Routing.parse(routing)], settings
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
            **{f"KOSMOS_PLUGIN__ALS__{k.upper()}": str(v) for k, v in ALS.items()},
            "KOSMOS_PLUGIN__POPULARITY__HALF_LIFE_DAYS": "14",
            # The shop's seen-item policy for the question asked: testing new items only,
            # nothing the customer touched may come back (like filter_already_seen); testing
            # repeat purchases too, what people buy again may.
            **(
                {"KOSMOS_SEEN_REPEAT": "learned"}
                if args.repeats
                else {
                    "KOSMOS_SEEN_REPEAT": "never",
                    "KOSMOS_SEEN_OWNED": "view,click,add_to_cart,purchase,rating",
                }
            ),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            with KosmosClient(address, timeout=60) as client:
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
