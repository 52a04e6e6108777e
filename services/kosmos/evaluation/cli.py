"""``kosmos evaluate``: offline evaluation on a data set, through the service's plugin code.

    kosmos evaluate --dataset online-retail --data-dir ../shared/data \\
        --recommenders popularity,als,lightfm --routing "warm=als,popularity;cold=popularity" \\
        --set als.factors=64 --set lightfm.epochs=60

Runs on this machine and talks to no cluster: the subcommand sets ``offline`` so that
`kosmos.cli.main` calls `run` without opening a connection.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from kosmos.evaluation.datasets import (
    DataNotFound,
    Dataset,
    movielens_100k,
    online_retail,
    synthetic,
)
from kosmos.evaluation.runner import (
    RECENT_INTERACTIONS,
    Result,
    evaluate,
    markdown_table,
    results_table,
    served_table,
)
from kosmos.evaluation.split import (
    ONLINE_RETAIL_CUTOFF,
    Split,
    quantile_cutoff,
    random_split,
    temporal_split,
)
from kosmos.plugin import PluginLoadError, discover
from kosmos.plugin.routing import Routing
from kosmos.recommendation.seen import OWNED_DEFAULT, Repeat, SeenPolicy
from kosmos.store.records import InteractionType

# Every kind that makes an item "not new" to a customer in the new-items-only test.
TOUCHED = frozenset(set(InteractionType) - {InteractionType.DISMISS})

__all__ = ["DATASETS", "add_parser", "load", "parse_settings", "run"]

DATASETS = ("synthetic", "ml-100k", "online-retail")
DEFAULT_DATA_DIR = Path("../shared/data")
SYNTHETIC_TRAIN_SHARE = 0.8


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers ``evaluate`` on the ``kosmos`` command's subparsers."""
    e: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="offline evaluation on a data set (no cluster needed)",
        description=(
            "Fit recommenders through their plugins on a train split, ask each test customer "
            "what the service would ask, and print precision, recall, NDCG, catalog coverage "
            "and fit time per recommender and routed chain, for warm and cold customers."
        ),
    )
    e.add_argument("--dataset", required=True, choices=DATASETS)
    e.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder holding ml-100k/ and online-retail/ (not shipped; default %(default)s)",
    )
    e.add_argument(
        "--recommenders",
        help="comma-separated recommenders to score on their own (default: every installed one)",
    )
    e.add_argument(
        "--routing",
        action="append",
        help='a chain to score, as KOSMOS_ROUTING: "als,popularity" or '
        '"warm=als,popularity;cold=popularity"; repeat to compare (default: popularity)',
    )
    e.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME.SETTING=VALUE",
        help="a plugin setting, as KOSMOS_PLUGIN__NAME__SETTING; repeatable",
    )
    e.add_argument("-k", type=int, default=10, help="items recommended per customer")
    e.add_argument(
        "--recent",
        type=int,
        default=RECENT_INTERACTIONS,
        help="latest interactions per query (KOSMOS_RECENT_INTERACTIONS; default %(default)s)",
    )
    e.add_argument("--customers", type=int, default=1000, help="synthetic: customers")
    e.add_argument("--items", type=int, default=300, help="synthetic: items")
    e.add_argument("--seed", type=int, default=7, help="synthetic: seed")
    e.add_argument(
        "--repeats",
        action="store_true",
        help="test on every later purchase, repeat purchases too (default: new items only)",
    )
    e.add_argument(
        "--served",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score every recommender and chain through the domain code behind Recommend "
        "(seen-item policy, filters, variety), and the difference (default: on)",
    )
    e.add_argument(
        "--seen-repeat",
        choices=[r.value for r in Repeat],
        help="served path: which owned items may come back (KOSMOS_REPEAT_PURCHASE; default: "
        "never when testing new items only, else learned)",
    )
    e.add_argument(
        "--seen-repeat-rate",
        type=float,
        default=SeenPolicy().repurchase_threshold,
        help="served path: KOSMOS_REPURCHASE_THRESHOLD (default %(default)s)",
    )
    e.add_argument(
        "--max-per-category",
        type=int,
        default=3,
        help="served path: KOSMOS_MAX_PER_CATEGORY (default %(default)s)",
    )
    e.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    e.set_defaults(run=run, offline=True)
    return e


def parse_settings(pairs: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["als.factors=64", ...]`` → ``{"als": {"factors": "64"}}``; raises ValueError."""
    settings: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name, dot, setting = key.strip().partition(".")
        if not sep or not dot or not name or not setting.strip():
            raise ValueError(f"--set expects NAME.SETTING=VALUE, got {pair!r}")
        settings.setdefault(name, {})[setting.strip()] = value.strip()
    return settings


def load(args: argparse.Namespace) -> tuple[Dataset, Split]:
    """The data set the arguments name and its split (as the data README describes).

    Raises:
        DataNotFound: A real data set is not under ``--data-dir``.
    """
    new_only = not getattr(args, "repeats", False)
    if args.dataset == "synthetic":
        dataset = synthetic(args.customers, args.items, args.seed)
        cutoff = quantile_cutoff(dataset.interactions, SYNTHETIC_TRAIN_SHARE)
        return dataset, temporal_split(dataset.interactions, cutoff, new_items_only=new_only)
    if args.dataset == "ml-100k":
        dataset = movielens_100k(args.data_dir / "ml-100k")
        return dataset, random_split(
            dataset.interactions, test_share=0.2, cold_share=0.1, seed=42, new_items_only=new_only
        )
    dataset = online_retail(args.data_dir / "online-retail" / "online_retail.csv.gz")
    return dataset, temporal_split(
        dataset.interactions, ONLINE_RETAIL_CUTOFF, new_items_only=new_only
    )


def seen_policy(args: argparse.Namespace) -> SeenPolicy:
    """The served path's seen-item policy. Testing new items only (an item counts once the
    customer touched it in any way), the like-for-like policy is that nothing touched comes
    back: what ``filter_already_seen`` does for the plugins."""
    if args.repeats:
        repeat, owned = Repeat(args.seen_repeat or Repeat.LEARNED), OWNED_DEFAULT
    else:
        repeat, owned = Repeat(args.seen_repeat or Repeat.NEVER), TOUCHED
    return SeenPolicy(
        owned_types=owned, repeat_purchase=repeat, repurchase_threshold=args.seen_repeat_rate
    )


def _names(text: str | None, installed: Mapping[str, object]) -> list[str]:
    if text is None:
        return sorted(installed, key=lambda n: (n != "popularity", n))
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--recommenders names no recommender")
    return names


def run(client: object, args: argparse.Namespace, console: Console) -> int:
    """Runs the evaluation and prints the table; ``client`` is unused (offline).

    Returns:
        0, or 2 when the data, a recommender or an argument is missing or wrong (the reason goes
        to standard error).
    """
    del client  # offline: nothing to connect to
    err = Console(stderr=True)
    try:
        if args.k < 1:
            raise ValueError("-k must be at least 1")
        routings = [Routing.parse(text) for text in (args.routing or ["popularity"])]
        settings = parse_settings(args.settings)
        needed = [n for r in routings for n in r.names]
        if args.recommenders is not None:
            needed += _names(args.recommenders, {})
        plugins = discover(required=needed)
        recommenders = _names(args.recommenders, plugins)
        with console.status(f"loading {args.dataset}"):
            dataset, split = load(args)
        console.print(dataset.summary, highlight=False)
        console.print(
            f"split: {split.description}: {len(split.train):,} training interactions; "
            f"{len(split.test):,} test customers ({len(split.warm):,} warm, "
            f"{len(split.cold):,} cold), {split.test_pairs:,} test pairs",
            highlight=False,
        )
        evaluation = evaluate(
            dataset,
            split,
            plugins,
            recommenders,
            routings,
            settings,
            k=args.k,
            recent=args.recent,
            console=console,
            served=seen_policy(args) if args.served else None,
            max_per_category=args.max_per_category,
        )
    except (DataNotFound, PluginLoadError, ValueError) as error:
        err.print(f"[red]error[/red]: {error}", highlight=False)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(_as_json(dataset.name, args.k, evaluation.results), indent=2), flush=True)
        return 0
    title = f"{dataset.name}, k = {args.k}" + (
        f"; settings: {_describe(settings)}" if settings else ""
    )
    console.print(results_table(evaluation.results, args.k, title))
    if args.served:
        console.print(served_table(evaluation.results, args.k))
    for result in evaluation.results:
        if result.failures:
            console.print(
                f"{result.name}: {result.failures:,} answers failed and were skipped, "
                f"first: {result.first_failure}",
                style="yellow",
                highlight=False,
            )
    if args.markdown:
        console.print(
            markdown_table(evaluation.results, args.k),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return 0


def _as_json(name: str, k: int, results: Sequence[Result]) -> dict[str, object]:
    """``kosmos --json evaluate``: every result's scores per population, as numbers."""
    return {
        "dataset": name,
        "k": k,
        "results": [
            {
                "name": r.name,
                "scores": {pop: dataclasses.asdict(sc) for pop, sc in r.scores.items()},
                "fit_seconds": r.fit_seconds,
                "recommend_us": None if math.isnan(r.recommend_us) else r.recommend_us,
                "failures": r.failures,
            }
            for r in results
        ],
    }


def _describe(settings: Mapping[str, Mapping[str, str]]) -> str:
    return ", ".join(f"{n}.{s}={v}" for n, values in settings.items() for s, v in values.items())
