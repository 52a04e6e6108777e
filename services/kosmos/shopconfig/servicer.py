"""ShopSettingsService over gRPC: proto <-> settings document, and validation on write."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import grpc

from kosmos.common.config import MAX_LIST_LENGTH
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    check_resource_id,
    check_shop_id,
    decode_page_token,
    encode_page_token,
    page_size,
)
from kosmos.common.server import Service
from kosmos.common.timestamps import to_timestamp
from kosmos.plugin.routing import Routing
from kosmos.shopconfig._settings import Recommenders
from kosmos.shopconfig.admin import NESTED, ShopSettingsAdmin, settings_name
from kosmos.store import Store
from kosmos.store.records import InteractionType, ShopSettingsRevision
from kosmos.v1 import common_pb2, shop_settings_service_pb2, shop_settings_service_pb2_grpc

pb = shop_settings_service_pb2
TOP = (
    "routing",
    "plugin_settings",
    "max_per_category",
    "list_length",
    "seen_items",
    "interaction_weights",
)
SEEN_FIELDS = (
    "owned_types",
    "repeat_purchase_mode",
    "repurchase_threshold",
    "repeatable_item_ids",
    "repeatable_categories",
)
WEIGHT_FIELDS = ("view", "click", "add_to_cart", "purchase", "rating", "quantity_exponent")
UPDATABLE = (
    *TOP,
    *(f"seen_items.{f}" for f in SEEN_FIELDS),
    *(f"interaction_weights.{f}" for f in WEIGHT_FIELDS),
)
MAX_WEIGHT = 1e6
MAX_PER_CATEGORY = 100
MAX_REPEATABLE = 10_000
MAX_TEXT = 512
MAX_SETTING_VALUE = 1024
_SETTING_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MODES = {
    pb.REPEAT_PURCHASE_MODE_LEARNED: "learned",
    pb.REPEAT_PURCHASE_MODE_ALWAYS: "always",
    pb.REPEAT_PURCHASE_MODE_NEVER: "never",
}
_MODE_CODES = {v: k for k, v in _MODES.items()}


def parse_settings_name(name: str, field: str) -> str:
    """``shops/{shop}/settings`` → the shop id; INVALID_ARGUMENT naming ``field`` otherwise."""
    if not name:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "shops" or parts[2] != "settings":
        raise InvalidArgument(field, "INVALID_NAME", "must look like shops/{shop}/settings")
    return check_shop_id(parts[1], field)


def to_proto(revision: ShopSettingsRevision) -> Any:
    d = revision.document
    message = pb.ShopSettings(
        name=settings_name(revision.shop_id),
        routing=d.get("routing", ""),
        plugin_settings={
            name: pb.PluginSettings(values=values)
            for name, values in (d.get("plugin_settings") or {}).items()
        },
        revision=revision.revision,
        update_time=to_timestamp(revision.create_time),
    )
    if d.get("max_per_category") is not None:
        message.max_per_category = d["max_per_category"]
    if d.get("list_length") is not None:
        message.list_length = d["list_length"]
    seen = d.get("seen_items") or {}
    message.seen_items.owned_types.extend(
        int(InteractionType[k.upper()])  # type: ignore[misc]
        for k in seen.get("owned_types", ())
    )
    if seen.get("repeat_purchase_mode"):
        message.seen_items.repeat_purchase_mode = _MODE_CODES[seen["repeat_purchase_mode"]]
    if seen.get("repurchase_threshold") is not None:
        message.seen_items.repurchase_threshold = seen["repurchase_threshold"]
    message.seen_items.repeatable_item_ids.extend(seen.get("repeatable_item_ids", ()))
    message.seen_items.repeatable_categories.extend(seen.get("repeatable_categories", ()))
    for key, value in (d.get("interaction_weights") or {}).items():
        setattr(message.interaction_weights, key, value)
    return message


class _Reader:
    """Reads one masked field of a request's settings into its document form, validated."""

    def __init__(self, settings: Any, known: Recommenders) -> None:
        self.s = settings
        self.known = known

    def read(self, path: str) -> Any:
        head, _, leaf = path.partition(".")
        if head in NESTED and not leaf:
            fields = SEEN_FIELDS if head == "seen_items" else WEIGHT_FIELDS
            part = {f: self.read(f"{head}.{f}") for f in fields}
            return {k: v for k, v in part.items() if v not in (None, [], "")} or None
        reader: Callable[[], Any] = getattr(self, "_" + path.replace(".", "__"))
        return reader()

    def _known(self, name: str, field: str) -> None:
        if name not in self.known:
            raise InvalidArgument(
                field,
                "UNKNOWN_RECOMMENDER",
                f"{name!r} is not an installed or configured recommender"
                f" (known: {', '.join(sorted(self.known))})",
            )

    def _routing(self) -> str | None:
        text = self.s.routing.strip()
        if not text:
            return None
        try:
            routing = Routing.parse(text)
        except ValueError as exc:
            raise InvalidArgument("settings.routing", "INVALID_ROUTING", str(exc)) from None
        for name in routing.names:
            self._known(name, "settings.routing")
        return str(routing)

    def _plugin_settings(self) -> dict[str, dict[str, str]] | None:
        result: dict[str, dict[str, str]] = {}
        for name, settings in self.s.plugin_settings.items():
            field = f"settings.plugin_settings[{name!r}]"
            self._known(name, field)
            for key, value in settings.values.items():
                if not _SETTING_KEY.match(key):
                    raise InvalidArgument(
                        f"{field}.values[{key!r}]",
                        "INVALID_SETTING",
                        "setting names are 1-64 of a-z, 0-9 and _, starting with a letter",
                    )
                if len(value) > MAX_SETTING_VALUE:
                    raise InvalidArgument(
                        f"{field}.values[{key!r}]",
                        "TOO_LONG",
                        f"must be at most {MAX_SETTING_VALUE} characters",
                    )
            factory = self.known[name]
            if factory is not None and settings.values:
                try:
                    factory(dict(settings.values))  # the plugin's own check of its settings
                except Exception as exc:  # noqa: BLE001 (a plugin's factory is not our code)
                    raise InvalidArgument(field, "INVALID_SETTING", str(exc)) from None
            if settings.values:
                result[name] = dict(settings.values)
        return result or None

    def _max_per_category(self) -> int | None:
        if not self.s.HasField("max_per_category"):
            return None
        value = int(self.s.max_per_category)
        if not 1 <= value <= MAX_PER_CATEGORY:
            raise InvalidArgument(
                "settings.max_per_category", "INVALID_VALUE", f"must be 1 to {MAX_PER_CATEGORY}"
            )
        return value

    def _list_length(self) -> int | None:
        if not self.s.HasField("list_length"):
            return None
        value = int(self.s.list_length)
        if not 1 <= value <= MAX_LIST_LENGTH:
            raise InvalidArgument(
                "settings.list_length", "INVALID_VALUE", f"must be 1 to {MAX_LIST_LENGTH}"
            )
        return value

    def _seen_items__owned_types(self) -> list[str] | None:
        names = []
        for n, kind in enumerate(self.s.seen_items.owned_types):
            field = f"settings.seen_items.owned_types[{n}]"
            if kind == common_pb2.INTERACTION_TYPE_UNSPECIFIED:
                raise InvalidArgument(field, "UNSPECIFIED_ENUM", "must be set")
            if kind not in InteractionType._value2member_map_:
                raise InvalidArgument(field, "UNKNOWN_ENUM", f"unknown value {kind}")
            names.append(InteractionType(kind).name.lower())
        return sorted(set(names)) or None

    def _seen_items__repeat_purchase_mode(self) -> str | None:
        mode = self.s.seen_items.repeat_purchase_mode
        if mode == pb.REPEAT_PURCHASE_MODE_UNSPECIFIED:
            return None
        if mode not in _MODES:
            raise InvalidArgument(
                "settings.seen_items.repeat_purchase_mode", "UNKNOWN_ENUM", f"unknown value {mode}"
            )
        return _MODES[mode]

    def _seen_items__repurchase_threshold(self) -> float | None:
        if not self.s.seen_items.HasField("repurchase_threshold"):
            return None
        value = self.s.seen_items.repurchase_threshold
        if not 0.0 <= value <= 1.0:
            raise InvalidArgument(
                "settings.seen_items.repurchase_threshold", "INVALID_VALUE", "must be 0 to 1"
            )
        return float(value)

    def _seen_items__repeatable_item_ids(self) -> list[str] | None:
        ids = self.s.seen_items.repeatable_item_ids
        field = "settings.seen_items.repeatable_item_ids"
        if len(ids) > MAX_REPEATABLE:
            raise InvalidArgument(field, "TOO_MANY_ENTRIES", f"takes at most {MAX_REPEATABLE}")
        return sorted({check_resource_id(v, f"{field}[{n}]") for n, v in enumerate(ids)}) or None

    def _seen_items__repeatable_categories(self) -> list[str] | None:
        values = self.s.seen_items.repeatable_categories
        field = "settings.seen_items.repeatable_categories"
        if len(values) > MAX_REPEATABLE:
            raise InvalidArgument(field, "TOO_MANY_ENTRIES", f"takes at most {MAX_REPEATABLE}")
        for n, v in enumerate(values):
            if not v or len(v) > MAX_TEXT:
                raise InvalidArgument(
                    f"{field}[{n}]", "INVALID_VALUE", f"must be 1 to {MAX_TEXT} characters"
                )
        return sorted(set(values)) or None

    def _weight(self, name: str, top: float) -> float | None:
        weights = self.s.interaction_weights
        if not weights.HasField(name):
            return None
        value = float(getattr(weights, name))
        if not (math.isfinite(value) and 0.0 <= value <= top):
            raise InvalidArgument(
                f"settings.interaction_weights.{name}", "INVALID_VALUE", f"must be 0 to {top:g}"
            )
        return value

    def _interaction_weights__view(self) -> float | None:
        return self._weight("view", MAX_WEIGHT)

    def _interaction_weights__click(self) -> float | None:
        return self._weight("click", MAX_WEIGHT)

    def _interaction_weights__add_to_cart(self) -> float | None:
        return self._weight("add_to_cart", MAX_WEIGHT)

    def _interaction_weights__purchase(self) -> float | None:
        return self._weight("purchase", MAX_WEIGHT)

    def _interaction_weights__rating(self) -> float | None:
        return self._weight("rating", MAX_WEIGHT)

    def _interaction_weights__quantity_exponent(self) -> float | None:
        return self._weight("quantity_exponent", 1.0)


class ShopSettingsServicer(shop_settings_service_pb2_grpc.ShopSettingsServiceServicer):
    def __init__(self, admin: ShopSettingsAdmin, known: Callable[[], Recommenders]) -> None:
        self.admin = admin
        self.known = known

    def GetShopSettings(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        shop_id = parse_settings_name(request.name, "name")
        if request.revision < 0:
            raise InvalidArgument("revision", "INVALID_VALUE", "must not be negative")
        return pb.GetShopSettingsResponse(
            settings=to_proto(self.admin.get(shop_id, request.revision))
        )

    def UpdateShopSettings(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_settings_name(request.settings.name, "settings.name")
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask", "MISSING_FIELD", f"name fields among {TOP}")
        for n, path in enumerate(paths):
            if path not in UPDATABLE:
                raise InvalidArgument(
                    f"update_mask.paths[{n}]",
                    "NOT_UPDATABLE",
                    f"{path!r} is not one of {', '.join(UPDATABLE)}",
                )
        reader = _Reader(request.settings, self.known())
        changes = {path: reader.read(path) for path in paths}
        return pb.UpdateShopSettingsResponse(settings=to_proto(self.admin.update(shop_id, changes)))

    def ListShopSettingsRevisions(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_settings_name(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        before = int(cursor["before"]) if cursor else None
        found = self.admin.revisions(shop_id, before, size + 1)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = encode_page_token(request.parent, {"before": found[-1].revision})
        return pb.ListShopSettingsRevisionsResponse(
            revisions=[to_proto(r) for r in found], next_page_token=token
        )


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ShopSettingsService"].full_name


def services(store: Store, known: Callable[[], Recommenders]) -> list[Service]:
    """ShopSettingsService; ``known`` gives the recommenders a shop's settings may name."""
    servicer = ShopSettingsServicer(ShopSettingsAdmin(store), known)

    def register(server: grpc.Server) -> None:
        shop_settings_service_pb2_grpc.add_ShopSettingsServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]
