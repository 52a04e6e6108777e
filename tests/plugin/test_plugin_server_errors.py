"""The Python plugin server (`kosmos.plugin.serve`): every RPC's bad input, over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from kosmos.plugin.serve import build_plugin_server
from kosmos.recommenders.popularity import create as popularity
from kosmos.v1 import recommender_plugin_service_pb2 as pb
from kosmos.v1 import recommender_plugin_service_pb2_grpc as pb_grpc
from tests.helpers import assert_code, assert_invalid


@pytest.fixture
def stub():
    server, port, _ = build_plugin_server(
        popularity({}), "127.0.0.1:0", factory=lambda: popularity({})
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=5)
    yield pb_grpc.RecommenderPluginServiceStub(channel)
    channel.close()
    server.stop(None).wait()


def fitted(stub, shop="shops/acme"):
    stub.Fit(
        iter(
            [
                pb.FitRequest(
                    shop=shop,
                    item_ids=["a", "b"],
                    interactions=[
                        pb.PluginInteraction(customer_id="c", item_id="a", type=4, weight=1.0)
                    ],
                )
            ]
        ),
        timeout=5,
    )
    return stub


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        (
            "Recommend",
            pb.RecommenderPluginServiceRecommendRequest(shop="shops/acme", k=3),
            "customer_id",
        ),
        (
            "Recommend",
            pb.RecommenderPluginServiceRecommendRequest(shop="shops/acme", customer_id="c", k=0),
            "k",
        ),
        (
            "Recommend",
            pb.RecommenderPluginServiceRecommendRequest(
                shop="shops/acme",
                customer_id="c",
                k=3,
                recent_interactions=[pb.PluginInteraction(customer_id="c", item_id="a")],
            ),
            "recent_interactions[0].type",
        ),
        (
            "Recommend",
            pb.RecommenderPluginServiceRecommendRequest(shop="acme", customer_id="c", k=3),
            "shop",
        ),
        (
            "SimilarItems",
            pb.RecommenderPluginServiceSimilarItemsRequest(shop="shops/acme", k=3),
            "item_id",
        ),
        ("Explain", pb.ExplainRequest(shop="shops/acme", item_id="a"), "customer_id"),
        (
            "PartialFit",
            pb.PartialFitRequest(
                shop="shops/acme", interactions=[pb.PluginInteraction(item_id="a", type=1)]
            ),
            "interactions[0].customer_id",
        ),
    ],
)
def test_every_rpc_rejects_bad_input(stub, method, request_, field):
    assert_invalid(getattr(fitted(stub), method), request_, field)


def test_unfitted_shop_and_unsupported_calls(stub):
    assert_code(
        stub.Recommend,
        pb.RecommenderPluginServiceRecommendRequest(shop="shops/other", customer_id="c", k=3),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_FITTED",
    )
    assert_code(
        fitted(stub).Explain,
        pb.ExplainRequest(shop="shops/acme", customer_id="c", item_id="a"),
        grpc.StatusCode.UNIMPLEMENTED,
        "UNSUPPORTED_OPERATION",
    )
