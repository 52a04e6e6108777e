"""Plugin discovery through entry points, with fake distributions as pluggy tests do."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

from kosmos.plugin import ENTRY_POINT_GROUP, PluginLoadError, discover


@pytest.fixture
def partner_module(monkeypatch):
    module = types.ModuleType("acme_recs")
    module.create = lambda settings: ("acme", settings)
    monkeypatch.setitem(sys.modules, "acme_recs", module)
    return module


def eps(*pairs):
    return lambda: [metadata.EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in pairs]


def test_a_partner_plugin_loads_like_a_builtin(partner_module):
    found = discover(
        entry_points=eps(
            ("acme", "acme_recs:create"), ("popularity", "kosmos.recommenders.popularity:create")
        )
    )
    assert set(found) == {"acme", "popularity"}
    assert found["acme"].factory({}) == ("acme", {})


def test_a_broken_plugin_is_skipped_when_not_needed(partner_module, caplog):
    found = discover(entry_points=eps(("acme", "acme_recs:create"), ("broken", "no_such_module:x")))
    assert set(found) == {"acme"}
    assert "broken" in caplog.text


def test_a_broken_plugin_that_routing_needs_fails_startup_by_name():
    with pytest.raises(PluginLoadError, match="'broken'.*failed to load.*ModuleNotFoundError"):
        discover(required=["broken"], entry_points=eps(("broken", "no_such_module:x")))


def test_a_missing_plugin_that_routing_needs_fails_startup_by_name():
    with pytest.raises(PluginLoadError, match="'lightfm'.*no installed package"):
        discover(required=["lightfm"], entry_points=eps())


def test_disabled_plugins_are_not_loaded(partner_module):
    found = discover(disabled={"acme"}, entry_points=eps(("acme", "acme_recs:create")))
    assert found == {}
    with pytest.raises(PluginLoadError, match="disabled"):
        discover(
            required=["acme"], disabled={"acme"}, entry_points=eps(("acme", "acme_recs:create"))
        )


def test_popularity_is_registered_by_the_installed_package():
    found = discover(required=["popularity"])
    assert found["popularity"].distribution == "kosmos"
