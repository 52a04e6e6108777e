"""Whatever a client sends, the answer is a deliberate status: never UNKNOWN or INTERNAL.

Hypothesis builds requests from hostile field values (empty, huge, unicode, NaN, negative,
out-of-range enums) for every RPC and sends them over real gRPC to one running cluster; no
traceback may reach the log. ``FUZZ_EXAMPLES`` sets the examples per test (``make fuzz``).
tests/test_fuzz_wire.py mutates the bytes themselves.
"""

from __future__ import annotations

import logging
import os

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kosmos.v1 import (
    api_key_service_pb2 as keys,
)
from kosmos.v1 import (
    api_key_service_pb2_grpc,
    catalog_service_pb2_grpc,
    common_pb2,
    feedback_service_pb2_grpc,
    profile_service_pb2_grpc,
    recommendation_service_pb2_grpc,
    shop_settings_service_pb2_grpc,
)
from kosmos.v1 import (
    catalog_service_pb2 as cat,
)
from kosmos.v1 import (
    feedback_service_pb2 as fb,
)
from kosmos.v1 import (
    profile_service_pb2 as pr,
)
from kosmos.v1 import (
    recommendation_service_pb2 as rec,
)
from kosmos.v1 import (
    shop_settings_service_pb2 as ss,
)
from tests.conftest import start_cluster
from tests.helpers import small_shop

NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}

# Names that are sometimes valid, sometimes nearly valid, sometimes garbage.
names = st.one_of(
    st.sampled_from(
        [
            "shops/acme",
            "shops/acme/customers/alice",
            "shops/acme/items/i01",
            "shops/acme/customers/",
            "shops//customers/x",
            "shops/ACME",
            "",
            "shops/acme/customers/alice/extra",
            "shops/nope/customers/alice",
        ]
    ),
    st.text(max_size=300),
)
ids = st.one_of(
    st.sampled_from(["alice", "i01", "", " ", "a" * 200, "ünïcødé", "../x"]), st.text(max_size=150)
)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10))
int32 = st.integers(-(2**31), 2**31 - 1)
enum = st.integers(-5, 10)
texts = st.text(max_size=2000)
attributes = st.dictionaries(st.text(max_size=80), st.text(max_size=1500), max_size=70)


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.seen.append(f"{record.name}: {record.getMessage()[:200]}")


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    from kosmos.store import SQLiteStore

    store = SQLiteStore(tmp_path_factory.mktemp("fuzz") / "k.db")
    cluster = start_cluster(store)
    small_shop(cluster.client)
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    yield cluster.channel
    logging.getLogger().removeHandler(tracebacks)
    cluster.close()
    store.close()
    assert not tracebacks.seen, tracebacks.seen[:5]


def call(method, request):
    try:
        method(request, timeout=10)
    except grpc.RpcError as error:
        assert error.code() not in NEVER, (error.code(), error.details(), request)
        assert "Traceback" not in (error.details() or "")


FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(
    shop_id=ids,
    name=names,
    display=texts,
    customer_id=ids,
    attrs=attributes,
    kind=enum,
    value=ids,
    size=int32,
    token=texts,
    mask=st.lists(texts, max_size=3),
)
def test_profile_rpcs(
    channel, shop_id, name, display, customer_id, attrs, kind, value, size, token, mask
):
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    customer = common_pb2.Customer(
        name=name, attributes=attrs, exclusions=[common_pb2.Exclusion(kind=kind, value=value)]
    )
    call(
        stub.CreateShop,
        pr.CreateShopRequest(shop_id=shop_id, shop=common_pb2.Shop(display_name=display)),
    )
    call(stub.GetShop, pr.GetShopRequest(name=name))
    call(
        stub.CreateCustomer,
        pr.CreateCustomerRequest(parent=name, customer_id=customer_id, customer=customer),
    )
    call(stub.GetCustomer, pr.GetCustomerRequest(name=name))
    call(
        stub.CreateCustomers,
        pr.CreateCustomersRequest(parent=name, customers=[customer], update_mask={"paths": mask}),
    )
    call(
        stub.UpdateCustomer,
        pr.UpdateCustomerRequest(customer=customer, update_mask={"paths": mask}),
    )
    call(stub.ListCustomers, pr.ListCustomersRequest(parent=name, page_size=size, page_token=token))
    call(stub.DeleteCustomer, pr.DeleteCustomerRequest(name=name))


@FUZZ
@given(
    parent=names,
    item_name=names,
    title=texts,
    price=numbers,
    attrs=attributes,
    size=int32,
    token=texts,
    count=st.integers(0, 3),
)
def test_catalog_rpcs(channel, parent, item_name, title, price, attrs, size, token, count):
    stub = catalog_service_pb2_grpc.CatalogServiceStub(channel)
    items = [
        common_pb2.Item(
            name=item_name,
            title=title,
            category=title[:10],
            price=price,
            attributes=attrs,
            out_of_stock=False,
        )
    ] * count
    call(stub.UpsertItems, cat.UpsertItemsRequest(parent=parent, items=items))
    call(stub.GetItem, cat.GetItemRequest(name=item_name))
    call(stub.ListItems, cat.ListItemsRequest(parent=parent, page_size=size, page_token=token))


@FUZZ
@given(
    parent=names,
    request_id=texts,
    customer=names,
    item_id=ids,
    kind=enum,
    value=numbers,
    seconds=st.integers(-(2**40), 2**40),
    rid=texts,
    size=int32,
    token=texts,
    count=st.integers(0, 3),
)
def test_feedback_rpcs(
    channel, parent, request_id, customer, item_id, kind, value, seconds, rid, size, token, count
):
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
    interaction = common_pb2.Interaction(
        customer=customer, item_id=item_id, type=kind, value=value, recommendation_id=rid
    )
    interaction.event_time.seconds = max(min(seconds, 253402300799), -62135596800)
    call(
        stub.RecordInteractions,
        fb.RecordInteractionsRequest(
            parent=parent, request_id=request_id, interactions=[interaction] * count
        ),
    )
    call(
        stub.ImportInteractions,
        fb.ImportInteractionsRequest(
            parent=parent, request_id=request_id, interactions=[interaction] * count
        ),
    )
    call(
        stub.ListInteractions,
        fb.ListInteractionsRequest(parent=customer, page_size=size, page_token=token),
    )


@FUZZ
@given(
    customer=names,
    item=names,
    channel_name=texts,
    cart=st.lists(ids, max_size=5),
    size=int32,
    token=texts,
    seconds=st.integers(0, 2**33),
)
def test_recommendation_rpcs(channel, customer, item, channel_name, cart, size, token, seconds):
    stub = recommendation_service_pb2_grpc.RecommendationServiceStub(channel)
    context = rec.RecommendationContext(
        channel=channel_name, device=channel_name[:5], cart_item_ids=cart
    )
    context.request_time.seconds = seconds
    call(
        stub.Recommend,
        rec.RecommendRequest(customer=customer, context=context, page_size=size, page_token=token),
    )
    call(
        stub.SimilarItems,
        rec.SimilarItemsRequest(item=item, customer=customer, page_size=size, page_token=token),
    )


@FUZZ
@given(shop=names, scope=enum, display=texts, size=int32, token=texts, name=texts)
def test_api_key_rpcs(channel, shop, scope, display, size, token, name):
    stub = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
    call(
        stub.CreateApiKey,
        keys.CreateApiKeyRequest(
            api_key=keys.ApiKey(shop=shop, scope=scope, display_name=display, name=name)
        ),
    )
    call(stub.ListApiKeys, keys.ListApiKeysRequest(shop=shop, page_size=size, page_token=token))
    call(stub.RevokeApiKey, keys.RevokeApiKeyRequest(name=name))


@given(
    name=st.one_of(st.just("shops/acme/settings"), names),
    routing=st.one_of(
        st.sampled_from(["popularity", "warm=popularity;cold=popularity", "als,", "=;"]), texts
    ),
    plugins=st.dictionaries(
        st.one_of(st.just("popularity"), st.text(max_size=20)),
        st.dictionaries(st.text(max_size=70), st.text(max_size=1100), max_size=3),
        max_size=2,
    ),
    per_category=int32,
    owned=st.lists(enum, max_size=3),
    mode=enum,
    threshold=numbers,
    repeatable=st.lists(ids, max_size=3),
    weight=numbers,
    mask=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "routing",
                    "plugin_settings",
                    "max_per_category",
                    "seen_items",
                    "interaction_weights",
                    "seen_items.owned_types",
                    "interaction_weights.purchase",
                ]
            ),
            texts,
        ),
        max_size=3,
    ),
    revision=st.integers(-(2**63), 2**63 - 1),
    size=int32,
    token=texts,
)
def test_shop_settings_rpcs(
    channel,
    name,
    routing,
    plugins,
    per_category,
    owned,
    mode,
    threshold,
    repeatable,
    weight,
    mask,
    revision,
    size,
    token,
):
    stub = shop_settings_service_pb2_grpc.ShopSettingsServiceStub(channel)
    settings_message = ss.ShopSettings(
        name=name,
        routing=routing,
        plugin_settings={k: ss.PluginSettings(values=v) for k, v in plugins.items()},
        max_per_category=per_category,
        seen_items=ss.SeenItemPolicy(
            owned_types=owned,
            repeat_purchase_mode=mode,
            repurchase_threshold=threshold,
            repeatable_item_ids=repeatable,
            repeatable_categories=repeatable,
        ),
        interaction_weights=ss.InteractionWeights(purchase=weight, quantity_exponent=weight),
    )
    call(
        stub.UpdateShopSettings,
        ss.UpdateShopSettingsRequest(settings=settings_message, update_mask={"paths": mask}),
    )
    call(stub.GetShopSettings, ss.GetShopSettingsRequest(name=name, revision=revision))
    call(
        stub.ListShopSettingsRevisions,
        ss.ListShopSettingsRevisionsRequest(parent=name, page_size=size, page_token=token),
    )
