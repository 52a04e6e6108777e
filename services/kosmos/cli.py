"""``kosmos``: the command line for people. It talks gRPC like any frontend would."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from kosmos.client import InteractionInput, KosmosClient, KosmosRpcError, interaction_type
from kosmos.common.config import (
    KOSMOS_API_KEY,
    KOSMOS_MODEL_DIR,
    KOSMOS_TARGET,
    ConfigError,
    client_tls_from_env,
)
from kosmos.common.tls import ClientTls
from kosmos.training.artifacts import ArtifactError, Artifacts
from kosmos.v1 import api_key_service_pb2, common_pb2

DEFAULT_TARGET = "localhost:50051"


def _dict(message: Message) -> dict[str, object]:
    """A message as JSON-ready data, with the proto field names (``page_size``)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _print_json(data: object) -> None:
    """One JSON document on standard output (``--json``); everything else goes to stderr."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str), flush=True)


def _recommendations(result: object) -> dict[str, object]:
    return {
        "offers": [_dict(o) for o in result.offers],  # type: ignore[attr-defined]
        "recommendation_id": result.recommendation_id,  # type: ignore[attr-defined]
        "next_page_token": result.next_page_token,  # type: ignore[attr-defined]
    }


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
    if args.json:
        return _print_json(_recommendations(result))
    out.print(_offers_table(f"Offers for {args.customer} in {args.shop}", result.offers))
    out.print(f"recommendation_id: {result.recommendation_id}", style="dim")


def cmd_similar(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    result = client.similar_items(
        args.shop, args.item, customer_id=args.customer or "", page_size=args.n
    )
    if args.json:
        return _print_json(_recommendations(result))
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
    if args.json:
        return _print_json(_dict(stored))
    out.print(f"recorded {stored.name}")


def cmd_profile(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    customer = client.get_customer(args.shop, args.customer)
    if args.json:
        interactions = client.list_interactions(args.shop, args.customer, page_size=args.n)
        latest = [_dict(i) for _, i in zip(range(args.n), interactions, strict=False)]
        return _print_json({"customer": _dict(customer), "interactions": latest})
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
    rows: list[dict[str, object]] = []
    for shop in [args.shop] if args.shop else artifacts.shops():
        for name in artifacts.recommenders(shop):
            current = artifacts.current(shop, name)
            for v in artifacts.versions(shop, name):
                created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(v.create_time))
                rows.append(
                    {
                        "shop": shop,
                        "recommender": name,
                        "version": v.version,
                        "create_time": time.strftime(
                            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(v.create_time)
                        ),
                        "interactions": v.interactions,
                        "fit_seconds": v.fit_seconds,
                        "serving": v.version == current,
                    }
                )
                table.add_row(
                    shop,
                    name,
                    v.version,
                    created,
                    f"{v.interactions:,}",
                    f"{v.fit_seconds:.2f}",
                    "●" if v.version == current else "",
                )
    if args.json:
        return _print_json(rows)
    out.print(table)


def cmd_models_list_rpc(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    table = Table(title=f"Model versions of shop {args.shop}", title_justify="left")
    columns = ("recommender", "version", "age", "interactions", "fit s", "holdout NDCG@10")
    for column in (*columns, "serving"):
        table.add_column(column, no_wrap=column == "version")
    now = time.time()
    versions = client.list_model_versions(args.shop)
    if args.json:
        return _print_json([_dict(v) for v in versions])
    for v in versions:
        parts = v.name.split("/")
        age = now - v.create_time.ToSeconds()
        ndcg = v.metrics.get("ndcg@10")
        table.add_row(
            parts[3],
            parts[5],
            f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min",
            f"{v.interactions:,}",
            f"{v.fit_seconds:.2f}",
            "" if ndcg is None else f"{ndcg:.4f} ({int(v.metrics['holdout_customers'])} cust.)",
            "●" if v.serving else "",
        )
    out.print(table)


def cmd_models_rollback_rpc(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    served = client.rollback_model(args.shop, args.recommender, args.to or "")
    if args.json:
        return _print_json(_dict(served))
    out.print(f"{args.shop}/{args.recommender} now serves {served.name.rsplit('/', 1)[1]}")


def cmd_models_train(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    before = {v.name for v in client.list_model_versions(args.shop)} if args.wait else set()
    names = client.train_models(args.shop, force=args.force)
    trained: list[object] = []
    if args.wait and names:
        trained = _wait_for_versions(client, args, out, before, names)
    if args.json:
        return _print_json(
            {"shop": args.shop, "recommenders": names, "versions": [_dict(v) for v in trained]}  # type: ignore[arg-type]
        )
    if args.wait:
        for v in trained:
            out.print(f"serving {v.name}")  # type: ignore[attr-defined]
        return None
    out.print(f"training {', '.join(names)} for {args.shop}; `kosmos models list` shows the result")


def _wait_for_versions(
    client: KosmosClient,
    args: argparse.Namespace,
    out: Console,
    before: set[str],
    names: Sequence[str],
) -> list[object]:
    """Polls ModelService until each recommender in ``names`` serves a version made after
    ``before``, with a progress bar; gives up after ``--wait`` seconds (a ValueError)."""
    from rich.progress import Progress

    deadline = time.monotonic() + args.wait
    done: dict[str, object] = {}
    with Progress(console=out, transient=args.json) as progress:
        task = progress.add_task(f"training {', '.join(names)}", total=len(names))
        while len(done) < len(names):
            for v in client.list_model_versions(args.shop):
                recommender = v.name.split("/")[3]
                if v.serving and v.name not in before and recommender in names:
                    if recommender not in done:
                        done[recommender] = v
                        progress.advance(task)
            if len(done) < len(names):
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(set(names) - set(done)))
                    raise ValueError(f"no new serving version of {missing} after {args.wait:g}s")
                time.sleep(0.5)  # polling the API as an operator would
    return [done[n] for n in names]


def cmd_models_rollback(_client: None, args: argparse.Namespace, out: Console) -> None:
    version = Artifacts(args.model_dir).rollback(args.shop, args.recommender, args.to)
    if args.json:
        return _print_json({"shop": args.shop, "recommender": args.recommender, "version": version})
    out.print(
        f"{args.shop}/{args.recommender} now serves {version}; replicas swap it in within "
        f"KOSMOS_MODEL_POLL_SECONDS"
    )


def cmd_keys_create(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    created = client.create_api_key(args.scope, args.shop or "", args.name)
    key = created.api_key
    if args.json:
        return _print_json({"api_key": _dict(key), "secret": created.secret})
    out.print(
        f"created {key.name} ({args.scope}{' for ' + key.shop if key.shop else ', every shop'})"
    )
    out.print("the key, shown only now (send it as 'authorization: Bearer <key>'):")
    # Printed alone on its line so scripts can take it with `tail -1`.
    print(created.secret, flush=True)


def cmd_keys_list(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    table = Table(title="API keys", title_justify="left")
    for column in ("key", "shop", "scope", "name", "revoked"):
        table.add_column(column)
    keys = list(client.list_api_keys(args.shop or ""))
    if args.json:
        return _print_json([_dict(k) for k in keys])
    for key in keys:
        table.add_row(
            _tail(key.name),
            _tail(key.shop) if key.shop else "(every shop)",
            _enum(key.scope, api_key_service_pb2.ApiKeyScope, "API_KEY_SCOPE_"),
            key.display_name,
            "yes" if key.HasField("revoke_time") else "",
        )
    out.print(table)


def cmd_keys_revoke(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    key = client.revoke_api_key(args.key)
    if args.json:
        return _print_json(_dict(key))
    out.print(f"revoked {key.name}")


def cmd_import(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from kosmos import bulk
    from kosmos.client import NotFoundError

    files: dict[str, Path] = {}
    for path in args.paths:
        if path.is_dir():
            files.update(bulk.find_files(path))
        else:
            kind = next((k for k in bulk.KINDS if path.name.startswith(k)), None)
            if kind is None:
                raise bulk.BulkImportError(
                    f"{path}: name it items.*, customers.* or interactions.* (or pass its folder)"
                )
            files[kind] = path
    for kind in bulk.KINDS:
        explicit = getattr(args, kind)
        if explicit is not None:
            files[kind] = explicit
    if not files:
        raise bulk.BulkImportError("no items, customers or interactions file (.jsonl or .csv)")
    try:
        client.get_shop(args.shop)
    except NotFoundError:
        client.create_shop(args.shop, args.shop)
        out.print(f"created shop {args.shop}")
    importers = {
        "items": bulk.import_items,
        "customers": bulk.import_customers,
        "interactions": bulk.import_interactions,
    }
    columns = (
        TextColumn("{task.description:<13}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    summary: dict[str, dict[str, object]] = {}
    with Progress(*columns, console=out) as progress:
        for kind in bulk.KINDS:
            if kind not in files:
                continue
            path = files[kind]
            task = progress.add_task(kind, total=path.stat().st_size)
            started = time.perf_counter()
            count = importers[kind](
                client,
                args.shop,
                bulk.read_records(path),
                lambda n, task=task: progress.advance(task, n),  # type: ignore[misc]
            )
            seconds = time.perf_counter() - started
            summary[kind] = {"count": count, "path": str(path), "seconds": round(seconds, 3)}
            progress.console.print(
                f"{kind}: {count:,} from {path} in {seconds:.1f}s"
                f" ({count / max(seconds, 1e-9):,.0f}/s)"
            )
    if args.json:
        _print_json({"shop": args.shop, **summary})


def _settings_json(settings: object) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(settings, preserving_proto_field_name=True)  # type: ignore[arg-type]


def cmd_settings_get(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    settings = client.get_shop_settings(args.shop, revision=args.revision)
    if args.json:
        return _print_json(_dict(settings))
    out.print_json(_settings_json(settings))


def cmd_settings_history(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    table = Table(title=f"Settings revisions of {args.shop}", title_justify="left")
    for column in ("revision", "stored (UTC)", "settings"):
        table.add_column(column)
    revisions = list(client.list_shop_settings_revisions(args.shop))
    if args.json:
        return _print_json([_dict(r) for r in revisions])
    for r in revisions:
        stored = r.update_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        body = _settings_json(r).replace("\n", " ")
        table.add_row(str(r.revision), stored, body)
    out.print(table)


def cmd_rules_get(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    rules = client.get_merchant_rules(args.shop, revision=args.revision)
    if args.json:
        return _print_json(_dict(rules))
    out.print_json(_settings_json(rules))


def cmd_rules_set(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    from google.protobuf import json_format

    from kosmos.v1 import rules_service_pb2

    message = rules_service_pb2.MerchantRules()
    try:
        json_format.Parse(Path(args.file).read_text(), message)
    except (OSError, json_format.ParseError) as error:
        raise ValueError(f"{args.file}: {error}") from None
    stored = client.update_merchant_rules(args.shop, list(message.rules))
    if args.json:
        return _print_json(_dict(stored))
    out.print(f"rules of {args.shop}: revision {stored.revision}, {len(stored.rules)} rules")


def cmd_experiments_create(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    from google.protobuf import json_format

    from kosmos.v1 import experiment_service_pb2

    message = experiment_service_pb2.Experiment()
    try:
        json_format.Parse(Path(args.file).read_text(), message)
    except (OSError, json_format.ParseError) as error:
        raise ValueError(f"{args.file}: {error}") from None
    created = client.create_experiment(args.shop, args.experiment, message)
    if args.json:
        return _print_json(_dict(created))
    out.print_json(_settings_json(created))


def cmd_experiments_end(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    ended = client.end_experiment(args.shop, args.experiment)
    if args.json:
        return _print_json(_dict(ended))
    out.print_json(_settings_json(ended))


def cmd_experiments_report(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    report = client.experiment_report(args.shop, args.experiment, confidence_level=args.confidence)
    if args.json:
        return _print_json(_dict(report))
    level = f"{report.confidence_level:.0%}"
    table = Table(
        title=f"{report.name}: each variant against {report.control_variant_id}, {level} intervals",
        title_justify="left",
        caption=report.method,
        caption_justify="left",
    )
    for column in (
        "variant",
        "customers",
        "impressions",
        "CTR",
        "add-to-cart",
        "conversion",
        "revenue",
        "revenue / customer",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right")

    def rate(e: object) -> str:
        value, low, high = e.value, e.ci_low, e.ci_high  # type: ignore[attr-defined]
        text = f"{value:.2%} [{low:.2%}, {high:.2%}]"
        if e.p_value < 1:  # type: ignore[attr-defined]
            text += f" p={e.p_value:.3g}{' *' if e.significant else ''}"  # type: ignore[attr-defined]
        return text

    def mean(e: object) -> str:
        value, low, high = e.value, e.ci_low, e.ci_high  # type: ignore[attr-defined]
        text = f"{value:,.2f} [{low:,.2f}, {high:,.2f}]"
        if e.p_value < 1:  # type: ignore[attr-defined]
            text += f" p={e.p_value:.3g}{' *' if e.significant else ''}"  # type: ignore[attr-defined]
        return text

    for v in report.variants:
        table.add_row(
            v.variant_id,
            f"{v.customers:,}",
            f"{v.impressions:,}",
            rate(v.click_through_rate),
            rate(v.add_to_cart_rate),
            rate(v.conversion_rate),
            f"{v.revenue:,.2f}",
            mean(v.revenue_per_customer),
        )
    out.print(table)
    out.print(
        "tests: rates two-proportion z-test, revenue per customer Welch t-test;"
        f" * = significant at {level}"
    )


def _settings_change(
    client: KosmosClient, shop: str, assignments: Sequence[str], clear: bool
) -> tuple[object, list[str]]:
    """``key=value`` (or, to clear, ``key``) arguments → a ShopSettings message and its mask."""
    from kosmos.v1 import shop_settings_service_pb2 as pb

    message = pb.ShopSettings()
    paths: list[str] = []
    plugins: dict[str, dict[str, str]] | None = None
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if clear == bool(sep):
            raise ValueError(
                f"{assignment!r}: unset takes field names, set takes field=value"
                if clear
                else f"{assignment!r}: expected field=value"
            )
        if key.startswith("plugin_settings."):
            _, _, rest = key.partition(".")
            plugin, dot, setting = rest.partition(".")
            if plugins is None:
                current = client.get_shop_settings(shop).plugin_settings
                plugins = {name: dict(p.values) for name, p in current.items()}
            if clear and not dot:
                plugins.pop(plugin, None)
            elif not dot:
                raise ValueError(f"{key!r}: expected plugin_settings.<plugin>.<setting>=value")
            elif clear:
                plugins.get(plugin, {}).pop(setting, None)
            else:
                plugins.setdefault(plugin, {})[setting] = value
            continue
        paths.append(key)
        if clear:
            continue
        head, _, leaf = key.partition(".")
        if key == "routing":
            message.routing = value
        elif key == "max_per_category":
            message.max_per_category = int(value)
        elif key == "list_length":
            message.list_length = int(value)
        elif head == "interaction_weights" and leaf:
            setattr(message.interaction_weights, leaf, float(value))
        elif key == "seen_items.owned_types":
            message.seen_items.owned_types.extend(interaction_type(v) for v in _csv(value))
        elif key == "seen_items.repeat_purchase_mode":
            message.seen_items.repeat_purchase_mode = pb.RepeatPurchaseMode.Value(
                f"REPEAT_PURCHASE_MODE_{value.strip().upper()}"
            )
        elif key == "seen_items.repurchase_threshold":
            message.seen_items.repurchase_threshold = float(value)
        elif key in ("seen_items.repeatable_item_ids", "seen_items.repeatable_categories"):
            getattr(message.seen_items, leaf).extend(_csv(value))
        else:
            raise ValueError(f"{key!r} is not a setting (see `kosmos settings set --help`)")
    if plugins is not None:
        for name, values in plugins.items():
            if values:
                message.plugin_settings[name].values.update(values)
        paths.append("plugin_settings")
    return message, paths


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def cmd_settings_set(client: KosmosClient, args: argparse.Namespace, out: Console) -> None:
    message, paths = _settings_change(client, args.shop, args.assignments, args.clear)
    settings = client.update_shop_settings(args.shop, message, paths)  # type: ignore[arg-type]
    if args.json:
        return _print_json(_dict(settings))
    out.print(f"{args.shop}: settings revision {settings.revision}")
    out.print_json(_settings_json(settings))


DEFAULT_TIMEOUT = 10.0
IMPORT_TIMEOUT = 300.0
"""``kosmos import``'s deadline per call: one `ImportInteractions` of 10,000 events took more
than 10 s into SQLite with 18M events stored (issue 12's million-customer shop)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kosmos", description="Talk to a Kosmos cluster.")
    p.add_argument(
        "--target", help=f"host:port of the cluster (env {KOSMOS_TARGET}, default {DEFAULT_TARGET})"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"deadline per call, s (default {DEFAULT_TIMEOUT:g}; import: {IMPORT_TIMEOUT:g})",
    )
    p.add_argument("--api-key", help=f"the API key to send (env {KOSMOS_API_KEY})")
    p.add_argument("--tls-ca", help="call over TLS, trusting this CA (env KOSMOS_TLS_CA)")
    p.add_argument("--tls-cert", help="client certificate for mTLS (env KOSMOS_TLS_CLIENT_CERT)")
    p.add_argument("--tls-key", help="its private key (env KOSMOS_TLS_CLIENT_KEY)")
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("keys", help="create, list and revoke API keys (needs an operator key)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="a new key; prints it once")
    kc.add_argument("--scope", required=True, choices=["storefront", "admin", "operator"])
    kc.add_argument("--shop", help="the shop a storefront or admin key acts on")
    kc.add_argument("--name", default="", help="a label for people")
    kc.set_defaults(run=cmd_keys_create)
    kl = ksub.add_parser("list", help="every key (never the secrets)")
    kl.add_argument("--shop", help="only this shop's keys")
    kl.set_defaults(run=cmd_keys_list)
    kr = ksub.add_parser("revoke", help="stop a key working")
    kr.add_argument("key", help="the key id (apiKeys/{key} or the bare id)")
    kr.set_defaults(run=cmd_keys_revoke)

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
    im = sub.add_parser(
        "import",
        help="bulk-load a shop from JSONL/CSV files (items, customers, interactions)",
        description="Loads items, then customers, then interactions through the bulk API, with "
        "progress. PATH is a folder holding items.jsonl|csv, customers.jsonl|csv and "
        "interactions.jsonl|csv (any may be missing), or such files themselves; `python -m "
        "kosmos.datasets --out DIR` writes a folder this reads. The shop is created if needed. "
        "Importing the same files again stores no event twice.",
    )
    im.add_argument("shop")
    im.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    for kind in ("items", "customers", "interactions"):
        im.add_argument(f"--{kind}", type=Path, help=f"the {kind} file (.jsonl or .csv)")
    im.set_defaults(run=cmd_import)

    st = sub.add_parser("settings", help="a shop's own settings (over the cluster's)")
    stsub = st.add_subparsers(dest="settings_command", required=True)
    sg = stsub.add_parser("get", help="the shop's own settings (unset fields: the cluster's)")
    sg.add_argument("shop")
    sg.add_argument("--revision", type=int, default=0, help="an older revision")
    sg.set_defaults(run=cmd_settings_get)
    fields = (
        "routing, max_per_category, list_length, plugin_settings.<plugin>.<setting>, "
        "seen_items.owned_types (e.g. purchase,rating), seen_items.repeat_purchase_mode "
        "(learned|always|never), seen_items.repurchase_threshold, seen_items.repeatable_item_ids, "
        "seen_items.repeatable_categories, interaction_weights.<view|click|add_to_cart|purchase|"
        "rating|quantity_exponent>"
    )
    ss = stsub.add_parser(
        "set",
        help="change settings: field=value ...",
        description=f"Stores a new revision with these fields changed. Fields: {fields}.",
    )
    ss.add_argument("shop")
    ss.add_argument("assignments", nargs="+", metavar="FIELD=VALUE")
    ss.set_defaults(run=cmd_settings_set, clear=False)
    su = stsub.add_parser(
        "unset",
        help="give fields back to the cluster's defaults",
        description=f"Stores a new revision without these fields. Fields: {fields}.",
    )
    su.add_argument("shop")
    su.add_argument("assignments", nargs="+", metavar="FIELD")
    su.set_defaults(run=cmd_settings_set, clear=True)
    sh = stsub.add_parser("history", help="every stored revision, newest first")
    sh.add_argument("shop")
    sh.set_defaults(run=cmd_settings_history)

    ru = sub.add_parser("rules", help="a shop's merchant rules (filters, boosts, pins)")
    rusub = ru.add_subparsers(dest="rules_command", required=True)
    rg = rusub.add_parser("get", help="the shop's rule set, as JSON")
    rg.add_argument("shop")
    rg.add_argument("--revision", type=int, default=0, help="an older revision")
    rg.set_defaults(run=cmd_rules_get)
    rs = rusub.add_parser(
        "set",
        help='replace the rule set with a JSON file ({"rules": [...]}, kosmos.v1.MerchantRules)',
    )
    rs.add_argument("shop")
    rs.add_argument("file")
    rs.set_defaults(run=cmd_rules_set)

    ex = sub.add_parser("experiments", help="A/B tests: create, end, report")
    exsub = ex.add_subparsers(dest="experiments_command", required=True)
    ec = exsub.add_parser("create", help="start one from a JSON file (kosmos.v1.Experiment)")
    ec.add_argument("shop")
    ec.add_argument("experiment")
    ec.add_argument("file")
    ec.set_defaults(run=cmd_experiments_create)
    ee = exsub.add_parser("end", help="end one now")
    ee.add_argument("shop")
    ee.add_argument("experiment")
    ee.set_defaults(run=cmd_experiments_end)
    er = exsub.add_parser(
        "report", help="rates and revenue per variant, intervals and tests against the control"
    )
    er.add_argument("shop")
    er.add_argument("experiment")
    er.add_argument("--confidence", type=float, default=0.95, help="confidence level (0.95)")
    er.set_defaults(run=cmd_experiments_report)

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
    mt.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait (with a progress bar) until each recommender serves its new version",
    )
    mt.set_defaults(run=cmd_models_train)
    from kosmos.evaluation.cli import add_parser as add_evaluate

    add_evaluate(sub)
    _add_json(p, top=True)
    return p


def _add_json(p: argparse.ArgumentParser, top: bool = False) -> None:
    """``--json`` before or after any subcommand: one JSON document on stdout, progress and
    messages on stderr, and errors as JSON on stderr."""
    p.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print the result as JSON (for scripts); progress and errors go to stderr",
    )
    for action in p._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_json(child)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    # Piped output (CI logs, files) gets room for wide tables instead of the 80-column default.
    out = Console() if sys.stdout.isatty() else Console(width=160)
    if args.json:
        # stdout carries the one JSON document; tables, progress and notes go to stderr.
        out = Console(stderr=True)
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
    api_key = args.api_key or env.get(KOSMOS_API_KEY, "")
    try:
        tls = client_tls_from_env(env)
    except ConfigError as error:
        Console(stderr=True).print(f"[red]error[/red]: {error}", highlight=False)
        return 2
    if args.tls_ca or args.tls_cert:
        tls = ClientTls(args.tls_ca or "", args.tls_cert or "", args.tls_key or "")
    try:
        timeout = args.timeout
        if timeout is None:  # one import call stores 10,000 events: seconds on a large shop
            timeout = IMPORT_TIMEOUT if args.command == "import" else DEFAULT_TIMEOUT
        with KosmosClient(target, timeout=timeout, api_key=api_key, tls=tls) as client:
            args.run(client, args, out)
    except KosmosRpcError as error:
        if args.json:
            violations = [
                {"field": v.field, "description": v.description} for v in error.field_violations
            ]
            body = {"code": error.code.name, "message": error.message, "reason": error.reason}
            print(json.dumps({"error": {**body, "field_violations": violations}}), file=sys.stderr)
            return 1
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
