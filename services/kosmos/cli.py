"""``kosmos``: the command line for people. It talks gRPC like any frontend would."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from kosmos.client import InteractionInput, KosmosClient, KosmosRpcError
from kosmos.common.config import KOSMOS_MODEL_DIR, KOSMOS_TARGET
from kosmos.training.artifacts import ArtifactError, Artifacts
from kosmos.v1 import common_pb2

DEFAULT_TARGET = "localhost:50051"


def _tail(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _enum(value: int, enum: object, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()  # type: ignore[attr-defined]


def _offers_table(title: str, offers: Sequence[object]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("item")
    table.add_column("title")
    table.add_column("score", justify="right")
    table.add_column("why")
    table.add_column("by", style="dim")
    for n, o in enumerate(offers, 1):
        table.add_row(str(n), _tail(o.item), o.title, f"{o.score:.3f}", o.reason, o.recommender)  # type: ignore[attr-defined]
    return table


def cmd_recommend(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    result = client.recommend(
        args.shop,
        args.customer,
        page_size=args.n,
        channel=args.channel,
        device=args.device,
        page=args.page,
        cart_item_ids=args.cart or (),
    )
    out.print(_offers_table(f"Offers for {args.customer} in {args.shop}", result.offers))
    out.print(f"recommendation_id: {result.recommendation_id}", style="dim")


def cmd_similar(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    result = client.similar_items(
        args.shop, args.item, customer_id=args.customer or "", page_size=args.n
    )
    out.print(_offers_table(f"Like {args.item} in {args.shop}", result.offers))
    out.print(f"recommendation_id: {result.recommendation_id}", style="dim")


def cmd_feedback(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    (stored,) = client.record_interactions(
        args.shop,
        [
            InteractionInput(
                args.customer,
                args.item,
                args.type,
                value=args.value,
                recommendation_id=args.recommendation_id or "",
            )
        ],
    )
    out.print(f"recorded {stored.name}")


def cmd_profile(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    customer = client.get_customer(args.shop, args.customer)
    table = Table(
        title=f"Profile of {args.customer} in {args.shop}", title_justify="left", show_header=False
    )
    table.add_column(style="bold")
    table.add_column()
    for key, value in sorted(customer.attributes.items()):
        table.add_row(key, value)
    for e in customer.exclusions:
        table.add_row(
            "never show", f"{_enum(e.kind, common_pb2.ExclusionKind, 'EXCLUSION_KIND_')} {e.value}"
        )
    table.add_row("since", customer.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M UTC"))
    out.print(table)
    recent = Table(title="Latest interactions", title_justify="left")
    for column in ("when", "what", "item", "value"):
        recent.add_column(column)
    for n, i in enumerate(client.list_interactions(args.shop, args.customer, page_size=args.n)):
        if n >= args.n:
            break
        recent.add_row(
            i.event_time.ToDatetime().strftime("%Y-%m-%d %H:%M"),
            _enum(i.type, common_pb2.InteractionType, "INTERACTION_TYPE_"),
            i.item_id,
            f"{i.value:g}" if i.value else "",
        )
    out.print(recent)


def cmd_models_list(_client: None, args: argparse.Namespace, out: Console) -> None:
    artifacts = Artifacts(args.model_dir)
    table = Table(title=f"Model versions in {args.model_dir}", title_justify="left")
    for column in (
        "shop",
        "recommender",
        "version",
        "created (UTC)",
        "interactions",
        "fit s",
        "serving",
    ):
        table.add_column(column, no_wrap=column == "version")
    for shop in [args.shop] if args.shop else artifacts.shops():
        for name in artifacts.recommenders(shop):
            current = artifacts.current(shop, name)
            for v in artifacts.versions(shop, name):
                created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v.create_time))
                table.add_row(
                    shop,
                    name,
                    v.version,
                    created,
                    f"{v.interactions:,}",
                    f"{v.fit_seconds:.2f}",
                    "●" if v.version == current else "",
                )
    out.print(table)


def cmd_models_list_rpc(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    table = Table(title=f"Model versions of shop {args.shop}", title_justify="left")
    for column in ("recommender", "version", "age", "interactions", "fit s", "serving"):
        table.add_column(column, no_wrap=column == "version")
    now = time.time()
    for v in client.list_model_versions(args.shop):
        parts = v.name.split("/")
        age = now - v.create_time.ToSeconds()
        table.add_row(
            parts[3],
            parts[5],
            f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min",
            f"{v.interactions:,}",
            f"{v.fit_seconds:.2f}",
            "●" if v.serving else "",
        )
    out.print(table)


def cmd_models_rollback_rpc(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    served = client.rollback_model(args.shop, args.recommender, args.to or "")
    out.print(f"{args.shop}/{args.recommender} now serves {served.name.rsplit('/', 1)[1]}")


def cmd_models_train(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    names = client.train_models(args.shop, force=args.force)
    out.print(f"training {', '.join(names)} for {args.shop}; `kosmos models list` shows the result")


def cmd_models_rollback(_client: None, args: argparse.Namespace, out: Console) -> None:
    version = Artifacts(args.model_dir).rollback(args.shop, args.recommender, args.to)
    out.print(
        f"{args.shop}/{args.recommender} now serves {version}; replicas swap it in within "
        f"KOSMOS_MODEL_POLL_SECONDS"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kosmos", description="Talk to a Kosmos cluster.")
    p.add_argument(
        "--target", help=f"host:port of the cluster (env {KOSMOS_TARGET}, default {DEFAULT_TARGET})"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="deadline per call, seconds")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("recommend", help="offers for a customer")
    r.add_argument("shop")
    r.add_argument("customer")
    r.add_argument("-n", type=int, default=10, help="how many offers")
    r.add_argument("--channel", default="", help="web, app, email, ...")
    r.add_argument("--device", default="", help="mobile, desktop, ...")
    r.add_argument("--page", default="", help="home, cart, product, ...")
    r.add_argument("--cart", nargs="*", metavar="ITEM", help="item ids in the cart")
    r.set_defaults(run=cmd_recommend)

    s = sub.add_parser("similar", help="items like an item")
    s.add_argument("shop")
    s.add_argument("item")
    s.add_argument("-n", type=int, default=10)
    s.add_argument("--customer", help="apply this customer's exclusions")
    s.set_defaults(run=cmd_similar)

    f = sub.add_parser("feedback", help="record one interaction")
    f.add_argument("shop")
    f.add_argument("customer")
    f.add_argument("item")
    f.add_argument(
        "type", choices=["view", "click", "add_to_cart", "purchase", "rating", "dismiss"]
    )
    f.add_argument("--value", type=float, default=0.0, help="rating (0-5) or quantity")
    f.add_argument("--recommendation-id", help="the recommendation that led here")
    f.set_defaults(run=cmd_feedback)

    pr = sub.add_parser("profile", help="a customer's profile and latest interactions")
    pr.add_argument("shop")
    pr.add_argument("customer")
    pr.add_argument("-n", type=int, default=10, help="how many interactions")
    pr.set_defaults(run=cmd_profile)
    m = sub.add_parser(
        "models",
        help="list model versions, train, roll back (over gRPC; or in a model dir, offline)",
    )
    m.add_argument(
        "--model-dir",
        help=f"work on this artifact directory offline (env {KOSMOS_MODEL_DIR}) instead of"
        " asking the cluster",
    )
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="every version, the serving one marked")
    ml.add_argument("--shop")
    ml.set_defaults(run=cmd_models_list, offline=True)
    mr = msub.add_parser("rollback", help="serve an older version")
    mr.add_argument("shop")
    mr.add_argument("recommender")
    mr.add_argument("--to", help="the version to serve (default: the one before the current)")
    mr.set_defaults(run=cmd_models_rollback, offline=True)
    mt = msub.add_parser("train", help="start training a shop's recommenders (cluster only)")
    mt.add_argument("shop")
    mt.add_argument("--force", action="store_true", help="fit even if the data is unchanged")
    mt.set_defaults(run=cmd_models_train)
    from kosmos.evaluation.cli import add_parser as add_evaluate

    add_evaluate(sub)
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    # Piped output (CI logs, files) gets room for wide tables instead of the 80-column default.
    out = Console() if sys.stdout.isatty() else Console(width=160)
    if getattr(args, "offline", False) and hasattr(args, "model_dir"):
        args.model_dir = args.model_dir or env.get(KOSMOS_MODEL_DIR, "")
        if not args.model_dir:  # no directory: ask the cluster's ModelService
            if args.run is cmd_models_list and not args.shop:
                Console(stderr=True).print("[red]error[/red]: give --shop (or --model-dir)")
                return 2
            args.run = {
                cmd_models_list: cmd_models_list_rpc,
                cmd_models_rollback: cmd_models_rollback_rpc,
            }[args.run]
            args.offline = False
    if getattr(args, "offline", False):
        try:
            return int(args.run(None, args, out) or 0)
        except ArtifactError as error:
            Console(stderr=True).print(f"[red]error[/red]: {error}", highlight=False)
            return 1
    target = args.target or env.get(KOSMOS_TARGET) or DEFAULT_TARGET
    try:
        with KosmosClient(target, timeout=args.timeout) as client:
            args.run(client, args, out)
    except KosmosRpcError as error:
        err = Console(stderr=True)
        err.print(
            f"[red]error[/red]: {error.code.name}: {error.message}"
            + (f" ({error.reason})" if error.reason else ""),
            highlight=False,
        )
        for v in error.field_violations:
            err.print(f"  {v.field}: {v.description}", highlight=False)
        return 1
    except ValueError as error:
        Console(stderr=True).print(f"[red]error[/red]: {error}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
