"""API keys: the ApiKeyService (operator keys only) and the rules behind it."""

from __future__ import annotations

import grpc

from kosmos.common.server import Service
from kosmos.keys.domain import ApiKeys, CreatedKey
from kosmos.keys.servicer import ApiKeyServicer
from kosmos.store import Store
from kosmos.v1 import api_key_service_pb2, api_key_service_pb2_grpc

SERVICE_NAME = api_key_service_pb2.DESCRIPTOR.services_by_name["ApiKeyService"].full_name

__all__ = ["SERVICE_NAME", "ApiKeys", "CreatedKey", "services"]


def services(store: Store) -> list[Service]:
    """The ApiKeyService, hosted by the profile process (which owns shops)."""
    servicer = ApiKeyServicer(ApiKeys(store))

    def register(server: grpc.Server) -> None:
        api_key_service_pb2_grpc.add_ApiKeyServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]
