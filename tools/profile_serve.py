"""Where the server's time goes under load: py-spy samples one serving process.

Starts the cluster (one process, SQLite, the bench's synthetic shop), drives Recommend from
client processes as ``tools/bench.py`` does and samples the server with py-spy (``--gil``: only
the thread holding the GIL, so the samples are where the process's one core goes) for the
length of the load. Prints the top frames by own time and by the time under them (inclusive), so a
change to the hot path can be judged by where the samples move.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import secrets
import subprocess
import sys
import tempfile
import time

from rich.console import Console

sys.path.insert(0, os.path.dirname(__file__))
from bench import api_floor, measure, warm_domain  # noqa: E402

from kosmos.client import KosmosClient  # noqa: E402
from kosmos.datasets import generate  # noqa: E402
from kosmos.demo import SHOP, load  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument(
        "--kind",
        default="recommend",
        choices=["recommend", "floor", "api"],
        help="Recommend, the empty RPC, or Recommend with the domain taken out (the API floor,"
        " tools/api_floor_server.py: then that server is sampled)",
    )
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--raw", default="", help="also keep py-spy's collapsed stacks here")
    p.add_argument(
        "--domain",
        type=int,
        default=0,
        metavar="N",
        help="also profile N calls of the domain alone in this process (cProfile)",
    )
    p.add_argument(
        "--sort",
        default="cumulative",
        choices=["cumulative", "tottime"],
        help="order of the domain's profile: time under each function, or its own (cumulative)",
    )
    args = p.parse_args()
    console = Console()
    shop = generate(customers=args.customers, items=args.items, end_time=time.time())
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "KOSMOS_LOG_LEVEL": "WARNING",
            "KOSMOS_BOOTSTRAP_KEY": secrets.token_urlsafe(32),
            "KOSMOS_PROCESSES": "1",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            address = server.stdout.readline().strip().rsplit(" ", 1)[-1]
            with KosmosClient(address, timeout=60, api_key=env["KOSMOS_BOOTSTRAP_KEY"]) as client:
                load(client, shop, console)
                key = client.create_api_key("storefront", SHOP, "bench").secret
            customers = [c.customer_id for c in shop.customers]
            raw = args.raw or os.path.join(tmp, "stacks.txt")
            floor_args = argparse.Namespace(api_floor=args.kind == "api")
            with (
                mp.get_context("spawn").Pool(4) as pool,
                api_floor(floor_args, env, 1, set()) as api,
            ):
                target, pid = api if api is not None else (address, server.pid)
                measure(pool, target, args.kind, 16, 800, customers, key)  # warm-up
                spy = subprocess.Popen(
                    [
                        os.path.join(os.path.dirname(sys.executable), "py-spy"),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--output",
                        raw,
                        "--rate",
                        "200",
                        "--nonblocking",
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)  # py-spy attaches
                r = measure(pool, target, args.kind, args.clients, args.requests, customers, key)
                spy.send_signal(2)
                spy.wait(timeout=60)
            console.print(
                f"{args.kind}: {r.rps:,.0f} req/s, p50 {r.p(50):.2f} ms, p99 {r.p(99):.2f} ms"
            )
            own: collections.Counter[str] = collections.Counter()
            under: collections.Counter[str] = collections.Counter()
            total = 0
            with open(raw) as f:
                for line in f:
                    stack, _, n = line.rstrip().rpartition(" ")
                    count = int(n)
                    frames = [fr for fr in stack.split(";") if not fr.startswith("thread ")]
                    if not frames:
                        continue
                    total += count
                    own[frames[-1]] += count
                    for fr in set(frames):
                        under[fr] += count
            console.print(f"{total} samples")
            console.print("[bold]own[/bold]")
            for fr, n in own.most_common(args.top):
                console.print(f"{n / total:6.1%}  {fr}")
            console.print("[bold]inclusive[/bold]")
            for fr, n in under.most_common(args.top * 2):
                console.print(f"{n / total:6.1%}  {fr}")
        finally:
            server.terminate()
            server.wait(timeout=60)
        if args.domain:
            profile_domain(env, customers, args.domain, args.top, args.sort)
    return 0


def profile_domain(
    env: dict[str, str], customers: list[str], n: int, top: int, sort: str = "cumulative"
) -> None:
    """cProfile of ``n`` calls of the domain alone on the same shop (`bench.warm_domain`),
    by the time under each function: where a Recommend goes before any transport."""
    import cProfile
    import pstats

    with warm_domain(env["KOSMOS_DATABASE_URL"], env, customers) as call:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            call()
        profile.disable()
    print(f"the domain alone, {n} calls, by {'own' if sort == 'tottime' else 'cumulative'} time:")
    pstats.Stats(profile).sort_stats(sort).print_stats(top)


if __name__ == "__main__":
    raise SystemExit(main())
