"""ApiKeyService over gRPC: proto <-> domain and request validation."""

from __future__ import annotations

import re
from typing import Any

from kosmos.common.auth import Scope
from kosmos.common.errors import InvalidArgument
from kosmos.common.names import (
    decode_page_token,
    encode_page_token,
    page_size,
    parse_shop,
    shop_name,
)
from kosmos.common.timestamps import to_timestamp
from kosmos.keys.domain import ApiKeys
from kosmos.store.records import ApiKey
from kosmos.v1 import api_key_service_pb2 as pb
from kosmos.v1 import api_key_service_pb2_grpc

_KEY_NAME = re.compile(r"apiKeys/([0-9a-f]{16})")
MAX_DISPLAY_NAME = 200


def key_to_proto(key: ApiKey) -> pb.ApiKey:
    message = pb.ApiKey(
        name=f"apiKeys/{key.key_id}",
        shop=shop_name(key.shop_id) if key.shop_id else "",
        scope=pb.ApiKeyScope.ValueType(Scope.parse(key.scope).value),
        display_name=key.display_name,
        create_time=to_timestamp(key.create_time),
    )
    if key.revoke_time is not None:
        message.revoke_time.CopyFrom(to_timestamp(key.revoke_time))
    return message


class ApiKeyServicer(api_key_service_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    def CreateApiKey(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        key = request.api_key
        if key.scope == pb.API_KEY_SCOPE_UNSPECIFIED:
            raise InvalidArgument("api_key.scope", "UNSPECIFIED_ENUM", "must be set")
        if key.scope not in Scope._value2member_map_:
            raise InvalidArgument("api_key.scope", "UNKNOWN_ENUM", f"unknown value {key.scope}")
        if len(key.display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgument(
                "api_key.display_name", "TOO_LONG", f"must be at most {MAX_DISPLAY_NAME}"
            )
        shop_id = parse_shop(key.shop, "api_key.shop") if key.shop else ""
        created = self.keys.create(shop_id, Scope(key.scope), key.display_name)
        return pb.CreateApiKeyResponse(api_key=key_to_proto(created.key), secret=created.secret)

    def ListApiKeys(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.shop, "shop") if request.shop else None
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, "api-keys|" + request.shop)
        after = str(cursor["after"]) if cursor else ""
        found = self.keys.list(shop_id, after, size + 1)
        token = ""
        if len(found) > size:
            found = found[:size]
            token = encode_page_token("api-keys|" + request.shop, {"after": found[-1].key_id})
        return pb.ListApiKeysResponse(
            api_keys=[key_to_proto(k) for k in found], next_page_token=token
        )

    def RevokeApiKey(self, request: Any, context: Any) -> Any:  # noqa: N802
        if not request.name:
            raise InvalidArgument("name", "MISSING_FIELD", "is required")
        match = _KEY_NAME.fullmatch(request.name)
        if match is None:
            raise InvalidArgument("name", "INVALID_NAME", "must look like apiKeys/{key}")
        return pb.RevokeApiKeyResponse(api_key=key_to_proto(self.keys.revoke(match.group(1))))
