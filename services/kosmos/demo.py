"""``python -m kosmos.demo``: the whole cluster on one machine with a synthetic demo shop.

What ``make run`` starts. On the first run it generates the shop and loads it through the
public API (exactly as a shop's backend would); later runs reuse the database.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TaskID

from kosmos import bulk, cluster
from kosmos.client import KosmosClient, NotFoundError
from kosmos.common import telemetry
from kosmos.common.auth import Authorizer
from kosmos.common.config import (
    KOSMOS_CLUSTER_LISTEN,
    RecommendationSettings,
    ServerConfig,
)
from kosmos.common.replicas import Heartbeat
from kosmos.common.runner import configure_secret, start_web
from kosmos.common.server import build_server, configure_logging, serve
from kosmos.datasets import SyntheticShop, generate
from kosmos.recommendation import load_plugins
from kosmos.store import SQLiteStore
from kosmos.training.artifacts import Artifacts
from kosmos.training.trainer import results_table, train

SHOP = "demo"
DEMO_HTTP_LISTEN = "127.0.0.1:8080"
log = logging.getLogger(__name__)


def load(client: KosmosClient, shop: SyntheticShop, console: Console) -> None:
    """Loads a synthetic shop through the bulk API (`kosmos.bulk`, as ``kosmos import``
    does), with progress."""
    client.create_shop(SHOP, "Kosmos demo shop")
    with Progress(console=console) as progress:
        steps: list[tuple[str, Sequence[object], Callable[..., int]]] = [
            ("catalog", shop.items, bulk.import_items),
            ("customers", shop.customers, bulk.import_customers),
            ("interactions", shop.interactions, bulk.import_interactions),
        ]
        for kind, rows, run in steps:
            task = progress.add_task(kind, total=len(rows))

            def advance(n: int, task: TaskID = task) -> None:
                progress.advance(task, n)

            run(client, SHOP, bulk.in_memory((_record(row) for row in rows), kind), advance)


def merchandise(client: KosmosClient, shop: SyntheticShop) -> None:
    """A merchant rule and a running experiment, so that the dashboard and the storefront show
    what a shop steers (issue 13): the first category is lifted for everyone, and half of the
    customers (a tenth held out) get a second category lifted too."""
    from kosmos.v1 import experiment_service_pb2 as ex
    from kosmos.v1 import rules_service_pb2 as ru

    categories = sorted({i.category for i in shop.items if i.category})
    if len(categories) < 2:
        return

    def lift(rule_id: str, category: str) -> ru.MerchantRule:
        return ru.MerchantRule(
            rule_id=rule_id,
            display_name=f"Lift {category}",
            action=ru.RULE_ACTION_BOOST,
            match=ru.ItemMatch(categories=[category]),
            factor=1.5,
        )

    client.update_merchant_rules(SHOP, [lift("lift-first", categories[0])])
    client.create_experiment(
        SHOP,
        "second-category",
        ex.Experiment(
            display_name=f"Does lifting {categories[1]} sell more?",
            variants=[
                ex.Variant(variant_id="control"),
                ex.Variant(variant_id="lifted", rules=[lift("lift-second", categories[1])]),
            ],
            holdout_fraction=0.1,
        ),
    )


def _record(row: object) -> dict[str, object]:
    """A generated row in the shape ``python -m kosmos.datasets`` writes."""
    record = dataclasses.asdict(row)  # type: ignore[call-overload]
    if "type" in record:
        record["type"] = record["type"].name.lower()
    return dict(record)


def instructions(
    address: str, model_dir: str, storefront_key: str = "", admin_key: str = ""
) -> str:
    host, _, port = address.rpartition(":")
    target = f"localhost:{port}" if host in ("0.0.0.0", "[::]", "") else address
    return f"""
[bold green]Kosmos is serving the demo shop on {target}[/bold green]

Two API keys for the demo shop, made for this run (every call needs one):
  storefront (Recommend, SimilarItems, feedback):  {storefront_key}
  admin (profiles, catalog, interactions too):     {admin_key}

Ask for offers with the command-line client (in another terminal, from this folder):
  export KOSMOS_TARGET={target} KOSMOS_API_KEY={storefront_key}
  .venv/bin/kosmos recommend demo c-00001
  .venv/bin/kosmos feedback demo c-00001 sku-00042 click
  .venv/bin/kosmos similar demo sku-00042
  .venv/bin/kosmos --api-key {admin_key} profile demo c-00001

Or with grpcurl, like any frontend (KOSMOS_REFLECTION=true makes `grpcurl list` work):
  .venv/bin/grpcurl -plaintext -H "authorization: Bearer $KOSMOS_API_KEY" \\
      -import-path proto -proto kosmos/v1/recommendation_service.proto \\
      -d '{{"customer": "shops/demo/customers/c-00001", "page_size": 5}}' \\
      {target} kosmos.v1.RecommendationService/Recommend

Model versions (trained before serving; `make run` again reuses them):
  .venv/bin/kosmos models --model-dir {model_dir} list

Ctrl-C (or SIGTERM) stops it gracefully.
"""


def pages(http_listen: str, port: int, storefront_key: str, admin_key: str) -> str:
    """Where the storefront and the dashboard are; the keys ride in the URL's fragment, which
    the browser keeps to itself (it is never sent to a server)."""
    if not port:
        return ""
    host = http_listen.rpartition(":")[0]
    base = f"http://{'localhost' if host in ('0.0.0.0', '[::]', '') else host}:{port}"
    return f"""
In a browser (the keys stay in the page, after the #):
  storefront: {base}/#storefront={storefront_key}&admin={admin_key}
  dashboard:  {base}/dashboard/#admin={admin_key}
  HTTP/JSON:  curl -H "authorization: Bearer $KOSMOS_API_KEY" -H 'content-type: application/json' \\
      -d '{{"customer": "shops/demo/customers/c-00001", "pageSize": 5}}' \\
      {base}/kosmos.v1.RecommendationService/Recommend
"""


def _local_secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> None:
    p = argparse.ArgumentParser(prog="python -m kosmos.demo", description=__doc__)
    p.add_argument("--dir", default="var", help="where the database lives (default: var)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--retrain", action="store_true", help="train again even if models exist")
    args = p.parse_args(argv)

    config = ServerConfig.from_env(KOSMOS_CLUSTER_LISTEN, "127.0.0.1:50051", env)
    # The storefront and dashboard on their HTTP port; the dashboard reads the metrics.
    config = dataclasses.replace(
        config,
        http_listen=config.http_listen or DEMO_HTTP_LISTEN,
        metrics_listen=config.metrics_listen or "127.0.0.1:0",
    )
    configure_logging(config.log_level, config.log_format)
    if not config.secret:
        # The embedded default: a secret kept beside the database, so page tokens,
        # recommendation ids and plugin pseudonyms survive a second `make run`.
        config = dataclasses.replace(config, secret=_local_secret(Path(args.dir) / "secret"))
    configure_secret(config)
    # The demo loads and trains through the API with an operator key of its own, never shown.
    bootstrap = config.bootstrap_key or secrets.token_urlsafe(32)
    telemetry.configure("kosmos", env, config.metrics_listen)
    console = Console()
    store = SQLiteStore(Path(args.dir) / "kosmos.db")
    settings = RecommendationSettings.from_env(env)
    if not settings.model_dir:
        settings = dataclasses.replace(settings, model_dir=str(Path(args.dir) / "models"))
    # Embedded mode has no CronJob: keep training in the background (issue 8: models went
    # stale after start), skipping shops whose data has not changed.
    settings = dataclasses.replace(settings, train_in_background=True)
    services = cluster.services(store, settings)
    try:
        server, port, health = build_server(
            config.listen,
            config.workers,
            services,
            auth=Authorizer(store, bootstrap),
            reflection_enabled=config.reflection,
            tls=config.tls,
        )
    except RuntimeError as exc:  # the port is taken (another `make run`?): say so, no traceback
        console.print(f"[red]{exc}[/red]: set KOSMOS_CLUSTER_LISTEN to another address")
        raise SystemExit(2) from None
    server.start()
    address = f"{config.listen.rpartition(':')[0]}:{port}"
    web = start_web(config, port, [s.name for s in services], store)
    heartbeat = Heartbeat(store, [s.name for s in services], lambda: True, config.heartbeat_seconds)
    heartbeat.start()
    with KosmosClient(f"127.0.0.1:{port}", timeout=60, api_key=bootstrap) as client:
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
            merchandise(client, shop)
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
        storefront = client.create_api_key("storefront", SHOP, "make run storefront").secret
        admin = client.create_api_key("admin", SHOP, "make run admin").secret
    # soft_wrap: keys and commands stay on one line, to copy, whatever the terminal width.
    console.print(
        instructions(address, settings.model_dir, storefront, admin)
        + pages(config.http_listen, web.port if web else 0, storefront, admin),
        highlight=False,
        soft_wrap=True,
    )
    serve(
        server,
        health,
        config.grace_seconds,
        on_stop=[heartbeat.stop, *([web.stop] if web else []), store.close],
        drain_seconds=config.drain_seconds,
    )


if __name__ == "__main__":
    main()
