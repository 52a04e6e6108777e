"""``python -m kosmos.demo``: the whole cluster on one machine with a synthetic demo shop.

What ``make run`` starts. On the first run it generates the shop and loads it through the
public API (exactly as a shop's backend would); later runs reuse the database.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from kosmos import cluster
from kosmos.client import InteractionInput, KosmosClient, NotFoundError
from kosmos.common import telemetry
from kosmos.common.config import (
    KOSMOS_CLUSTER_LISTEN,
    RecommendationSettings,
    ServerConfig,
)
from kosmos.common.server import build_server, configure_logging, serve
from kosmos.datasets import SyntheticShop, generate
from kosmos.recommendation import load_plugins
from kosmos.store import SQLiteStore
from kosmos.training.artifacts import Artifacts
from kosmos.training.trainer import results_table, train
from kosmos.v1 import common_pb2

SHOP = "demo"
BATCH = 500
log = logging.getLogger(__name__)


def load(client: KosmosClient, shop: SyntheticShop, console: Console) -> None:
    """Loads a synthetic shop through the gRPC API, with progress."""
    client.create_shop(SHOP, "Kosmos demo shop")
    with Progress(console=console) as progress:
        task = progress.add_task("catalog", total=len(shop.items))
        for start in range(0, len(shop.items), BATCH):
            batch = shop.items[start : start + BATCH]
            client.upsert_items(
                SHOP,
                [
                    common_pb2.Item(
                        name=f"shops/{SHOP}/items/{i.item_id}",
                        title=i.title,
                        category=i.category,
                        brand=i.brand,
                        price=i.price,
                        available=i.available,
                        attributes=i.attributes,
                    )
                    for i in batch
                ],
            )
            progress.advance(task, len(batch))
        task = progress.add_task("customers", total=len(shop.customers))
        for c in shop.customers:
            client.create_customer(SHOP, c.customer_id, c.attributes)
            progress.advance(task)
        task = progress.add_task("interactions", total=len(shop.interactions))
        for start in range(0, len(shop.interactions), BATCH):
            events = shop.interactions[start : start + BATCH]
            client.record_interactions(
                SHOP,
                [
                    InteractionInput(
                        i.customer_id,
                        i.item_id,
                        i.type.name.lower(),
                        value=i.value,
                        event_time=_utc(i.time),
                    )
                    for i in events
                ],
                request_id=f"demo-load-{start}",
            )
            progress.advance(task, len(events))


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def instructions(address: str, model_dir: str) -> str:
    host, _, port = address.rpartition(":")
    target = f"localhost:{port}" if host in ("0.0.0.0", "[::]", "") else address
    return f"""
[bold green]Kosmos is serving the demo shop on {target}[/bold green]

Ask for offers with the command-line client (in another terminal, from this folder):
  .venv/bin/kosmos --target {target} recommend demo c-00001
  .venv/bin/kosmos --target {target} profile demo c-00001
  .venv/bin/kosmos --target {target} feedback demo c-00001 sku-00042 click
  .venv/bin/kosmos --target {target} similar demo sku-00042

Or with grpcurl, like any frontend (reflection is on):
  .venv/bin/grpcurl -plaintext {target} list
  .venv/bin/grpcurl -plaintext \\
      -d '{{"customer": "shops/demo/customers/c-00001", "page_size": 5}}' \\
      {target} kosmos.v1.RecommendationService/Recommend

Model versions (trained before serving; `make run` again reuses them):
  .venv/bin/kosmos models --model-dir {model_dir} list

Ctrl-C (or SIGTERM) stops it gracefully.
"""


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> None:
    p = argparse.ArgumentParser(prog="python -m kosmos.demo", description=__doc__)
    p.add_argument("--dir", default="var", help="where the database lives (default: var)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--retrain", action="store_true", help="train again even if models exist")
    args = p.parse_args(argv)

    config = ServerConfig.from_env(KOSMOS_CLUSTER_LISTEN, "0.0.0.0:50051", env)
    configure_logging(config.log_level, config.log_format)
    telemetry.configure("kosmos", env, config.metrics_listen)
    console = Console()
    store = SQLiteStore(Path(args.dir) / "kosmos.db")
    settings = RecommendationSettings.from_env(env)
    if not settings.model_dir:
        settings = dataclasses.replace(settings, model_dir=str(Path(args.dir) / "models"))
    server, port, health = build_server(
        config.listen, config.workers, cluster.services(store, settings)
    )
    server.start()
    address = f"{config.listen.rpartition(':')[0]}:{port}"
    with KosmosClient(f"127.0.0.1:{port}", timeout=60) as client:
        try:
            client.get_shop(SHOP)
            console.print(f"Reusing the demo shop in {args.dir}/kosmos.db")
        except NotFoundError:
            started = time.perf_counter()
            shop = generate(
                customers=args.customers,
                items=args.items,
                days=args.days,
                seed=args.seed,
                end_time=time.time(),
                progress=True,
            )
            load(client, shop, console)
            console.print(
                f"Loaded {len(shop.customers)} customers, {len(shop.items)} items and "
                f"{len(shop.interactions)} interactions in "
                f"{time.perf_counter() - started:.1f}s"
            )
        artifacts = Artifacts(settings.model_dir)
        if args.retrain or any(artifacts.current(SHOP, n) is None for n in settings.routing.names):
            plugins = load_plugins(settings)
            names = list(settings.routing.names)
            with Progress(console=console) as progress:
                task = progress.add_task("training " + ", ".join(names), total=len(names))
                results = train(
                    store,
                    artifacts,
                    plugins,
                    names,
                    settings.plugin_settings,
                    [SHOP],
                    settings.model_keep,
                    on_step=lambda _r: progress.advance(task),
                )
            console.print(results_table(results))
        client.recommend(SHOP, "c-00001", page_size=1)  # loads the demo shop's models now
    console.print(instructions(address, settings.model_dir))
    serve(server, health, config.grace_seconds, on_stop=[store.close])


if __name__ == "__main__":
    main()
