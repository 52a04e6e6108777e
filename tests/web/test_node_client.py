"""The generated TypeScript client (services/web) from Node, over HTTP/JSON and gRPC-Web:
every hosted RPC, with the same keys and errors as gRPC."""

from __future__ import annotations

import re

from google.protobuf import descriptor_pool, field_mask_pb2, json_format

from kosmos import cluster as embedded
from kosmos.common.config import RecommendationSettings
from kosmos.v1 import api_key_service_pb2 as keys
from kosmos.v1 import catalog_service_pb2 as cat
from kosmos.v1 import common_pb2
from kosmos.v1 import feedback_service_pb2 as fb
from kosmos.v1 import model_service_pb2 as ms
from kosmos.v1 import profile_service_pb2 as pr
from kosmos.v1 import recommendation_service_pb2 as rec
from kosmos.v1 import shop_settings_service_pb2 as ss
from tests.helpers import item
from tests.web.conftest import HOSTED
from tests.web.node import node_calls

SERVICE_KEYS = {
    "kosmos.v1.ApiKeyService": "apiKeys",
    "kosmos.v1.CatalogService": "catalog",
    "kosmos.v1.FeedbackService": "feedback",
    "kosmos.v1.ModelService": "models",
    "kosmos.v1.ProfileService": "profiles",
    "kosmos.v1.RecommendationService": "recommendations",
    "kosmos.v1.ShopSettingsService": "settings",
}
ALICE = "shops/acme/customers/alice"


def local_name(method: str) -> str:
    return method[0].lower() + method[1:]


def call(service: str, method: str, request, key: str, **extra) -> dict:
    return {
        "service": SERVICE_KEYS[service],
        "method": local_name(method),
        "key": key,
        "request": json_format.MessageToDict(request),
        **extra,
    }


def plan(web, revoke: str) -> list[tuple[dict, str]]:
    """(call, expected code) for every hosted RPC, in an order that makes each one valid."""
    op, admin, front = web.cluster.operator_key, web.admin, web.storefront
    P, C, F, R, K, S, M = (f"kosmos.v1.{n}" for n in (
        "ProfileService", "CatalogService", "FeedbackService", "RecommendationService",
        "ApiKeyService", "ShopSettingsService", "ModelService",
    ))  # fmt: skip
    click = common_pb2.Interaction(
        customer=ALICE, item_id="i01", type=common_pb2.INTERACTION_TYPE_CLICK
    )
    click.event_time.seconds = 1_700_000_000
    customer = common_pb2.Customer(name=ALICE, attributes={"tier": "gold"})
    return [
        (call(P, "CreateShop", pr.CreateShopRequest(shop_id="web"), op), "ok"),
        (call(P, "GetShop", pr.GetShopRequest(name="shops/acme"), admin), "ok"),
        (
            call(
                P,
                "CreateCustomer",
                pr.CreateCustomerRequest(parent="shops/acme", customer_id="carol"),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                P,
                "CreateCustomers",
                pr.CreateCustomersRequest(
                    parent="shops/acme",
                    customers=[common_pb2.Customer(name="shops/acme/customers/dave")],
                ),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (call(P, "GetCustomer", pr.GetCustomerRequest(name=ALICE), admin), "ok"),
        (
            call(
                P,
                "UpdateCustomer",
                pr.UpdateCustomerRequest(
                    customer=customer, update_mask=field_mask_pb2.FieldMask(paths=["attributes"])
                ),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (call(P, "ListCustomers", pr.ListCustomersRequest(parent="shops/acme"), admin), "ok"),
        (
            call(
                P,
                "DeleteCustomer",
                pr.DeleteCustomerRequest(name="shops/acme/customers/carol"),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                C,
                "UpsertItems",
                cat.UpsertItemsRequest(
                    parent="shops/acme", items=[item("acme", "i99", title="Kettle")]
                ),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (call(C, "GetItem", cat.GetItemRequest(name="shops/acme/items/i99"), admin), "ok"),
        (call(C, "ListItems", cat.ListItemsRequest(parent="shops/acme", page_size=5), admin), "ok"),
        (
            call(
                F,
                "RecordInteractions",
                fb.RecordInteractionsRequest(
                    parent="shops/acme", request_id="node-1", interactions=[click]
                ),
                front,
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                F,
                "ImportInteractions",
                fb.ImportInteractionsRequest(
                    parent="shops/acme", request_id="node-2", interactions=[click]
                ),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (call(F, "ListInteractions", fb.ListInteractionsRequest(parent=ALICE), admin), "ok"),
        (call(R, "Recommend", rec.RecommendRequest(customer=ALICE, page_size=3), front), "ok"),
        (
            call(
                R,
                "SimilarItems",
                rec.SimilarItemsRequest(item="shops/acme/items/i01", page_size=3),
                front,
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                S,
                "UpdateShopSettings",
                ss.UpdateShopSettingsRequest(
                    settings=ss.ShopSettings(name="shops/acme/settings", max_per_category=4),
                    update_mask=field_mask_pb2.FieldMask(paths=["max_per_category"]),
                ),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                S, "GetShopSettings", ss.GetShopSettingsRequest(name="shops/acme/settings"), admin
            ),
            "ok",
        ),  # fmt: skip
        (
            call(
                S,
                "ListShopSettingsRevisions",
                ss.ListShopSettingsRevisionsRequest(parent="shops/acme/settings"),
                admin,
            ),
            "ok",
        ),  # fmt: skip
        (call(M, "TrainModels", ms.TrainModelsRequest(parent="shops/acme"), admin), "ok"),
        (
            call(M, "ListModelVersions", ms.ListModelVersionsRequest(parent="shops/acme"), admin),
            "ok",
        ),  # fmt: skip
        # One version trained: there is no earlier one to roll back to.
        (
            call(
                M,
                "RollbackModel",
                ms.RollbackModelRequest(name="shops/acme/recommenders/popularity", version="v1"),
                admin,
            ),
            "ROLLBACK",
        ),  # fmt: skip
        (
            call(
                K,
                "CreateApiKey",
                keys.CreateApiKeyRequest(
                    api_key=keys.ApiKey(shop="shops/acme", scope=keys.API_KEY_SCOPE_STOREFRONT)
                ),
                op,
            ),
            "ok",
        ),  # fmt: skip
        (call(K, "ListApiKeys", keys.ListApiKeysRequest(shop="shops/acme"), op), "ok"),
        (call(K, "RevokeApiKey", keys.RevokeApiKeyRequest(name=revoke), op), "ok"),
    ]


def test_hosted_is_what_the_cluster_hosts(store):
    hosted = [s.name for s in embedded.services(store, RecommendationSettings())]
    assert sorted(hosted) == sorted(HOSTED)


def test_every_rpc_from_node_over_http_json(web):
    doomed = web.cluster.client.create_api_key("storefront", "acme", "to revoke")
    steps = plan(web, doomed.api_key.name)
    pool = descriptor_pool.Default()
    every = {
        (SERVICE_KEYS[name], local_name(m.name))
        for name in HOSTED
        for m in pool.FindServiceByName(name).methods
    }
    assert {(c["service"], c["method"]) for c, _ in steps} == every

    answers = node_calls(web.base, [c for c, _ in steps])
    for (sent, expected), got in zip(steps, answers, strict=True):
        name = f"{sent['service']}.{sent['method']}"
        if expected == "ROLLBACK":
            assert got["code"] in ("NotFound", "FailedPrecondition"), (name, got)
        else:
            assert got["code"] == expected, (name, got)
    by_method = {f"{c['service']}.{c['method']}": a for (c, _), a in zip(steps, answers)}  # noqa: B905 (checked strict above)
    offers = by_method["recommendations.recommend"]["response"]["offers"]
    assert len(offers) == 3 and all(o["reason"] for o in offers)
    assert by_method["catalog.getItem"]["response"]["item"]["title"] == "Kettle"
    assert re.fullmatch(r"ksk\..+", by_method["apiKeys.createApiKey"]["response"]["secret"])
    # The key revoked over HTTP no longer works.
    R = "kosmos.v1.RecommendationService"
    ask = rec.RecommendRequest(customer=ALICE)
    [after] = node_calls(web.base, [call(R, "Recommend", ask, doomed.secret)])
    assert after["code"] == "Unauthenticated"


def test_storefront_key_gets_offers_and_another_shops_key_is_denied(web):
    ask = rec.RecommendRequest(customer=ALICE, page_size=4)
    R = "kosmos.v1.RecommendationService"
    for protocol in ("connect", "grpc-web", "binary"):
        mine, theirs, bad = node_calls(
            web.base,
            [
                call(R, "Recommend", ask, web.storefront),
                call(R, "Recommend", ask, web.other),
                call(
                    R,
                    "Recommend",
                    rec.RecommendRequest(customer=ALICE, page_size=-1),
                    web.storefront,
                ),  # fmt: skip
            ],
            protocol,
        )
        assert mine["code"] == "ok" and len(mine["response"]["offers"]) == 4, protocol
        assert theirs["code"] == "PermissionDenied", protocol
        assert (bad["code"], bad["fields"]) == ("InvalidArgument", ["page_size"]), protocol
