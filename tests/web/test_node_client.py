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
from kosmos.v1 import experiment_service_pb2 as ex
from kosmos.v1 import feedback_service_pb2 as fb
from kosmos.v1 import model_service_pb2 as ms
from kosmos.v1 import profile_service_pb2 as pr
from kosmos.v1 import recommendation_service_pb2 as rec
from kosmos.v1 import rules_service_pb2 as rules_pb2
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
    "kosmos.v1.ExperimentService": "experiments",
    "kosmos.v1.MerchantRulesService": "rules",
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


def plan(web, revoke: str, recommendation_id: str) -> list[tuple[dict, str]]:
    """(call, expected code) for every hosted RPC, in an order that makes each one valid."""
    op, admin, front = web.cluster.operator_key, web.admin, web.storefront
    P, C, F = "kosmos.v1.ProfileService", "kosmos.v1.CatalogService", "kosmos.v1.FeedbackService"
    R, K = "kosmos.v1.RecommendationService", "kosmos.v1.ApiKeyService"
    S, M = "kosmos.v1.ShopSettingsService", "kosmos.v1.ModelService"
    E, MR = "kosmos.v1.ExperimentService", "kosmos.v1.MerchantRulesService"
    acme, dave = "shops/acme", "shops/acme/customers/dave"
    anon = "shops/acme/customers/anon-web1"
    click = common_pb2.Interaction(
        customer=ALICE, item_id="i01", type=common_pb2.INTERACTION_TYPE_CLICK
    )
    click.event_time.seconds = 1_700_000_000
    alice = common_pb2.Customer(name=ALICE, attributes={"tier": "gold"})
    settings = ss.ShopSettings(name="shops/acme/settings", max_per_category=4)
    new_key = keys.ApiKey(shop=acme, scope=keys.API_KEY_SCOPE_STOREFRONT)
    consent = common_pb2.Consent(
        purpose=common_pb2.CONSENT_PURPOSE_CROSS_DEVICE_LINKING, granted=True, source="test"
    )
    liked = common_pb2.PREFERENCE_KIND_LIKED_CATEGORY
    boost = rules_pb2.MerchantRule(
        rule_id="r1",
        action=rules_pb2.RULE_ACTION_BOOST,
        match=rules_pb2.ItemMatch(categories=["Kitchen"]),
        factor=2.0,
    )
    experiment = ex.Experiment(
        display_name="Web",
        variants=[
            ex.Variant(variant_id="control", weight=1),
            ex.Variant(variant_id="b", weight=1, routing="popularity"),
        ],
    )
    rows = [
        (P, "CreateShop", pr.CreateShopRequest(shop_id="web"), op),
        (P, "GetShop", pr.GetShopRequest(name=acme), admin),
        (P, "CreateCustomer", pr.CreateCustomerRequest(parent=acme, customer_id="carol"), admin),
        (
            P,
            "CreateCustomers",
            pr.CreateCustomersRequest(parent=acme, customers=[common_pb2.Customer(name=dave)]),
            admin,
        ),
        (P, "GetCustomer", pr.GetCustomerRequest(name=ALICE), admin),
        (
            P,
            "UpdateCustomer",
            pr.UpdateCustomerRequest(customer=alice, update_mask=mask("attributes")),
            admin,
        ),
        (P, "ListCustomers", pr.ListCustomersRequest(parent=acme), admin),
        (P, "DeleteCustomer", pr.DeleteCustomerRequest(name=f"{acme}/customers/carol"), admin),
        (
            C,
            "UpsertItems",
            cat.UpsertItemsRequest(parent=acme, items=[item("acme", "i99", title="Kettle")]),
            admin,
        ),
        (C, "GetItem", cat.GetItemRequest(name=f"{acme}/items/i99"), admin),
        (C, "ListItems", cat.ListItemsRequest(parent=acme, page_size=5), admin),
        (
            F,
            "RecordInteractions",
            fb.RecordInteractionsRequest(parent=acme, request_id="n-1", interactions=[click]),
            front,
        ),
        (
            F,
            "ImportInteractions",
            fb.ImportInteractionsRequest(parent=acme, request_id="n-2", interactions=[click]),
            admin,
        ),
        (F, "ListInteractions", fb.ListInteractionsRequest(parent=ALICE), admin),
        (R, "Recommend", rec.RecommendRequest(customer=ALICE, page_size=3), front),
        (R, "SimilarItems", rec.SimilarItemsRequest(item=f"{acme}/items/i01", page_size=3), front),
        (
            S,
            "UpdateShopSettings",
            ss.UpdateShopSettingsRequest(settings=settings, update_mask=mask("max_per_category")),
            admin,
        ),
        (S, "GetShopSettings", ss.GetShopSettingsRequest(name=f"{acme}/settings"), admin),
        (
            S,
            "ListShopSettingsRevisions",
            ss.ListShopSettingsRevisionsRequest(parent=f"{acme}/settings"),
            admin,
        ),
        (M, "TrainModels", ms.TrainModelsRequest(parent=acme), admin),
        (M, "ListModelVersions", ms.ListModelVersionsRequest(parent=acme), admin),
        (
            M,
            "RollbackModel",
            ms.RollbackModelRequest(name=f"{acme}/recommenders/popularity", version="v1"),
            admin,
        ),
        # Issues 11 and 13, called with the operator key, whatever scope they get.
        (P, "UndoDismissal", pr.UndoDismissalRequest(customer=ALICE, item_id="i01"), op),
        (P, "GetTastes", pr.GetTastesRequest(customer=ALICE), op),
        (P, "CorrectTaste", pr.CorrectTasteRequest(customer=ALICE, kind=liked, value="K"), op),
        (P, "SetConsent", pr.SetConsentRequest(customer=ALICE, consent=consent), op),
        (P, "ListConsentChanges", pr.ListConsentChangesRequest(customer=ALICE), op),
        (
            P,
            "LinkIdentity",
            pr.LinkIdentityRequest(customer=ALICE, linked=anon, source="login"),
            op,
        ),
        (P, "ListIdentityLinks", pr.ListIdentityLinksRequest(customer=ALICE), op),
        (P, "UnlinkIdentity", pr.UnlinkIdentityRequest(customer=ALICE, linked=anon), op),
        (P, "EraseCustomer", pr.EraseCustomerRequest(name=dave), op),
        (
            F,
            "RecordImpressions",
            fb.RecordImpressionsRequest(
                parent=acme,
                impressions=[
                    fb.Impression(
                        customer=ALICE, item_ids=["i01"], recommendation_id=recommendation_id
                    )
                ],
            ),
            op,
        ),
        (
            R,
            "Explain",
            rec.RecommendationServiceExplainRequest(customer=ALICE, item=f"{acme}/items/i02"),
            op,
        ),
        # Issue 13's services (branch i13): in the plan, run once the cluster hosts them.
        (
            MR,
            "UpdateMerchantRules",
            rules_pb2.UpdateMerchantRulesRequest(
                rules=rules_pb2.MerchantRules(name=f"{acme}/rules", rules=[boost])
            ),
            admin,
        ),
        (MR, "GetMerchantRules", rules_pb2.GetMerchantRulesRequest(name=f"{acme}/rules"), admin),
        (
            MR,
            "ListMerchantRulesRevisions",
            rules_pb2.ListMerchantRulesRevisionsRequest(parent=f"{acme}/rules"),
            admin,
        ),
        (
            E,
            "CreateExperiment",
            ex.CreateExperimentRequest(parent=acme, experiment_id="web", experiment=experiment),
            admin,
        ),
        (E, "GetExperiment", ex.GetExperimentRequest(name=f"{acme}/experiments/web"), admin),
        (E, "ListExperiments", ex.ListExperimentsRequest(parent=acme), admin),
        (
            E,
            "GetExperimentReport",
            ex.GetExperimentReportRequest(name=f"{acme}/experiments/web"),
            admin,
        ),
        (E, "EndExperiment", ex.EndExperimentRequest(name=f"{acme}/experiments/web"), admin),
        (K, "CreateApiKey", keys.CreateApiKeyRequest(api_key=new_key), op),
        (K, "ListApiKeys", keys.ListApiKeysRequest(shop=acme), op),
        (K, "RevokeApiKey", keys.RevokeApiKeyRequest(name=revoke), op),
    ]
    # One version trained just before: there is no earlier one to roll back to.
    return [
        (call(service, method, request, key), "ROLLBACK" if method == "RollbackModel" else "ok")
        for service, method, request, key in rows
        if service in HOSTED
    ]


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_hosted_is_what_the_cluster_hosts(store):
    # A service the cluster starts hosting (issue 13's ExperimentService and
    # MerchantRulesService, say) goes into tests/web/conftest.py's HOSTED, and its RPCs into
    # the plan above, whose coverage test then requires them.
    hosted = [s.name for s in embedded.services(store, RecommendationSettings())]
    assert sorted(hosted) == sorted(HOSTED)


def test_every_rpc_from_node_over_http_json(web):
    doomed = web.cluster.client.create_api_key("storefront", "acme", "to revoke")
    listed = web.cluster.client.recommend("acme", "alice", page_size=2)
    steps = plan(web, doomed.api_key.name, listed.recommendation_id)
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
