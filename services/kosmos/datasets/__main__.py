"""``python -m kosmos.datasets``: write a synthetic shop as JSON Lines.

    python -m kosmos.datasets --customers 5000 --items 800 --days 90 --seed 7 --out var/shop
    python -m kosmos.datasets --customers 1000000 --items 100000 --out var/big   # a few minutes

writes ``customers.jsonl``, ``items.jsonl`` and ``interactions.jsonl`` (time-ordered) into
``--out``, with a progress bar, streaming: memory stays bounded at any size. The same arguments
always give the same shop, the one ``kosmos.datasets.generate`` returns in memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console

from kosmos.datasets.synthetic import write


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m kosmos.datasets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--customers", type=int, default=1000, help="how many customers (1000)")
    p.add_argument("--items", type=int, default=300, help="how many catalog items (300)")
    p.add_argument("--days", type=int, default=60, help="days of history (60)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument(
        "--sessions",
        type=float,
        default=6.0,
        help="mean shopping sessions per customer (6: about 33 events per customer)",
    )
    p.add_argument(
        "--end",
        type=float,
        default=None,
        help="last moment of history, epoch seconds (default: a fixed date)",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    started = time.perf_counter()
    try:
        counts = write(
            args.out,
            customers=args.customers,
            items=args.items,
            days=args.days,
            seed=args.seed,
            sessions_per_customer=args.sessions,
            console=console,
            **({"end_time": args.end} if args.end is not None else {}),
        )
    except ValueError as exc:
        console.print(f"[red]error[/red]: {exc}")
        return 2
    console.print(
        f"wrote {counts['customers']} customers, {counts['items']} items and "
        f"{counts['interactions']} interactions to {args.out} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
