"""MerchantRulesService over gRPC: proto <-> rules document, validated on write (issue 13).

The document is ``{"rules": [rule, ...]}`` with each rule as `kosmos.recommendation.rules`
reads it. Stored as the store's versioned document kind ``rules``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import grpc

from kosmos.common.errors import InvalidArgument, NotFound
from kosmos.common.names import (
    check_resource_id,
    check_shop_id,
    decode_page_token,
    encode_page_token,
    page_size,
    shop_name,
)
from kosmos.common.server import Service
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.recommendation.rules import BOOST, EXCLUDE, FILTER, PIN
from kosmos.shopconfig.documents import RULES
from kosmos.store import Store
from kosmos.store.records import ShopSettingsRevision
from kosmos.v1 import rules_service_pb2, rules_service_pb2_grpc

pb = rules_service_pb2
MAX_RULES = 200
MAX_MATCH_VALUES = 1000
MAX_TEXT = 512
MAX_FACTOR = 100.0
MAX_SLOT = 100
RULE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_PLACEMENT = re.compile(r"[a-z][a-z0-9_]{0,39}")
ACTIONS = {
    pb.RULE_ACTION_FILTER: FILTER,
    pb.RULE_ACTION_EXCLUDE: EXCLUDE,
    pb.RULE_ACTION_BOOST: BOOST,
    pb.RULE_ACTION_PIN: PIN,
}
_ACTION_CODES = {v: k for k, v in ACTIONS.items()}


def rules_name(shop_id: str) -> str:
    return f"{shop_name(shop_id)}/rules"


def parse_rules_name(name: str, field: str) -> str:
    """``shops/{shop}/rules`` → the shop id; INVALID_ARGUMENT naming ``field`` otherwise."""
    if not name:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "shops" or parts[2] != "rules":
        raise InvalidArgument(field, "INVALID_NAME", "must look like shops/{shop}/rules")
    return check_shop_id(parts[1], field)


def _texts(values: Any, field: str) -> list[str]:
    if len(values) > MAX_MATCH_VALUES:
        raise InvalidArgument(field, "TOO_MANY_ENTRIES", f"takes at most {MAX_MATCH_VALUES}")
    for n, v in enumerate(values):
        if not v or len(v) > MAX_TEXT:
            raise InvalidArgument(
                f"{field}[{n}]", "INVALID_VALUE", f"must be 1 to {MAX_TEXT} characters"
            )
    return sorted(set(values))


def rule_from_proto(m: Any, field: str) -> dict[str, Any]:
    """One MerchantRule, validated, as its document; INVALID_ARGUMENT names the field."""
    if not m.rule_id:
        raise InvalidArgument(f"{field}.rule_id", "MISSING_FIELD", "is required")
    if not RULE_ID.fullmatch(m.rule_id):
        raise InvalidArgument(
            f"{field}.rule_id", "INVALID_ID", "must be 1-63 of a-z, 0-9, '-' and '_'"
        )
    if m.action == pb.RULE_ACTION_UNSPECIFIED:
        raise InvalidArgument(f"{field}.action", "UNSPECIFIED_ENUM", "must be set")
    if m.action not in ACTIONS:
        raise InvalidArgument(f"{field}.action", "UNKNOWN_ENUM", f"unknown value {m.action}")
    action = ACTIONS[m.action]
    d: dict[str, Any] = {"rule_id": m.rule_id, "action": action}
    if m.display_name:
        d["display_name"] = m.display_name
    match: dict[str, Any] = {}
    ids = [
        check_resource_id(v, f"{field}.match.item_ids[{n}]") for n, v in enumerate(m.match.item_ids)
    ]
    if len(ids) > MAX_MATCH_VALUES:
        raise InvalidArgument(
            f"{field}.match.item_ids", "TOO_MANY_ENTRIES", f"takes at most {MAX_MATCH_VALUES}"
        )
    if ids:
        match["item_ids"] = list(dict.fromkeys(ids))  # a pin's order is its slots' order
    for key in ("categories", "brands"):
        values = _texts(getattr(m.match, key), f"{field}.match.{key}")
        if values:
            match[key] = values
    if m.match.attributes:
        for key, value in m.match.attributes.items():
            if not key or len(key) > 64 or len(value) > MAX_TEXT:
                raise InvalidArgument(
                    f"{field}.match.attributes[{key!r}]",
                    "INVALID_VALUE",
                    f"keys are 1-64 characters, values at most {MAX_TEXT}",
                )
        match["attributes"] = dict(sorted(m.match.attributes.items()))
    for key in ("min_price", "max_price"):
        if m.match.HasField(key):
            value = float(getattr(m.match, key))
            if not (math.isfinite(value) and value >= 0):
                raise InvalidArgument(
                    f"{field}.match.{key}", "INVALID_PRICE", "must be a finite number >= 0"
                )
            match[key] = value
    if "min_price" in match and "max_price" in match and match["min_price"] > match["max_price"]:
        raise InvalidArgument(
            f"{field}.match.max_price", "INVALID_PRICE", "must not be below min_price"
        )
    if match:
        d["match"] = match
    placements = list(m.placements)
    for n, p in enumerate(placements):
        if not _PLACEMENT.fullmatch(p):
            raise InvalidArgument(
                f"{field}.placements[{n}]",
                "INVALID_VALUE",
                "must be 1-40 of a-z, 0-9 and '_', starting with a letter",
            )
    if placements:
        d["placements"] = sorted(set(placements))
    for key in ("start_time", "end_time"):
        if m.HasField(key):
            d[key] = to_seconds(getattr(m, key))
    if "start_time" in d and "end_time" in d and d["end_time"] <= d["start_time"]:
        raise InvalidArgument(f"{field}.end_time", "INVALID_VALUE", "must be after start_time")
    if action == BOOST:
        if not (math.isfinite(m.factor) and 0 < m.factor <= MAX_FACTOR):
            raise InvalidArgument(
                f"{field}.factor",
                "INVALID_VALUE",
                f"a boost needs a factor above 0 and at most {MAX_FACTOR:g} (below 1: a bury)",
            )
        d["factor"] = float(m.factor)
    elif m.factor:
        raise InvalidArgument(f"{field}.factor", "INVALID_VALUE", "only a boost takes a factor")
    if action == PIN:
        if not ids:
            raise InvalidArgument(
                f"{field}.match.item_ids", "MISSING_FIELD", "a pin names the items to pin"
            )
        if set(match) != {"item_ids"}:
            raise InvalidArgument(
                f"{field}.match", "INVALID_VALUE", "a pin matches by item_ids only"
            )
        if not 0 <= m.slot <= MAX_SLOT:
            raise InvalidArgument(f"{field}.slot", "INVALID_VALUE", f"must be 1 to {MAX_SLOT}")
        d["slot"] = max(1, int(m.slot))
    elif m.slot:
        raise InvalidArgument(f"{field}.slot", "INVALID_VALUE", "only a pin takes a slot")
    if m.disabled:
        d["disabled"] = True
    return d


def rules_from_proto(messages: Any, field: str) -> list[dict[str, Any]]:
    if len(messages) > MAX_RULES:
        raise InvalidArgument(field, "TOO_MANY_ENTRIES", f"takes at most {MAX_RULES}")
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, m in enumerate(messages):
        rule = rule_from_proto(m, f"{field}[{n}]")
        if rule["rule_id"] in seen:
            raise InvalidArgument(
                f"{field}[{n}].rule_id", "DUPLICATE_RULE", f"{rule['rule_id']!r} is used twice"
            )
        seen.add(rule["rule_id"])
        found.append(rule)
    return found


def rule_to_proto(d: Mapping[str, Any]) -> Any:
    match = d.get("match") or {}
    m = pb.MerchantRule(
        rule_id=d["rule_id"],
        display_name=d.get("display_name", ""),
        action=_ACTION_CODES[d["action"]],
        match=pb.ItemMatch(
            item_ids=match.get("item_ids", ()),
            categories=match.get("categories", ()),
            brands=match.get("brands", ()),
            attributes=match.get("attributes", {}),
        ),
        placements=d.get("placements", ()),
        factor=d.get("factor", 0.0),
        slot=d.get("slot", 0),
        disabled=bool(d.get("disabled")),
    )
    for key in ("min_price", "max_price"):
        if match.get(key) is not None:
            setattr(m.match, key, match[key])
    for key in ("start_time", "end_time"):
        if d.get(key) is not None:
            getattr(m, key).CopyFrom(to_timestamp(d[key]))
    return m


def to_proto(revision: ShopSettingsRevision) -> Any:
    return pb.MerchantRules(
        name=rules_name(revision.shop_id),
        rules=[rule_to_proto(r) for r in revision.document.get("rules") or ()],
        revision=revision.revision,
        update_time=to_timestamp(revision.create_time),
    )


class MerchantRulesServicer(rules_service_pb2_grpc.MerchantRulesServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    def _shop(self, shop_id: str) -> float:
        shop = self.store.get_shop(shop_id)
        if shop is None:
            raise NotFound("shop", shop_name(shop_id))
        return shop.create_time

    def GetMerchantRules(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        shop_id = parse_rules_name(request.name, "name")
        if request.revision < 0:
            raise InvalidArgument("revision", "INVALID_VALUE", "must not be negative")
        stored = self.store.get_document(shop_id, RULES, request.revision)
        if stored is None:
            created = self._shop(shop_id)
            if request.revision:
                raise NotFound(
                    "rules revision",
                    f"{rules_name(shop_id)}@{request.revision}",
                    reason="REVISION_NOT_FOUND",
                )
            stored = ShopSettingsRevision(shop_id, 0, {}, created)
        return pb.GetMerchantRulesResponse(rules=to_proto(stored))

    def UpdateMerchantRules(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_rules_name(request.rules.name, "rules.name")
        document = {"rules": rules_from_proto(request.rules.rules, "rules.rules")}
        stored = self.store.put_document(shop_id, RULES, document)
        return pb.UpdateMerchantRulesResponse(rules=to_proto(stored))

    def ListMerchantRulesRevisions(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_rules_name(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        before = int(cursor["before"]) if cursor else None
        self._shop(shop_id)
        found = self.store.list_documents(shop_id, RULES, before, size + 1)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = encode_page_token(request.parent, {"before": found[-1].revision})
        return pb.ListMerchantRulesRevisionsResponse(
            revisions=[to_proto(r) for r in found], next_page_token=token
        )


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MerchantRulesService"].full_name


def services(store: Store) -> list[Service]:
    servicer = MerchantRulesServicer(store)

    def register(server: grpc.Server) -> None:
        rules_service_pb2_grpc.add_MerchantRulesServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]
