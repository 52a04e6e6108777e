"""The `kosmos` command against a real in-process cluster."""

from __future__ import annotations

import argparse
import inspect
import json
import re

from kosmos.cli import main, parser
from tests.helpers import small_shop


def run(kosmos, capsys, *args):
    code = main(["--target", kosmos.address, "--api-key", kosmos.operator_key, *args], env={})
    out = capsys.readouterr()
    return code, out.out, out.err


def test_recommend_feedback_profile_similar(kosmos, capsys):
    small_shop(kosmos.client)
    code, out, _ = run(
        kosmos, capsys, "feedback", "acme", "alice", "i05", "purchase", "--value", "2"
    )
    assert code == 0 and "recorded shops/acme/customers/alice/interactions/1" in out
    code, out, _ = run(kosmos, capsys, "recommend", "acme", "alice", "-n", "3")
    assert code == 0 and "Offers for alice" in out and "popularity" in out
    assert "recommendation_id:" in out
    code, out, _ = run(kosmos, capsys, "profile", "acme", "alice")
    assert code == 0 and "country" in out and "purchase" in out and "i05" in out
    code, out, _ = run(kosmos, capsys, "similar", "acme", "i05", "-n", "2")
    assert code == 0 and "Like i05" in out


def test_errors_are_one_readable_line(kosmos, capsys):
    small_shop(kosmos.client)
    code, _, err = run(kosmos, capsys, "recommend", "acme", "nobody")
    assert code == 1
    assert "NOT_FOUND" in err and "CUSTOMER_NOT_FOUND" in err and "Traceback" not in err
    code, _, err = run(kosmos, capsys, "feedback", "acme", "alice", "bad item!", "view")
    assert code == 1 and "interactions[0].item_id" in err


def test_keys_create_list_revoke(kosmos, capsys):
    small_shop(kosmos.client)
    code, out, _ = run(kosmos, capsys, "keys", "create", "--scope", "storefront", "--shop", "acme")
    assert code == 0 and "storefront for shops/acme" in out
    secret = out.strip().splitlines()[-1]
    key_id = secret.split(".")[1]
    code, out, _ = run(kosmos, capsys, "keys", "list", "--shop", "acme")
    assert code == 0 and key_id in out and secret.split(".")[2] not in out
    code = main(["--target", kosmos.address, "--api-key", secret, "recommend", "acme", "alice"])
    assert code == 0
    capsys.readouterr()
    code, out, _ = run(kosmos, capsys, "keys", "revoke", key_id)
    assert code == 0 and f"revoked apiKeys/{key_id}" in out
    code = main(["--target", kosmos.address, "--api-key", secret, "recommend", "acme", "alice"])
    assert code == 1 and "UNAUTHENTICATED" in capsys.readouterr().err


def test_rules_and_experiments(kosmos, capsys, tmp_path):
    # Issue 13: rules from a JSON file, an experiment, and its report as a table.
    small_shop(kosmos.client)
    rules = tmp_path / "rules.json"
    rules.write_text(
        '{"rules": [{"rule_id": "pin", "action": "RULE_ACTION_PIN",'
        ' "match": {"item_ids": ["i07"]}, "slot": 1}]}'
    )
    code, out, _ = run(kosmos, capsys, "rules", "set", "acme", str(rules))
    assert code == 0 and "revision 1, 1 rules" in out
    code, out, _ = run(kosmos, capsys, "rules", "get", "acme")
    assert code == 0 and '"rule_id": "pin"' in out
    exp = tmp_path / "exp.json"
    exp.write_text('{"variants": [{"variant_id": "control"}, {"variant_id": "b"}]}')
    code, out, _ = run(kosmos, capsys, "experiments", "create", "acme", "ab", str(exp))
    assert code == 0 and "EXPERIMENT_STATE_RUNNING" in out
    page = kosmos.client.recommend("acme", "alice", page_size=3)
    kosmos.client.record_impressions(
        "acme", "alice", page.recommendation_id, [o.item.rsplit("/", 1)[1] for o in page.offers]
    )
    code, out, _ = run(kosmos, capsys, "experiments", "report", "acme", "ab")
    assert code == 0 and "control" in out and "z-test" in out and "Welch" in out
    code, out, _ = run(kosmos, capsys, "experiments", "end", "acme", "ab")
    assert code == 0 and "EXPERIMENT_STATE_ENDED" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"rules": [{"rule_id": "x", "action": "RULE_ACTION_BOOST"}]}')
    code, _, err = run(kosmos, capsys, "rules", "set", "acme", str(bad))
    assert code == 1 and "rules.rules[0].factor" in err


def _json(kosmos, capsys, *args):
    code, out, err = run(kosmos, capsys, *args)
    assert code == 0, err
    return json.loads(out)  # stdout is one JSON document, nothing else


def test_json_on_every_command(kosmos, capsys, tmp_path):
    # Issue 14: scripts read --json output; it may come before or after the subcommand.
    small_shop(kosmos.client)
    stored = _json(kosmos, capsys, "--json", "feedback", "acme", "alice", "i05", "purchase")
    assert stored["item_id"] == "i05" and stored["type"] == "INTERACTION_TYPE_PURCHASE"
    offers = _json(kosmos, capsys, "recommend", "acme", "alice", "-n", "3", "--json")
    assert len(offers["offers"]) == 3 and offers["recommendation_id"]
    assert all(o["reason"] and o["item"].startswith("shops/acme/items/") for o in offers["offers"])
    similar = _json(kosmos, capsys, "--json", "similar", "acme", "i05", "-n", "2")
    assert len(similar["offers"]) == 2
    profile = _json(kosmos, capsys, "--json", "profile", "acme", "alice")
    assert profile["customer"]["attributes"] == {"country": "UK"}
    assert [i["item_id"] for i in profile["interactions"]] == ["i05"]
    created = _json(
        kosmos, capsys, "--json", "keys", "create", "--scope", "storefront", "--shop", "acme"
    )
    assert created["secret"].startswith("ksk.") and created["api_key"]["shop"] == "shops/acme"
    listed = _json(kosmos, capsys, "keys", "list", "--shop", "acme", "--json")
    assert [k["name"] for k in listed] == [created["api_key"]["name"]]
    revoked = _json(kosmos, capsys, "--json", "keys", "revoke", created["api_key"]["name"])
    assert "revoke_time" in revoked
    changed = _json(kosmos, capsys, "--json", "settings", "set", "acme", "max_per_category=4")
    assert changed["max_per_category"] == 4 and changed["revision"] == "1"
    assert _json(kosmos, capsys, "--json", "settings", "get", "acme")["max_per_category"] == 4
    assert [
        r["revision"] for r in _json(kosmos, capsys, "--json", "settings", "history", "acme")
    ] == ["1"]
    assert _json(kosmos, capsys, "--json", "models", "--model-dir", str(tmp_path), "list") == []


def test_json_errors_go_to_stderr_as_json(kosmos, capsys):
    small_shop(kosmos.client)
    code, out, err = run(kosmos, capsys, "--json", "feedback", "acme", "alice", "bad item!", "view")
    assert code == 1 and out == ""
    error = json.loads(err)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert [v["field"] for v in error["field_violations"]] == ["interactions[0].item_id"]


def test_every_subcommand_takes_json():
    def leaves(p, path=()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, p
        for action in subs:
            for name, child in action.choices.items():
                yield from leaves(child, (*path, name))

    commands = list(leaves(parser()))
    assert len(commands) >= 14
    for path, p in commands:
        assert any("--json" in a.option_strings for a in p._actions), path
        # A command added later must honour it too (issue 14): its code reads the flag.
        run = p.get_default("run")
        assert run is not None and re.search(r"\bjson\b", inspect.getsource(run)), path


def test_models_train_waits_for_the_new_versions(store, tmp_path, capsys):
    from kosmos.common.config import RecommendationSettings
    from tests.conftest import start_cluster

    settings = RecommendationSettings(refresh_seconds=0, model_dir=str(tmp_path / "models"))
    cluster = start_cluster(store, settings)
    try:
        small_shop(cluster.client)
        trained = _json(cluster, capsys, "--json", "models", "train", "acme", "--wait", "60")
        assert trained["recommenders"] == ["popularity"]
        [version] = trained["versions"]
        assert version["serving"] and "/recommenders/popularity/versions/" in version["name"]
    finally:
        cluster.close()
