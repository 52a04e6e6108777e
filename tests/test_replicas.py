"""Two recommendation replicas on one PostgreSQL stay in step (issue 8).

Each replica reads profiles, recent interactions and dismissals from the store on every request
and catches its catalog up from the store's catalog version, so what one replica writes is what
the other serves next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kosmos.client import InteractionInput
from kosmos.store.postgres import PostgresStore
from tests.conftest import Cluster, start_cluster
from tests.helpers import item

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(postgres_url) -> Iterator[tuple[Cluster, Cluster]]:
    stores = [PostgresStore(postgres_url, pool_size=4) for _ in range(2)]
    clusters = [start_cluster(s) for s in stores]
    yield clusters[0], clusters[1]
    for c in clusters:
        c.client.close()
        c.channel.close()
        c.server.stop(None).wait()
    for s in stores:
        s.close()


def offered(cluster: Cluster) -> list[str]:
    page = cluster.client.recommend("acme", "alice", page_size=10)
    return [o.item.rsplit("/", 1)[1] for o in page.offers]


def test_what_one_replica_writes_the_other_serves_next(replicas):
    a, b = replicas
    a.client.create_shop("acme")
    a.client.create_customer("acme", "alice")
    a.client.create_customer("acme", "bob")
    a.client.upsert_items("acme", [item("acme", f"i{n}", category=f"c{n}") for n in range(6)])
    a.client.record_interactions(
        "acme", [InteractionInput("bob", f"i{n}", "purchase", value=1) for n in range(6)]
    )
    assert set(offered(a)) == set(offered(b)) == {f"i{n}" for n in range(6)}

    a.client.record_interactions("acme", [InteractionInput("alice", "i2", "dismiss")])
    assert "i2" not in offered(b)  # feedback through A, the very next Recommend on B

    b.client.upsert_items("acme", [item("acme", "i4", category="c4", available=False)])
    assert "i4" not in offered(a) and "i4" not in offered(b)  # a catalog change reaches both
    b.client.upsert_items("acme", [item("acme", "i9", category="c9", title="New")])
    similar = a.client.similar_items("acme", "i9")  # A knows the item B just created
    assert similar.recommendation_id
