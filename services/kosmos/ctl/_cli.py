"""``kosmosctl``: the operator's command line (see the README's operator guide)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kubernetes import client
from rich.console import Console
from rich.table import Table

from kosmos.ctl._cluster import Cluster, CtlError, Status, connect, render, to_json


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _print_status(console: Console, status: Status) -> None:
    table = Table(title=f"Kosmos in {status.namespace}", title_justify="left")
    for column in ("kind", "name", "ready", "image"):
        table.add_column(column)
    for w in status.workloads:
        style = "" if w.ready >= w.desired else "red"
        table.add_row(w.kind, w.name, f"{w.ready}/{w.desired}", w.image, style=style)
    console.print(table)
    models = Table(title="Models served by recommendation", title_justify="left")
    for column in ("shop", "recommender", "version", "age", "replicas", "pinned"):
        models.add_column(column)
    for m in status.models:
        models.add_row(
            m.shop,
            m.recommender,
            m.version,
            _age(m.age_seconds),
            str(m.replicas),
            "yes" if m.pinned else "",
        )
    console.print(models)
    for line in status.unreachable:
        console.print(f"[yellow]metrics unreachable[/yellow]: {line}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kosmosctl", description="Operate Kosmos on Kubernetes.")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("-n", "--namespace", default="kosmos", help="Kosmos's namespace")
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("apply", help="apply an overlay (kustomize directory) or a YAML file")
    a.add_argument("path", type=Path)
    s = sub.add_parser("status", help="services, ready replicas, model versions and ages")
    s.add_argument("-o", "--output", choices=["table", "json"], default="table")
    models = sub.add_parser("models", help="pin, unpin or roll back model versions")
    msub = models.add_subparsers(dest="action", required=True)
    r = msub.add_parser("rollout", help="serve VERSION for a shop and recommender")
    u = msub.add_parser("unpin", help="serve the trainer's current version again")
    for q in (r, u):
        q.add_argument("--shop", required=True)
        q.add_argument("--recommender", required=True)
    r.add_argument("--version", required=True)
    msub.add_parser("rollback", help="restore the pins before the last change")
    sc = sub.add_parser("scale", help="set a service's replicas (its autoscaler's floor)")
    sc.add_argument("service")
    sc.add_argument("--replicas", type=int, required=True)
    pl = sub.add_parser("plugins", help="partner plugins from Services labelled kosmos.io/plugin")
    pl.add_argument("action", choices=["list", "sync"], nargs="?", default="list")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs kosmosctl; returns the exit status (1: the cluster said no, 2: bad input)."""
    args = parser().parse_args(argv)
    console = Console()
    try:
        cluster = Cluster(connect(args.kubeconfig, args.context), args.namespace)
        if args.command == "apply":
            for applied in cluster.apply(render(args.path)):
                console.print(f"applied {applied}")
        elif args.command == "status":
            status = cluster.status()
            if args.output == "json":
                print(to_json(status))
            else:
                _print_status(console, status)
        elif args.command == "models":
            if args.action == "rollout":
                pins = cluster.rollout(args.shop, args.recommender, args.version)
            elif args.action == "unpin":
                pins = cluster.unpin(args.shop, args.recommender)
            else:
                pins = cluster.rollback()
            console.print(f"KOSMOS_MODEL_PINS={pins}; recommendation is rolling out")
        elif args.command == "scale":
            console.print(cluster.scale(args.service, args.replicas))
        elif args.action == "sync":
            value, changed = cluster.sync_plugins()
            verb = "set" if changed else "unchanged:"
            console.print(f"KOSMOS_REMOTE_RECOMMENDERS {verb} {value!r}")
        else:
            table = Table("plugin", "address", "service")
            for plugin in cluster.plugins():
                table.add_row(plugin.name, plugin.address, plugin.service)
            console.print(table)
    except CtlError as exc:
        print(f"kosmosctl: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a malformed name (routing.parse_names)
        print(f"kosmosctl: {exc}", file=sys.stderr)
        return 2
    except client.ApiException as exc:
        print(f"kosmosctl: the cluster refused: {exc.status} {exc.reason}", file=sys.stderr)
        return 1
    return 0
