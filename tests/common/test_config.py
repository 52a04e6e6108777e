"""Configuration from the environment: defaults, bad values named, the README in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kosmos.common import config
from kosmos.common.config import ConfigError, RecommendationSettings, ServerConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    c = ServerConfig.from_env(config.KOSMOS_FEEDBACK_LISTEN, "0.0.0.0:50062", {})
    assert (c.listen, c.database_url, c.workers, c.grace_seconds) == (
        "0.0.0.0:50062",
        "sqlite:///kosmos.db",
        4,
        5.0,
    )
    r = RecommendationSettings.from_env({})
    assert r.routing.chain(True) == ("popularity",) == r.routing.chain(False)
    assert r.max_per_category == 3
    assert r.list_length == 50


def test_values_are_read():
    env = {
        "KOSMOS_FEEDBACK_LISTEN": "127.0.0.1:9",
        "KOSMOS_WORKERS": "6",
        "KOSMOS_ROUTING": "als, popularity",
        "KOSMOS_DISABLED_RECOMMENDERS": "bpr",
        "KOSMOS_PLUGIN__ALS__FACTORS": "32",
        "KOSMOS_LIST_LENGTH": "20",
    }
    c = ServerConfig.from_env(config.KOSMOS_FEEDBACK_LISTEN, "x:1", env)
    r = RecommendationSettings.from_env(env)
    assert (c.listen, c.workers) == ("127.0.0.1:9", 6)
    assert r.routing.warm == ("als", "popularity") == r.routing.cold
    assert r.disabled == {"bpr"}
    assert r.plugin_settings == {"als": {"factors": "32"}}
    assert r.list_length == 20


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KOSMOS_WORKERS": "zero"}, "KOSMOS_WORKERS"),
        ({"KOSMOS_WORKERS": "-1"}, "KOSMOS_WORKERS"),
        ({"KOSMOS_GRACE_SECONDS": "-2"}, "KOSMOS_GRACE_SECONDS"),
        ({"KOSMOS_FEEDBACK_LISTEN": "nowhere"}, "KOSMOS_FEEDBACK_LISTEN"),
        ({"KOSMOS_DATABASE_URL": "mysql://x"}, "KOSMOS_DATABASE_URL"),
    ],
)
def test_bad_server_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        ServerConfig.from_env(config.KOSMOS_FEEDBACK_LISTEN, "0.0.0.0:1", env)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KOSMOS_ROUTING": " , "}, "KOSMOS_ROUTING"),
        ({"KOSMOS_ROUTING": "a b"}, "KOSMOS_ROUTING"),
        ({"KOSMOS_ROUTING": "warm=als"}, "KOSMOS_ROUTING"),
        ({"KOSMOS_ROUTING": "hot=als;cold=lightfm"}, "KOSMOS_ROUTING"),
        ({"KOSMOS_MAX_PER_CATEGORY": "0"}, "KOSMOS_MAX_PER_CATEGORY"),
        ({"KOSMOS_LIST_LENGTH": "0"}, "KOSMOS_LIST_LENGTH"),
        ({"KOSMOS_LIST_LENGTH": "201"}, "KOSMOS_LIST_LENGTH"),
        ({"KOSMOS_PLUGIN__ALS": "1"}, "KOSMOS_PLUGIN__ALS"),
    ],
)
def test_bad_recommendation_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        RecommendationSettings.from_env(env)


def test_the_readme_documents_every_variable():
    documented = set(re.findall(r"`(KOSMOS_[A-Z_]+?)(?:<|`)", (ROOT / "README.md").read_text()))
    declared = {
        v for k, v in vars(config).items() if k.startswith("KOSMOS_") and isinstance(v, str)
    }
    assert declared - documented == set(), "add these to the README's configuration table"


def test_security_settings(tmp_path):
    key_file = tmp_path / "bootstrap"
    key_file.write_text("k" * 40 + "\n")
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    env = {
        "KOSMOS_BOOTSTRAP_KEY_FILE": str(key_file),
        "KOSMOS_REFLECTION": "true",
        "KOSMOS_SECRET": "s" * 16,
        "KOSMOS_TLS_CERT": str(cert),
        "KOSMOS_TLS_KEY": str(cert),
        "KOSMOS_TLS_CA": str(cert),
    }
    c = ServerConfig.from_env(config.KOSMOS_CLUSTER_LISTEN, "127.0.0.1:50051", env)
    assert (c.bootstrap_key, c.reflection, c.secret) == ("k" * 40, True, "s" * 16)
    assert c.tls is not None and c.tls.cert == str(cert) and c.client_tls is not None
    assert "k" * 40 not in repr(c) and "s" * 16 not in repr(c)  # secrets stay out of logs
    plain = ServerConfig.from_env(config.KOSMOS_CLUSTER_LISTEN, "127.0.0.1:50051", {})
    assert (plain.bootstrap_key, plain.reflection, plain.tls, plain.client_tls) == (
        "",
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KOSMOS_BOOTSTRAP_KEY": "short"}, "KOSMOS_BOOTSTRAP_KEY"),
        ({"KOSMOS_BOOTSTRAP_KEY_FILE": "/no/such/file"}, "KOSMOS_BOOTSTRAP_KEY_FILE"),
        ({"KOSMOS_SECRET": "short"}, "KOSMOS_SECRET"),
        ({"KOSMOS_REFLECTION": "maybe"}, "KOSMOS_REFLECTION"),  # (not a secret: echoed)
        ({"KOSMOS_TLS_CERT": "/no/such.pem"}, "KOSMOS_TLS_CERT"),
        ({"KOSMOS_TLS_CLIENT_CERT": __file__}, "KOSMOS_TLS_CLIENT_KEY"),
    ],
)
def test_bad_security_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable) as caught:
        ServerConfig.from_env(config.KOSMOS_CLUSTER_LISTEN, "127.0.0.1:1", env)
    assert "short" not in str(caught.value)  # a secret's value is never echoed


def test_the_default_addresses_are_loopback():
    documented = [
        config.KOSMOS_CLUSTER_LISTEN,
        config.KOSMOS_PROFILE_LISTEN,
        config.KOSMOS_FEEDBACK_LISTEN,
        config.KOSMOS_RECOMMENDATION_LISTEN,
    ]
    readme = (ROOT / "README.md").read_text()
    for name in documented:
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{name}`")]
        assert "`127.0.0.1:" in row
