"""Memory of ``KOSMOS_PROCESSES=2`` serving one ALS model: mapped ``.npy`` against private ``.npz``.

One run: seeds an SQLite shop large enough that the ALS factors are tens of MB, trains it once
(``python -m kosmos.training`` into a model directory, format 2: one ``.npy`` per array), and
copies that version rewritten as format 1 (one ``.npz``, as the previous release wrote it) into
a second model directory. Then, for each directory, starts ``python -m kosmos.cluster`` with
``KOSMOS_PROCESSES=2``, waits until both processes serve the ALS version (their metrics), sends
Recommend calls for many customers over many connections (the kernel spreads them over both
processes, so both touch their factors), and reads each process's ``/proc/<pid>/smaps_rollup``:
RSS, PSS (shared pages divided among the processes mapping them) and private memory. A third
case starts the cluster with no model directory, where each process fits ALS itself. Last, a
probe of faiss: the private memory a process gains reading an HNSW index with each read flag.

    .venv/bin/python tools/bench_memory_share.py            # 200k customers, 20k items
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np

from kosmos.common.auth import with_key
from kosmos.plugin.arrays import load_arrays
from kosmos.store import SQLiteStore
from kosmos.store.records import Customer, Interaction, InteractionType, Item, Shop
from kosmos.v1 import recommendation_service_pb2, recommendation_service_pb2_grpc

KEY = "bench-memory-share-bootstrap-key-0123456789"
SHOP = "bench"
RETRY = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)


def seed(db: Path, customers: int, items: int, per_customer: int) -> int:
    store = SQLiteStore(db)
    rng = random.Random(7)
    try:
        store.create_shop(Shop(SHOP))
        store.upsert_items([Item(SHOP, f"i{n}") for n in range(items)])
        chunk = 20_000
        for start in range(0, customers, chunk):
            store.upsert_customers(
                [Customer(SHOP, f"c{c}") for c in range(start, min(start + chunk, customers))]
            )
        events = 0
        t = 1.7e9
        for start in range(0, customers, chunk):
            batch = []
            for c in range(start, min(start + chunk, customers)):
                taste = rng.randrange(items)
                for _ in range(per_customer):
                    # Tastes cluster around an item, so ALS has structure to learn.
                    i = (taste + int(rng.expovariate(1 / 50))) % items
                    t += 1
                    batch.append(Interaction(SHOP, f"c{c}", f"i{i}", InteractionType.PURCHASE, t))
            store.import_interactions(SHOP, f"seed-{start}", f"h{start}", batch)
            events += len(batch)
        return events
    finally:
        store.close()


def as_format_1(version: Path) -> None:
    """Rewrites a kosmos-implicit version as format 1: one .npz of the arrays it had."""
    arrays = load_arrays(version / "kosmos_implicit.arrays")
    old = {n: np.array(a) for n, a in arrays.items() if n != "item_unit"}
    with (version / "kosmos_implicit.npz").open("wb") as f:
        np.savez(f, **old)
    shutil.rmtree(version / "kosmos_implicit.arrays")
    meta = json.loads((version / "kosmos_implicit.json").read_text())
    (version / "kosmos_implicit.json").write_text(json.dumps({**meta, "format": 1}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rollup(pid: int) -> dict[str, float]:
    """MiB from /proc/<pid>/smaps_rollup."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        out[name.rstrip(":")] = int(value) / 1024
    return out


def serving_als(metrics_port: int) -> bool:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read()
    except OSError:
        return False
    return b'recommender="als"' in text


def measure(env: dict[str, str], customers: int, calls: int) -> list[dict[str, float]]:
    metrics = free_port()
    env = {**env, "KOSMOS_METRICS_LISTEN": f"127.0.0.1:{metrics}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kosmos.cluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise SystemExit(f"the cluster did not start: {line!r}")
        address = line.strip().rsplit(" ", 1)[1]
        deadline = time.monotonic() + 300
        while not all(serving_als(metrics + i) for i in range(2)):
            if time.monotonic() > deadline:
                raise SystemExit("the processes did not load the ALS version in 5 minutes")
            time.sleep(0.5)
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        rng = random.Random(3)
        channels = [
            grpc.insecure_channel(address, [("grpc.use_local_subchannel_pool", 1)])
            for _ in range(16)
        ]
        stubs = [
            recommendation_service_pb2_grpc.RecommendationServiceStub(with_key(c, KEY))
            for c in channels
        ]
        for n in range(calls):
            request = recommendation_service_pb2.RecommendRequest(
                customer=f"shops/{SHOP}/customers/c{rng.randrange(customers)}", page_size=10
            )
            for attempt in range(10):  # a process may still be warming its caches
                try:
                    stubs[n % len(stubs)].Recommend(request, timeout=30)
                    break
                except grpc.RpcError as exc:
                    if attempt == 9 or exc.code() not in RETRY:
                        raise
        for c in channels:
            c.close()
        return [rollup(pid) for pid in children]
    finally:
        proc.terminate()
        proc.wait(timeout=60)


_FAISS_PROBE = """
import sys, faiss, numpy as np
def private():
    fields = dict(l.split()[:2] for l in open("/proc/self/smaps_rollup").read().splitlines()[1:])
    return (int(fields["Private_Clean:"]) + int(fields["Private_Dirty:"])) / 1024
before = private()
index = faiss.read_index(sys.argv[1], int(sys.argv[2]))
index.search(np.random.default_rng(1).random((200, index.d), dtype=np.float32), 10)
print(private() - before)
"""


def faiss_private(items: int, factors: int, folder: Path) -> dict[str, float]:
    """Private MiB a process gains reading an IndexHNSWFlat (as the ALS plugin builds it) with
    each of faiss's read flags."""
    import faiss  # noqa: PLC0415 (only for this probe)

    vectors = np.random.default_rng(0).random((items, factors), dtype=np.float32)
    index = faiss.IndexHNSWFlat(factors, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 40
    index.add(vectors)
    path = folder / "items.faiss"
    faiss.write_index(index, str(path))
    flags = {
        "none": 0,
        "IO_FLAG_MMAP": faiss.IO_FLAG_MMAP,
        "IO_FLAG_MMAP_IFC": faiss.IO_FLAG_MMAP_IFC,
    }
    out = {"file": path.stat().st_size / 2**20}
    for name, flag in flags.items():
        run = subprocess.run(
            [sys.executable, "-c", _FAISS_PROBE, str(path), str(flag)],
            check=True,
            capture_output=True,
            text=True,
        )
        out[name] = float(run.stdout.strip())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--per-customer", type=int, default=5)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument(
        "--faiss-items", type=int, default=50_000, help="HNSW probe size (0: skip the probe)"
    )
    p.add_argument(
        "--no-in-process",
        dest="in_process",
        action="store_false",
        help="skip the third case: no model directory, so each process fits ALS itself",
    )
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="kosmos-bench-mem-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        events = seed(root / "k.db", args.customers, args.items, args.per_customer)
        print(
            f"seeded {args.customers} customers, {args.items} items, {events} events "
            f"in {time.perf_counter() - started:.0f} s"
        )
        env = {
            **os.environ,
            "KOSMOS_DATABASE_URL": f"sqlite:///{root}/k.db",
            "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0",
            "KOSMOS_BOOTSTRAP_KEY": KEY,
            "KOSMOS_ROUTING": "als",
            "KOSMOS_PLUGIN__ALS__FACTORS": str(args.factors),
            "KOSMOS_PLUGIN__ALS__ITERATIONS": "3",
            "KOSMOS_PROCESSES": "2",
            "KOSMOS_DRAIN_SECONDS": "0",
            "KOSMOS_MODEL_DIR": str(root / "mapped"),
        }
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "kosmos.training", "--shop", SHOP],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"trained ALS in {time.perf_counter() - started:.0f} s")
        shutil.copytree(root / "mapped", root / "npz")
        als = root / "npz" / SHOP / "als"
        as_format_1(als / (als / "CURRENT").read_text().strip())
        version = root / "mapped" / SHOP / "als"
        folder = version / (version / "CURRENT").read_text().strip() / "kosmos_implicit.arrays"
        sizes = {p.stem: p.stat().st_size / 2**20 for p in folder.glob("*.npy")}
        print(
            f"saved arrays {sum(sizes.values()):.1f} MiB: "
            + ", ".join(f"{n} {s:.1f}" for n, s in sorted(sizes.items(), key=lambda x: -x[1])[:4])
        )

        rows = []
        cases = [("npz (format 1)", "npz"), ("mmap (format 2)", "mapped")]
        if args.in_process:
            cases.append(("fitted in each process", ""))
        for name, directory in cases:
            found = measure(
                {**env, "KOSMOS_MODEL_DIR": str(root / directory) if directory else ""},
                args.customers,
                args.calls,
            )
            rows.append((name, found))
        print()
        print("| artifact | process | RSS MiB | PSS MiB | private MiB | shared MiB |")
        print("|---|---|---|---|---|---|")
        totals = {}
        for name, found in rows:
            for i, r in enumerate(found):
                private = r["Private_Clean"] + r["Private_Dirty"]
                shared = r["Shared_Clean"] + r["Shared_Dirty"]
                print(
                    f"| {name} | {i} | {r['Rss']:.0f} | {r['Pss']:.0f} | {private:.0f} "
                    f"| {shared:.0f} |"
                )
            totals[name] = sum(r["Pss"] for r in found)
        for name, total in totals.items():
            print(f"{name}: PSS of both processes {total:.0f} MiB")
        npz, mapped = totals["npz (format 1)"], totals["mmap (format 2)"]
        print(
            f"mmap saves {npz - mapped:.0f} MiB of {npz:.0f} ({(npz - mapped) / npz:.0%}); "
            f"the saved arrays are {sum(sizes.values()):.0f} MiB"
        )
        if args.faiss_items:
            probe = faiss_private(args.faiss_items, args.factors, root)
            print(
                f"faiss IndexHNSWFlat, {args.faiss_items} x {args.factors}, "
                f"{probe.pop('file'):.0f} MiB file; private MiB after read_index: "
                + ", ".join(f"{flag} {mib:.0f}" for flag, mib in probe.items())
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
