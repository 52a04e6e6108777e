"""The profile service: shops and customer profiles (and, in the same process, the catalog)."""

from __future__ import annotations

import grpc

from kosmos.catalog import services as catalog_services
from kosmos.common.server import Service
from kosmos.keys import services as key_services
from kosmos.profile.domain import Profiles
from kosmos.profile.servicer import ProfileServicer
from kosmos.store import Store
from kosmos.v1 import profile_service_pb2, profile_service_pb2_grpc

SERVICE_NAME = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name

__all__ = ["SERVICE_NAME", "Profiles", "services"]


def services(store: Store) -> list[Service]:
    """What the profile process hosts: ProfileService, CatalogService and ApiKeyService."""
    servicer = ProfileServicer(Profiles(store))

    def register(server: grpc.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register), *catalog_services(store), *key_services(store)]
