"""FeedbackService over real gRPC: durable before ack, stored once, every bad input named."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kosmos.client import AlreadyExistsError, InteractionInput, NotFoundError
from kosmos.store import SQLiteStore
from kosmos.v1 import common_pb2, feedback_service_pb2_grpc
from kosmos.v1 import feedback_service_pb2 as pb
from tests.conftest import start_cluster
from tests.helpers import assert_code, assert_invalid, small_shop


@pytest.fixture
def stub(kosmos):
    return feedback_service_pb2_grpc.FeedbackServiceStub(kosmos.channel)


def interaction(customer="alice", item_id="i01", kind=common_pb2.INTERACTION_TYPE_VIEW, **kw):
    return common_pb2.Interaction(
        customer=f"shops/acme/customers/{customer}", item_id=item_id, type=kind, **kw
    )


def test_record_and_list_newest_first(client):
    small_shop(client)
    served = client.recommend("acme", "bob", page_size=2).recommendation_id
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    stored = client.record_interactions(
        "acme",
        [
            InteractionInput("alice", "i01", "view", event_time=when),
            InteractionInput("alice", "i01", "purchase", value=2, event_time=when),
            InteractionInput("bob", "i02", "rating", value=4.5, recommendation_id=served),
        ],
    )
    assert [s.name.rsplit("/", 1)[1] for s in stored] == ["1", "2", "3"]
    assert stored[2].recommendation_id == served
    listed = list(client.list_interactions("acme", "alice", page_size=1))
    assert [i.type for i in listed] == [
        common_pb2.INTERACTION_TYPE_PURCHASE,
        common_pb2.INTERACTION_TYPE_VIEW,
    ]
    assert listed[0].event_time.ToDatetime(tzinfo=dt.UTC) == when


def test_retry_with_same_request_id_stores_nothing_twice(client, kosmos):
    small_shop(client)
    batch = [InteractionInput("alice", "i01", "click"), InteractionInput("alice", "i02", "view")]
    first = client.record_interactions("acme", batch, request_id="req-1")
    again = client.record_interactions("acme", batch, request_id="req-1")
    assert [i.name for i in again] == [i.name for i in first]
    assert [i.event_time for i in again] == [i.event_time for i in first]
    assert len(list(client.list_interactions("acme", "alice"))) == 2


def test_request_id_reused_for_other_content_is_refused(client):
    small_shop(client)
    client.record_interactions("acme", [InteractionInput("alice", "i01", "click")], request_id="r")
    with pytest.raises(AlreadyExistsError) as caught:
        client.record_interactions(
            "acme", [InteractionInput("alice", "i02", "click")], request_id="r"
        )
    assert caught.value.reason == "REQUEST_ID_REUSED"


def test_batch_is_atomic(client):
    small_shop(client)
    with pytest.raises(NotFoundError) as caught:
        client.record_interactions(
            "acme",
            [InteractionInput("alice", "i01", "view"), InteractionInput("alice", "ghost", "view")],
        )
    assert caught.value.reason == "ITEM_NOT_FOUND"
    assert list(client.list_interactions("acme", "alice")) == []


def test_acknowledged_interactions_survive_a_restart(tmp_path):
    path = tmp_path / "k.db"
    first = start_cluster(SQLiteStore(path))
    small_shop(first.client)
    acked = first.client.record_interactions("acme", [InteractionInput("bob", "i03", "purchase")])
    first.server.stop(None).wait()
    first.client.close()
    first.store.close()

    second = start_cluster(SQLiteStore(path))
    try:
        listed = list(second.client.list_interactions("acme", "bob"))
        assert [i.name for i in listed] == [acked[0].name]
    finally:
        second.client.close()
        second.server.stop(None).wait()
        second.store.close()


def test_unknown_customer_and_shop(client, stub):
    small_shop(client)
    with pytest.raises(NotFoundError) as caught:
        client.record_interactions("acme", [InteractionInput("carol", "i01", "view")])
    assert caught.value.reason == "CUSTOMER_NOT_FOUND"
    assert_code(
        stub.RecordInteractions,
        pb.RecordInteractionsRequest(
            parent="shops/nope",
            request_id="x",
            interactions=[
                common_pb2.Interaction(
                    customer="shops/nope/customers/a",
                    item_id="i",
                    type=common_pb2.INTERACTION_TYPE_VIEW,
                )
            ],
        ),
        grpc.StatusCode.NOT_FOUND,
        "SHOP_NOT_FOUND",
    )
    assert_code(
        stub.ListInteractions,
        pb.ListInteractionsRequest(parent="shops/acme/customers/x"),
        grpc.StatusCode.NOT_FOUND,
        "CUSTOMER_NOT_FOUND",
    )


def _future() -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    return ts


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            pb.RecordInteractionsRequest(parent="shops/acme", interactions=[interaction()]),
            "request_id",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme", request_id="r" * 129, interactions=[interaction()]
            ),
            "request_id",
        ),
        (pb.RecordInteractionsRequest(parent="shops/acme", request_id="r"), "interactions"),
        (
            pb.RecordInteractionsRequest(parent="", request_id="r", interactions=[interaction()]),
            "parent",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme",
                request_id="r",
                interactions=[interaction(), interaction(item_id="")],
            ),
            "interactions[1].item_id",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme", request_id="r", interactions=[interaction(kind=0)]
            ),
            "interactions[0].type",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme", request_id="r", interactions=[interaction(kind=42)]
            ),
            "interactions[0].type",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme",
                request_id="r",
                interactions=[
                    common_pb2.Interaction(customer="shops/other/customers/a", item_id="i", type=1)
                ],
            ),
            "interactions[0].customer",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme",
                request_id="r",
                interactions=[interaction(kind=common_pb2.INTERACTION_TYPE_RATING, value=7)],
            ),
            "interactions[0].value",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme", request_id="r", interactions=[interaction(value=-1)]
            ),
            "interactions[0].value",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme",
                request_id="r",
                interactions=[interaction(event_time=_future())],
            ),
            "interactions[0].event_time",
        ),
        (
            pb.RecordInteractionsRequest(
                parent="shops/acme", request_id="r", interactions=[interaction()] * 1001
            ),
            "interactions",
        ),
    ],
)
def test_record_rejects_bad_input(stub, request_, field):
    assert_invalid(stub.RecordInteractions, request_, field)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListInteractionsRequest(parent="shops/acme"), "parent"),
        (pb.ListInteractionsRequest(parent="shops/acme/customers/a", page_size=-1), "page_size"),
        (
            pb.ListInteractionsRequest(parent="shops/acme/customers/a", page_token="zz"),
            "page_token",
        ),
    ],
)
def test_list_rejects_bad_input(stub, request_, field):
    assert_invalid(stub.ListInteractions, request_, field)
