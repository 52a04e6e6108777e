"""Per-shop settings through the real gRPC API, and the resolver serving and training read
(issue 7, point 5)."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from kosmos.cli import main
from kosmos.common.config import RecommendationSettings
from kosmos.plugin.routing import Routing
from kosmos.plugin.signals import DEFAULT_WEIGHTS, Weights, to_plugin
from kosmos.shopconfig import ShopConfig, known_recommenders
from kosmos.store.records import Interaction, InteractionType
from kosmos.v1 import common_pb2, shop_settings_service_pb2, shop_settings_service_pb2_grpc
from tests.conftest import OPERATOR_KEY, start_cluster
from tests.helpers import assert_code, assert_invalid

pb = shop_settings_service_pb2
PURCHASE = InteractionType.PURCHASE


@pytest.fixture
def stub(kosmos):
    kosmos.client.create_shop("acme")
    return shop_settings_service_pb2_grpc.ShopSettingsServiceStub(kosmos.channel)


def update(stub, settings: pb.ShopSettings, *paths: str):
    settings.name = settings.name or "shops/acme/settings"
    request = pb.UpdateShopSettingsRequest(settings=settings)
    request.update_mask.paths.extend(paths)
    return request


def test_update_is_versioned_and_listable(kosmos, stub):
    client = kosmos.client
    fresh = client.get_shop_settings("acme")
    assert fresh.revision == 0 and fresh.routing == "" and not fresh.HasField("max_per_category")
    first = pb.ShopSettings(routing="warm=popularity;cold=popularity", max_per_category=5)
    first.interaction_weights.purchase = 3
    first.interaction_weights.quantity_exponent = 0.5
    first.seen_items.owned_types.append(common_pb2.INTERACTION_TYPE_PURCHASE)
    got = client.update_shop_settings(
        "acme", first, ["routing", "max_per_category", "interaction_weights", "seen_items"]
    )
    assert got.revision == 1 and got.routing == "popularity" and got.max_per_category == 5
    assert got.interaction_weights.purchase == 3
    assert not got.interaction_weights.HasField("view")  # unset: the cluster's
    # Only the masked field changes; a masked field left unset goes back to the cluster's.
    second = pb.ShopSettings(max_per_category=9, routing="ignored,not in the mask")
    got = client.update_shop_settings("acme", second, ["max_per_category"])
    assert (got.revision, got.max_per_category, got.routing) == (2, 9, "popularity")
    got = client.update_shop_settings("acme", pb.ShopSettings(), ["interaction_weights.purchase"])
    assert got.revision == 3 and not got.interaction_weights.HasField("purchase")
    assert got.interaction_weights.quantity_exponent == 0.5
    assert [r.revision for r in client.list_shop_settings_revisions("acme", page_size=2)] == [
        3,
        2,
        1,
    ]
    old = client.get_shop_settings("acme", revision=1)
    assert old.max_per_category == 5 and old.interaction_weights.purchase == 3
    assert_code(
        stub.GetShopSettings,
        pb.GetShopSettingsRequest(name="shops/acme/settings", revision=7),
        grpc.StatusCode.NOT_FOUND,
        "REVISION_NOT_FOUND",
    )
    assert_code(
        stub.GetShopSettings,
        pb.GetShopSettingsRequest(name="shops/nope/settings"),
        grpc.StatusCode.NOT_FOUND,
        "SHOP_NOT_FOUND",
    )


@pytest.mark.parametrize(
    ("settings", "path", "field"),
    [
        (pb.ShopSettings(routing="warm=popularity"), "routing", "settings.routing"),
        (pb.ShopSettings(routing="nosuchplugin,popularity"), "routing", "settings.routing"),
        (
            pb.ShopSettings(plugin_settings={"nosuch": pb.PluginSettings(values={"a": "1"})}),
            "plugin_settings",
            "settings.plugin_settings['nosuch']",
        ),
        (
            pb.ShopSettings(
                plugin_settings={"popularity": pb.PluginSettings(values={"Bad Key": "1"})}
            ),
            "plugin_settings",
            "settings.plugin_settings['popularity'].values['Bad Key']",
        ),
        (
            # The plugin's own factory checks its settings.
            pb.ShopSettings(
                plugin_settings={"popularity": pb.PluginSettings(values={"half_life_days": "x"})}
            ),
            "plugin_settings",
            "settings.plugin_settings['popularity']",
        ),
        (
            pb.ShopSettings(
                plugin_settings={"popularity": pb.PluginSettings(values={"factors": "8"})}
            ),
            "plugin_settings",
            "settings.plugin_settings['popularity']",
        ),
        (pb.ShopSettings(max_per_category=0), "max_per_category", "settings.max_per_category"),
        (pb.ShopSettings(list_length=0), "list_length", "settings.list_length"),
        (pb.ShopSettings(list_length=201), "list_length", "settings.list_length"),
        (
            pb.ShopSettings(
                seen_items=pb.SeenItemPolicy(
                    owned_types=[
                        common_pb2.INTERACTION_TYPE_PURCHASE,
                        common_pb2.INTERACTION_TYPE_UNSPECIFIED,
                    ]
                )
            ),
            "seen_items",
            "settings.seen_items.owned_types[1]",
        ),
        (
            pb.ShopSettings(seen_items=pb.SeenItemPolicy(repurchase_threshold=1.5)),
            "seen_items.repurchase_threshold",
            "settings.seen_items.repurchase_threshold",
        ),
        (
            pb.ShopSettings(seen_items=pb.SeenItemPolicy(repeatable_item_ids=["ok", "bad id!"])),
            "seen_items",
            "settings.seen_items.repeatable_item_ids[1]",
        ),
        (
            pb.ShopSettings(interaction_weights=pb.InteractionWeights(click=-1)),
            "interaction_weights",
            "settings.interaction_weights.click",
        ),
        (
            pb.ShopSettings(interaction_weights=pb.InteractionWeights(quantity_exponent=2)),
            "interaction_weights.quantity_exponent",
            "settings.interaction_weights.quantity_exponent",
        ),
        (pb.ShopSettings(), "seen_items.colour", "update_mask.paths[0]"),
        (pb.ShopSettings(name="shops/acme"), "routing", "settings.name"),
    ],
)
def test_bad_settings_name_the_field(kosmos, stub, settings, path, field):
    assert_invalid(stub.UpdateShopSettings, update(stub, settings, path), field)
    assert kosmos.client.get_shop_settings("acme").revision == 0  # nothing stored


def test_routing_may_name_the_clusters_recommenders(kosmos, stub):
    installed = known_recommenders(RecommendationSettings())
    assert "popularity" in installed and "nosuchplugin" not in installed
    remote = known_recommenders(
        RecommendationSettings(remote={"partner": "127.0.0.1:1"}, disabled=frozenset({"bpr"}))
    )
    assert "partner" in remote and "bpr" not in remote
    assert remote["partner"] is None  # out of process: its settings cannot be checked here
    assert remote["popularity"] is not None
    got = kosmos.client.update_shop_settings(
        "acme",
        pb.ShopSettings(
            routing="warm=popularity;cold=popularity;product=popularity",
            plugin_settings={"popularity": pb.PluginSettings(values={"half_life_days": "3"})},
        ),
        ["routing", "plugin_settings"],
    )
    assert got.routing == "warm=popularity;cold=popularity;product=popularity"
    assert dict(got.plugin_settings["popularity"].values) == {"half_life_days": "3"}


def test_settings_for_applies_the_shop_over_the_cluster(kosmos):
    client, store = kosmos.client, kosmos.store
    client.create_shop("acme")
    client.create_shop("other")
    defaults = RecommendationSettings(
        routing=Routing.parse("warm=popularity;cold=popularity"),
        max_per_category=3,
        plugin_settings={"popularity": {"half_life_days": "14", "category_boost": "2"}},
        weights=Weights(purchase=8.0),
        repeatable_categories=frozenset({"Pets"}),
    )
    config = ShopConfig(store, defaults)
    before = config.settings_for("acme")
    assert before.revision == 0 and before.max_per_category == 3
    assert before.weights is DEFAULT_WEIGHTS
    assert config.settings_for("acme") is before  # cached while the revision stands
    change = pb.ShopSettings(
        max_per_category=1,
        plugin_settings={"popularity": pb.PluginSettings(values={"half_life_days": "2"})},
        seen_items=pb.SeenItemPolicy(
            repeat_purchase_mode=pb.REPEAT_PURCHASE_MODE_NEVER,
            repeatable_item_ids=["sku-1"],
            owned_types=[common_pb2.INTERACTION_TYPE_PURCHASE],
        ),
        interaction_weights=pb.InteractionWeights(purchase=2, quantity_exponent=1),
    )
    client.update_shop_settings(
        "acme", change, ["max_per_category", "plugin_settings", "seen_items", "interaction_weights"]
    )
    after = config.settings_for("acme")  # the next request sees the new revision
    assert after.revision == 1 and after.max_per_category == 1
    assert after.routing == defaults.routing  # unset: the cluster's
    assert dict(after.plugin_settings["popularity"]) == {
        "half_life_days": "2",
        "category_boost": "2",
    }
    policy = after.seen_items
    assert policy.owned_types == {PURCHASE} and policy.repeat_purchase == "never"
    assert policy.offered_again("sku-1", "Toys", learned=False)
    assert policy.offered_again("sku-2", "Pets", learned=False)  # the cluster's category
    assert not policy.offered_again("sku-2", "Toys", learned=True)  # never: learning is off
    assert policy.excluded({"sku-1", "sku-2", "sku-3"}, frozenset({"sku-3"})) == {"sku-2", "sku-3"}
    assert after.weights == Weights(purchase=2.0, quantity_exponent=1.0)
    bought = Interaction("acme", "alice", "sku-1", PURCHASE, 0.0, value=3.0)
    assert to_plugin(bought, after.weights).weight == 6.0  # 2 × 3^1
    assert to_plugin(bought).weight == 8.0  # the module defaults: quantity does not count
    assert config.settings_for("other").revision == 0  # one shop's settings stay its own
    assert config.settings_for("nope").max_per_category == 3  # unknown shop: the cluster's
    learned = dataclasses.replace(policy, repeat_purchase="learned", repurchase_threshold=0.3)
    assert learned.offered_again("sku-3", "Toys", learned=True)
    assert not learned.offered_again("sku-3", "Toys", learned=False)


def test_a_rating_may_weigh_the_same_whatever_its_stars():
    settings = RecommendationSettings.from_env(
        {"KOSMOS_INTERACTION_WEIGHTS": "rating=1,rating_per_star=0"}
    )
    rated = Interaction("s", "c", "i", InteractionType.RATING, 0.0, value=4.0)
    assert to_plugin(rated, settings.weights).weight == 1.0
    assert to_plugin(rated).weight == 4.0  # the default: per star


def test_cluster_weights_come_from_the_environment():
    settings = RecommendationSettings.from_env(
        {"KOSMOS_INTERACTION_WEIGHTS": "purchase=3,view=0.5", "KOSMOS_QUANTITY_EXPONENT": "0.5"}
    )
    assert settings.weights == Weights(view=0.5, purchase=3.0, quantity_exponent=0.5)
    assert RecommendationSettings.from_env({}).weights is DEFAULT_WEIGHTS
    bought = Interaction("s", "c", "i", PURCHASE, 0.0, value=4.0)
    assert to_plugin(bought, settings.weights).weight == 6.0  # 3 × 4^0.5


def run_cli(address: str, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--target", address, "--api-key", OPERATOR_KEY, *args], env={})
    out = capsys.readouterr()
    return code, out.out, out.err.replace("\n", "")


def test_kosmos_settings_cli(kosmos, capsys):
    kosmos.client.create_shop("demo")
    address = kosmos.address
    code, out, err = run_cli(
        address,
        capsys,
        "settings",
        "set",
        "demo",
        "routing=warm=popularity;cold=popularity",
        "max_per_category=4",
        "interaction_weights.purchase=3",
        "seen_items.owned_types=purchase,rating",
        "seen_items.repeat_purchase_mode=always",
        "plugin_settings.popularity.half_life_days=7",
    )
    assert code == 0, err
    assert "settings revision 1" in out
    code, out, err = run_cli(
        address, capsys, "settings", "set", "demo", "plugin_settings.popularity.category_boost=0"
    )
    assert code == 0, err
    got = kosmos.client.get_shop_settings("demo")
    assert dict(got.plugin_settings["popularity"].values) == {
        "half_life_days": "7",
        "category_boost": "0",
    }
    assert got.seen_items.repeat_purchase_mode == pb.REPEAT_PURCHASE_MODE_ALWAYS
    code, out, err = run_cli(address, capsys, "settings", "unset", "demo", "max_per_category")
    assert code == 0 and "settings revision 3" in out
    code, out, _ = run_cli(address, capsys, "settings", "get", "demo", "--revision", "1")
    assert code == 0 and '"max_per_category": 4' in out
    code, out, _ = run_cli(address, capsys, "settings", "history", "demo")
    assert code == 0 and all(f" {n} " in out for n in (1, 2, 3))
    code, _, err = run_cli(address, capsys, "settings", "set", "demo", "routing=nosuch")
    assert code == 1 and "UNKNOWN_RECOMMENDER" in err and "settings.routing" in err
    code, _, err = run_cli(address, capsys, "settings", "set", "demo", "colour=red")
    assert code == 2 and "not a setting" in err


def test_a_cluster_with_remote_plugins_accepts_them_in_routing(store):
    from kosmos.plugin import LoadedPlugin
    from kosmos.recommenders.popularity import create

    plugins = {
        "popularity": LoadedPlugin("popularity", create, "kosmos"),
        "partner": LoadedPlugin("partner", create, "acme"),
    }
    c = start_cluster(store, plugins=plugins)
    try:
        c.client.create_shop("acme")
        got = c.client.update_shop_settings(
            "acme", pb.ShopSettings(routing="partner,popularity"), ["routing"]
        )
        assert got.routing == "partner,popularity"
    finally:
        c.client.close()
        c.channel.close()
        c.server.stop(None).wait()
