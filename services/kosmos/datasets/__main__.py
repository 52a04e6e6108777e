"""``python -m kosmos.datasets``: write a synthetic shop as JSON Lines.

    python -m kosmos.datasets --customers 5000 --items 800 --days 90 --seed 7 --out var/shop

writes ``customers.jsonl``, ``items.jsonl`` and ``interactions.jsonl`` (time-ordered) into
``--out``, with a progress bar. The same arguments always give the same shop.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from kosmos.datasets.synthetic import generate


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
        "--end",
        type=float,
        default=None,
        help="last moment of history, epoch seconds (default: a fixed date)",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    try:
        shop = generate(
            customers=args.customers,
            items=args.items,
            days=args.days,
            seed=args.seed,
            progress=True,
            **({"end_time": args.end} if args.end is not None else {}),
        )
    except ValueError as exc:
        console.print(f"[red]error[/red]: {exc}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for name, rows in (
        ("customers", shop.customers),
        ("items", shop.items),
        ("interactions", shop.interactions),
    ):
        with (args.out / f"{name}.jsonl").open("w") as f:
            for row in rows:
                record = asdict(row)
                if "type" in record:
                    record["type"] = row.type.name.lower()  # type: ignore[union-attr]
                f.write(json.dumps(record) + "\n")
    console.print(
        f"wrote {len(shop.customers)} customers, {len(shop.items)} items and "
        f"{len(shop.interactions)} interactions to {args.out} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
