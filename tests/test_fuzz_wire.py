"""Issue 9: hostile bytes on the wire, for every RPC, against one running cluster.

Valid serialized requests for every RPC are mutated (bit flips, insertions, deletions,
truncation, splices, duplicated fields, deep nesting, random bytes) and sent raw, with
identity serializers so the client parses nothing; oversized payloads go with them. Each call
carries a deadline and one of three keys (operator, a shop's admin, none).

Passes when there is no UNKNOWN, INTERNAL, hang (DEADLINE_EXCEEDED) or dropped call, and no
traceback or ERROR in the log. ``FUZZ_REQUESTS`` sets how many requests (CI: 20,000;
``make fuzz``: more); the status-code table is printed (``-s``).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import uuid
from concurrent import futures

import grpc
import pytest
from google.protobuf import field_mask_pb2

from kosmos.common.auth import METHOD_SCOPES
from kosmos.v1 import (
    api_key_service_pb2,
    catalog_service_pb2,
    common_pb2,
    experiment_service_pb2,
    feedback_service_pb2,
    model_service_pb2,
    profile_service_pb2,
    recommendation_service_pb2,
    rules_service_pb2,
    shop_settings_service_pb2,
)
from tests.conftest import start_cluster
from tests.helpers import item, small_shop

KEY_METHODS = ("CreateApiKey", "ListApiKeys", "RevokeApiKey")  # operator only: not in the table

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "20000"))
IN_FLIGHT = 48
DEADLINE = 20.0
FORBIDDEN = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
}


def seeds(rid: str) -> dict[str, list[bytes]]:
    """Valid requests for every RPC, serialized, by method path."""
    pr, cat, fb, rec, keys, ss, ms = (
        profile_service_pb2,
        catalog_service_pb2,
        feedback_service_pb2,
        recommendation_service_pb2,
        api_key_service_pb2,
        shop_settings_service_pb2,
        model_service_pb2,
    )
    ru, ex = rules_service_pb2, experiment_service_pb2
    alice = "shops/acme/customers/alice"
    customer = common_pb2.Customer(
        name=alice,
        attributes={"country": "UK", "tier": "gold"},
        exclusions=[common_pb2.Exclusion(kind=common_pb2.EXCLUSION_KIND_BRAND, value="B1")],
    )
    interaction = common_pb2.Interaction(
        customer=alice,
        item_id="i01",
        type=common_pb2.INTERACTION_TYPE_CLICK,
        value=1.0,
        recommendation_id=rid,
    )
    interaction.event_time.seconds = 1_700_000_000
    context = rec.RecommendationContext(
        channel="web", device="mobile", page="home", cart_item_ids=["i02", "i03"]
    )
    found = {
        "/kosmos.v1.ProfileService/CreateShop": [
            pr.CreateShopRequest(shop_id="fuzz", shop=common_pb2.Shop(display_name="Fuzz"))
        ],
        "/kosmos.v1.ProfileService/GetShop": [pr.GetShopRequest(name="shops/acme")],
        "/kosmos.v1.ProfileService/CreateCustomer": [
            pr.CreateCustomerRequest(parent="shops/acme", customer_id="carol", customer=customer)
        ],
        "/kosmos.v1.ProfileService/GetCustomer": [pr.GetCustomerRequest(name=alice)],
        "/kosmos.v1.ProfileService/UpdateCustomer": [
            pr.UpdateCustomerRequest(
                customer=customer,
                update_mask=field_mask_pb2.FieldMask(paths=["attributes", "exclusions"]),
            )
        ],
        "/kosmos.v1.ProfileService/DeleteCustomer": [
            pr.DeleteCustomerRequest(name="shops/acme/customers/nobody")
        ],
        "/kosmos.v1.ProfileService/ListCustomers": [
            pr.ListCustomersRequest(parent="shops/acme", page_size=2)
        ],
        "/kosmos.v1.CatalogService/UpsertItems": [
            cat.UpsertItemsRequest(
                parent="shops/acme", items=[item("acme", "i01"), item("acme", "i02")]
            )
        ],
        "/kosmos.v1.CatalogService/GetItem": [cat.GetItemRequest(name="shops/acme/items/i01")],
        "/kosmos.v1.CatalogService/ListItems": [
            cat.ListItemsRequest(parent="shops/acme", page_size=3)
        ],
        "/kosmos.v1.FeedbackService/RecordInteractions": [
            fb.RecordInteractionsRequest(
                parent="shops/acme", request_id="fuzz-1", interactions=[interaction] * 2
            )
        ],
        "/kosmos.v1.FeedbackService/ListInteractions": [
            fb.ListInteractionsRequest(parent=alice, page_size=2)
        ],
        "/kosmos.v1.RecommendationService/Recommend": [
            rec.RecommendRequest(customer=alice, context=context, page_size=3)
        ],
        "/kosmos.v1.RecommendationService/SimilarItems": [
            rec.SimilarItemsRequest(item="shops/acme/items/i01", customer=alice, page_size=3)
        ],
        "/kosmos.v1.ApiKeyService/CreateApiKey": [
            keys.CreateApiKeyRequest(
                api_key=keys.ApiKey(shop="shops/acme", scope=keys.API_KEY_SCOPE_STOREFRONT)
            )
        ],
        "/kosmos.v1.ApiKeyService/ListApiKeys": [keys.ListApiKeysRequest(page_size=1)],
        "/kosmos.v1.ApiKeyService/RevokeApiKey": [
            keys.RevokeApiKeyRequest(name="apiKeys/0123456789abcdef")
        ],
        "/kosmos.v1.ProfileService/CreateCustomers": [
            pr.CreateCustomersRequest(parent="shops/acme", customers=[customer])
        ],
        "/kosmos.v1.FeedbackService/ImportInteractions": [
            fb.ImportInteractionsRequest(
                parent="shops/acme", request_id="fuzz-import", interactions=[interaction] * 3
            )
        ],
        "/kosmos.v1.ShopSettingsService/GetShopSettings": [
            ss.GetShopSettingsRequest(name="shops/acme/settings")
        ],
        "/kosmos.v1.ShopSettingsService/UpdateShopSettings": [
            ss.UpdateShopSettingsRequest(
                settings=ss.ShopSettings(
                    name="shops/acme/settings",
                    routing="warm=popularity;cold=popularity",
                    max_per_category=4,
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["routing", "max_per_category"]),
            )
        ],
        "/kosmos.v1.ShopSettingsService/ListShopSettingsRevisions": [
            ss.ListShopSettingsRevisionsRequest(parent="shops/acme/settings", page_size=2)
        ],
        "/kosmos.v1.ModelService/ListModelVersions": [
            ms.ListModelVersionsRequest(parent="shops/acme")
        ],
        "/kosmos.v1.ModelService/TrainModels": [ms.TrainModelsRequest(parent="shops/acme")],
        "/kosmos.v1.FeedbackService/RecordImpressions": [
            fb.RecordImpressionsRequest(
                parent="shops/acme",
                impressions=[
                    fb.Impression(customer=alice, recommendation_id=rid, item_ids=["i01", "i02"])
                ],
            )
        ],
        "/kosmos.v1.MerchantRulesService/GetMerchantRules": [
            ru.GetMerchantRulesRequest(name="shops/acme/rules")
        ],
        "/kosmos.v1.MerchantRulesService/UpdateMerchantRules": [
            ru.UpdateMerchantRulesRequest(
                rules=ru.MerchantRules(
                    name="shops/acme/rules",
                    rules=[
                        ru.MerchantRule(
                            rule_id="pin-1",
                            action=ru.RULE_ACTION_PIN,
                            match=ru.ItemMatch(item_ids=["i01"]),
                            slot=2,
                            placements=["home"],
                        ),
                        ru.MerchantRule(
                            rule_id="cheap",
                            action=ru.RULE_ACTION_BOOST,
                            match=ru.ItemMatch(max_price=10.0, attributes={"colour": "red"}),
                            factor=2.0,
                        ),
                    ],
                )
            )
        ],
        "/kosmos.v1.MerchantRulesService/ListMerchantRulesRevisions": [
            ru.ListMerchantRulesRevisionsRequest(parent="shops/acme/rules", page_size=2)
        ],
        "/kosmos.v1.ExperimentService/CreateExperiment": [
            ex.CreateExperimentRequest(
                parent="shops/acme",
                experiment_id="fuzz-exp",
                experiment=ex.Experiment(
                    variants=[
                        ex.Variant(variant_id="control"),
                        ex.Variant(variant_id="b", routing="popularity", weight=2.0),
                    ],
                    holdout_fraction=0.1,
                    placements=["home"],
                ),
            )
        ],
        "/kosmos.v1.ExperimentService/GetExperiment": [
            ex.GetExperimentRequest(name="shops/acme/experiments/fuzz-exp")
        ],
        "/kosmos.v1.ExperimentService/ListExperiments": [
            ex.ListExperimentsRequest(parent="shops/acme", page_size=2)
        ],
        "/kosmos.v1.ExperimentService/EndExperiment": [
            ex.EndExperimentRequest(name="shops/acme/experiments/fuzz-exp")
        ],
        "/kosmos.v1.ExperimentService/GetExperimentReport": [
            ex.GetExperimentReportRequest(name="shops/acme/experiments/fuzz-exp")
        ],
        "/kosmos.v1.ModelService/RollbackModel": [
            ms.RollbackModelRequest(name="shops/acme/recommenders/popularity")
        ],
        # Issue 11: the customer's own world.
        "/kosmos.v1.RecommendationService/Explain": [
            rec.RecommendationServiceExplainRequest(
                customer=alice, item="shops/acme/items/i02", context=context
            )
        ],
        "/kosmos.v1.ProfileService/UndoDismissal": [
            pr.UndoDismissalRequest(customer=alice, item_id="i01")
        ],
        "/kosmos.v1.ProfileService/GetTastes": [pr.GetTastesRequest(customer=alice)],
        "/kosmos.v1.ProfileService/CorrectTaste": [
            pr.CorrectTasteRequest(
                customer=alice, kind=common_pb2.PREFERENCE_KIND_LIKED_CATEGORY, value="tea"
            )
        ],
        "/kosmos.v1.ProfileService/SetConsent": [
            pr.SetConsentRequest(
                customer=alice,
                consent=common_pb2.Consent(
                    purpose=common_pb2.CONSENT_PURPOSE_TRAINING, granted=True, source="fuzz"
                ),
            )
        ],
        "/kosmos.v1.ProfileService/ListConsentChanges": [
            pr.ListConsentChangesRequest(customer=alice, page_size=2)
        ],
        "/kosmos.v1.ProfileService/LinkIdentity": [
            pr.LinkIdentityRequest(
                customer=alice, linked="shops/acme/customers/anon-fuzz", source="login"
            )
        ],
        "/kosmos.v1.ProfileService/UnlinkIdentity": [
            pr.UnlinkIdentityRequest(customer=alice, linked="shops/acme/customers/anon-fuzz")
        ],
        "/kosmos.v1.ProfileService/ListIdentityLinks": [
            pr.ListIdentityLinksRequest(customer=alice, page_size=2)
        ],
        "/kosmos.v1.ProfileService/EraseCustomer": [
            pr.EraseCustomerRequest(name="shops/acme/customers/nobody")
        ],
    }
    return {m: [r.SerializeToString() for r in rs] for m, rs in found.items()}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def oversized(rng: random.Random) -> bytes:
    """Bodies that are well-formed protobuf but far past every limit."""
    choice = rng.randrange(5)
    if choice == 0:  # one huge string in field 1 (a name, a parent, a customer)
        text = b"s" * rng.choice([300, 5_000, 200_000, 3_000_000])
        return b"\x0a" + _varint(len(text)) + text
    if choice == 1:  # a repeated message field with many entries
        entry = b"\x0a\x10shops/acme/x/y/z"
        field = rng.choice([b"\x1a", b"\x12"])
        return b"\x0a\x0ashops/acme" + (field + _varint(len(entry)) + entry) * 20_000
    if choice == 2:  # nesting far deeper than the parser's recursion limit
        body = b""
        for _ in range(rng.choice([100, 1000, 5000])):
            body = b"\x0a" + _varint(len(body)) + body
        return body
    if choice == 3:  # a map with many entries (customer.attributes)
        entry = b"\x0a\x01k\x12\x01v"
        attrs = (b"\x12" + _varint(len(entry)) + entry) * 5_000
        return b"\x1a" + _varint(len(attrs)) + attrs
    return bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 64, 4096])))


def mutate(rng: random.Random, body: bytes, pool: list[bytes]) -> bytes:
    data = bytearray(body)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        op = rng.randrange(9)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert random bytes
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        elif op == 2 and data:  # delete a run
            i = rng.randrange(len(data))
            del data[i : i + rng.randint(1, 8)]
        elif op == 3:  # truncate
            data = data[: rng.randrange(len(data) + 1)]
        elif op == 4:  # splice with another RPC's body
            other = rng.choice(pool)
            data = data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]
        elif op == 5:  # repeat the body (fields appear again: merging, repeated growth)
            data = data * rng.randint(2, 4)
        elif op == 6 and data:  # an interesting byte (length prefixes, 0x80 continuation)
            data[rng.randrange(len(data))] = rng.choice([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12])
        elif op == 7:  # an unknown field of every wire type
            data += rng.choice([b"\xf8\x07\x01", b"\xfa\x07\x02ab", b"\xfd\x07abcd", b"\x0b"])
        else:  # a newline or a non-ASCII byte inside a string
            data += rng.choice([b"\x0a\x0bshops/acme\n", b"\x0a\x02\xc3\x28", b"\x0a\x01\x00"])
    return bytes(data)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from kosmos.store import SQLiteStore

    store = SQLiteStore(tmp_path_factory.mktemp("fuzz-wire") / "k.db")
    c = start_cluster(store)
    small_shop(c.client)
    admin = c.client.create_api_key("admin", "acme").secret
    rid = c.client.recommend("acme", "alice").recommendation_id
    yield c, admin, rid
    c.close()
    store.close()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info or record.levelno >= logging.ERROR or "Traceback" in text:
            self.bad.append(f"{record.name}: {text[:200]}")


def test_mutated_and_oversized_bytes_never_break_the_service(cluster):
    c, admin, rid = cluster
    by_method = seeds(rid)
    methods = sorted(by_method)
    # Every RPC the cluster hosts is fuzzed (a new one must get a seed here).
    hosted = {*METHOD_SCOPES, *(f"/kosmos.v1.ApiKeyService/{m}" for m in KEY_METHODS)}
    assert set(methods) == hosted
    pool = [b for bodies in by_method.values() for b in bodies]
    calls = {m: c.raw_channel.unary_unary(m) for m in methods}  # identity serializers
    keys = [
        [("authorization", f"Bearer {c.operator_key}")],
        [("authorization", f"Bearer {admin}")],
        [],
    ]
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "9")))
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    codes: collections.Counter[tuple[str, str]] = collections.Counter()
    failures: list[str] = []

    def send(n: int) -> tuple[str, grpc.Future]:
        method = methods[n % len(methods)]
        roll = rng.random()
        if roll < 0.05:
            body = oversized(rng)
        elif roll < 0.10:
            body = rng.choice(by_method[method])
            if method.endswith("RecordInteractions"):
                body = body.replace(b"fuzz-1", str(uuid.uuid4()).encode()[:6])
        else:
            body = mutate(rng, rng.choice(by_method[method]), pool)
        metadata = keys[0] if roll < 0.6 else rng.choice(keys)
        return method, calls[method].future(body, timeout=DEADLINE, metadata=metadata)

    try:
        pending: collections.deque[tuple[str, grpc.Future]] = collections.deque()
        for n in range(REQUESTS):
            pending.append(send(n))
            if len(pending) >= IN_FLIGHT:
                _settle(pending.popleft(), codes, failures)
        while pending:
            _settle(pending.popleft(), codes, failures)
    finally:
        root.removeHandler(records)

    total = sum(codes.values())
    by_code = collections.Counter()
    for (_method, code), count in codes.items():
        by_code[code] += count
    print(f"\nfuzz_wire: {total} requests; by status: {dict(sorted(by_code.items()))}")
    for method in methods:
        row = {code: n for (m, code), n in codes.items() if m == method}
        print(f"  {method.removeprefix('/kosmos.v1.')}: {dict(sorted(row.items()))}")
    assert total == REQUESTS
    assert not failures, failures[:10]
    assert not records.bad, records.bad[:10]
    assert not {code for code in by_code if grpc.StatusCode[code] in FORBIDDEN}


def _settle(
    sent: tuple[str, grpc.Future],
    codes: collections.Counter[tuple[str, str]],
    failures: list[str],
) -> None:
    method, future = sent
    try:
        future.result(timeout=DEADLINE + 5)
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
        if code in FORBIDDEN or "Traceback" in (error.details() or ""):
            failures.append(f"{method}: {code.name}: {(error.details() or '')[:200]}")
    except futures.TimeoutError:
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        failures.append(f"{method}: no answer")
    codes[method, code.name] += 1
