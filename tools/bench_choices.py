"""Issue 11: how long from an acknowledged dismissal or consent change to a changed
recommendation, on one replica (SQLite) and across two replicas sharing PostgreSQL.

Each replica is its own process (``python -m kosmos.cluster``). A trial writes through replica
A (a dismissal of the customer's top offer, or a personalization consent change) and, from the
moment the write is acknowledged, asks replica B (A itself for one replica) for the customer's
offers until they show the change. The delay is acknowledgement → the first response that
shows it, so it includes that one Recommend; we print p50/p99 and how often the very first
request after the acknowledgement already showed it.

    .venv/bin/python tools/bench_choices.py --trials 200
    .venv/bin/python tools/bench_choices.py --trials 200 --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import grpc
import numpy as np
from rich.console import Console
from rich.table import Table

from kosmos.client import InteractionInput, KosmosClient
from kosmos.common.auth import with_key
from kosmos.v1 import common_pb2, profile_service_pb2, profile_service_pb2_grpc
from kosmos.v1 import recommendation_service_pb2 as rpb
from kosmos.v1 import recommendation_service_pb2_grpc as rgrpc

SHOP = "bench"
CUSTOMER = f"shops/{SHOP}/customers/alice"


@contextmanager
def replica(database_url: str, key: str) -> Iterator[str]:
    env = {
        **os.environ,
        "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
        "KOSMOS_DATABASE_URL": database_url,
        "KOSMOS_LOG_LEVEL": "WARNING",
        "KOSMOS_BOOTSTRAP_KEY": key,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    import psycopg

    schema = f"kosmos_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            sep = "&" if "?" in url else "?"
            yield f"{url}{sep}options={quote(f'-c search_path={schema}')}&application_name={schema}"
        finally:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (schema,),
            )
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def reachable(url: str, console: Console) -> str:
    """``url`` when a PostgreSQL server answers there, else "" (said so, and SQLite alone)."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        console.print(f"PostgreSQL at {url} unreachable, measuring SQLite alone: {exc}")
        return ""
    return url


def seed(address: str, key: str) -> None:
    with KosmosClient(address, timeout=30, api_key=key) as client:
        client.create_shop(SHOP, "Bench")
        client.upsert_items(
            SHOP,
            [
                common_pb2.Item(
                    name=f"shops/{SHOP}/items/i{n:03d}",
                    title=f"Item {n}",
                    category=f"c{n % 8}",
                    price=10.0,
                )
                for n in range(400)
            ],
        )
        for who in ("alice", "bob"):
            client.create_customer(SHOP, who)
        client.record_interactions(
            SHOP,
            [InteractionInput("bob", f"i{n:03d}", "purchase") for n in range(400) for _ in range(2)]
            + [InteractionInput("alice", f"i{n:03d}", "view") for n in range(0, 40, 4)],
        )
        client.recommend(SHOP, "alice")  # fit the in-process models


def trials(write: str, read: str, key: str, n: int) -> dict[str, tuple[np.ndarray, float]]:
    w_channel, r_channel = (with_key(grpc.insecure_channel(a), key) for a in (write, read))
    profiles = profile_service_pb2_grpc.ProfileServiceStub(w_channel)
    recs = rgrpc.RecommendationServiceStub(r_channel)
    request = rpb.RecommendRequest(customer=CUSTOMER, page_size=10)
    out: dict[str, list[float]] = {"dismissal": [], "consent": []}
    first: dict[str, int] = {"dismissal": 0, "consent": 0}
    with KosmosClient(write, timeout=10, api_key=key) as client:
        for t in range(n):
            # A dismissal of the top offer, then the first response without it.
            top = recs.Recommend(request, timeout=5).offers[0].item.rsplit("/", 1)[1]
            client.record_interactions(
                SHOP, [InteractionInput("alice", top, "dismiss")], request_id=uuid.uuid4().hex
            )
            acked = time.perf_counter()
            asked = 0
            while True:
                asked += 1
                offers = recs.Recommend(request, timeout=5).offers
                if all(not o.item.endswith(f"/{top}") for o in offers):
                    break
            out["dismissal"].append(time.perf_counter() - acked)
            first["dismissal"] += asked == 1
            profiles.UndoDismissal(
                profile_service_pb2.UndoDismissalRequest(customer=CUSTOMER, item_id=top), timeout=5
            )
            # A personalization consent change, each way in turn.
            granted = t % 2 == 1
            want = rpb.REASON_KIND_NON_PERSONAL
            profiles.SetConsent(
                profile_service_pb2.SetConsentRequest(
                    customer=CUSTOMER,
                    consent=common_pb2.Consent(
                        purpose=common_pb2.CONSENT_PURPOSE_PERSONALIZATION,
                        granted=granted,
                        source="bench",
                    ),
                ),
                timeout=5,
            )
            acked = time.perf_counter()
            asked = 0
            while True:
                asked += 1
                kinds = {o.explanation.kind for o in recs.Recommend(request, timeout=5).offers}
                if (want not in kinds) if granted else (kinds == {want}):
                    break
            out["consent"].append(time.perf_counter() - acked)
            first["consent"] += asked == 1
    w_channel.close()
    r_channel.close()
    return {k: (np.array(v) * 1000, first[k] / n) for k, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument(
        "--postgres",
        default="auto",
        help="a PostgreSQL URL: also measure two replicas; 'auto' (the default):"
        " KOSMOS_TEST_POSTGRES_URL or the local server when it answers; '' for SQLite alone",
    )
    args = p.parse_args()
    console = Console()
    if args.postgres == "auto":
        args.postgres = reachable(
            os.environ.get("KOSMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
            console,
        )
    key = secrets.token_urlsafe(32)
    table = Table(title="ack → changed recommendation (ms)", title_justify="left")
    for column in ("replicas", "change", "trials", "p50", "p99", "max", "first request shows it"):
        table.add_column(column, justify="left" if column in ("replicas", "change") else "right")

    def report(setup: str, found: dict[str, tuple[np.ndarray, float]]) -> None:
        for change, (ms, share) in found.items():
            table.add_row(
                setup,
                change,
                str(len(ms)),
                f"{np.percentile(ms, 50):.2f}",
                f"{np.percentile(ms, 99):.2f}",
                f"{ms.max():.2f}",
                f"{share:.0%}",
            )

    with tempfile.TemporaryDirectory() as tmp, replica(f"sqlite:///{tmp}/b.db", key) as a:
        seed(a, key)
        report("1, SQLite", trials(a, a, key, args.trials))
    if args.postgres:
        with postgres_schema(args.postgres) as url, replica(url, key) as a:
            seed(a, key)
            with replica(url, key) as b:
                KosmosClient(b, timeout=30, api_key=key).recommend(SHOP, "alice")
                report("1, PostgreSQL", trials(a, a, key, args.trials))
                report("2, PostgreSQL (A→B)", trials(a, b, key, args.trials))
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
