"""``python -m kosmos.training``: fit every routed recommender and publish new versions.

Reads the same environment as the recommendation service (``KOSMOS_DATABASE_URL``,
``KOSMOS_ROUTING``, ``KOSMOS_MODEL_DIR``, ``KOSMOS_PLUGIN__*``), so what it trains is what the
service routes to. Exits 1 if any recommender failed to train.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import Progress

from kosmos.common import telemetry
from kosmos.common.config import (
    KOSMOS_CLUSTER_LISTEN,
    KOSMOS_MODEL_DIR,
    KOSMOS_MODEL_STORE,
    ConfigError,
    RecommendationSettings,
    ServerConfig,
)
from kosmos.common.server import configure_logging
from kosmos.experiments.domain import variant_models
from kosmos.plugin import PluginLoadError
from kosmos.recommendation import load_plugins
from kosmos.shopconfig.documents import DocumentCache
from kosmos.store import open_store
from kosmos.training.artifacts import open_artifacts
from kosmos.training.trainer import results_table, train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kosmos.training", description=__doc__)
    p.add_argument("--shop", action="append", help="train this shop only (repeatable)")
    args = p.parse_args(argv)
    env = os.environ
    console = Console(stderr=True)
    try:
        # The trainer binds nothing: of the server settings it reads the database URL and the
        # log level, so it trains from exactly the store the services use.
        server = ServerConfig.from_env(KOSMOS_CLUSTER_LISTEN, "127.0.0.1:50051", env)
        settings = RecommendationSettings.from_env(env)
        if not settings.model_dir and settings.model_store != "database":
            raise ConfigError(
                f"{KOSMOS_MODEL_DIR} must name the artifact directory"
                f" (or set {KOSMOS_MODEL_STORE}=database)"
            )
        configure_logging(server.log_level, server.log_format)
        telemetry.configure("kosmos-trainer", env)
        store = open_store(server.database_url)
        plugins = load_plugins(settings)
    except (ConfigError, PluginLoadError, ValueError) as exc:
        console.print(f"[red]configuration error[/red]: {exc}")
        return 2
    artifacts = open_artifacts(settings.model_store, settings.model_dir, store)
    assert artifacts is not None  # checked above: files with a directory, or the database
    names = list(settings.routing.names)
    shops = args.shop or store.list_shop_ids()
    documents = DocumentCache(store)

    def variants(shop: str) -> dict[str, tuple[str, Mapping[str, str]]]:
        # The experiments' variant models (`kosmos.experiments.domain.variant_models`).
        return variant_models(documents.for_shop(shop).experiments, time.time())

    with Progress(console=console) as progress:
        task = progress.add_task("training", total=len(shops) * len(names))
        results = train(
            store,
            artifacts,
            plugins,
            names,
            settings.plugin_settings,
            shops,
            settings.model_keep,
            on_step=lambda _r: progress.advance(task),
            variants=variants,
        )
    store.close()
    telemetry.shutdown()  # A CronJob's pod ends here: push its spans and metrics first.
    Console().print(results_table(results))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
