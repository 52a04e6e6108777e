"""The catalog: a shop's items. Hosted by the profile process."""

from __future__ import annotations

import grpc

from kosmos.catalog.domain import Catalog
from kosmos.catalog.servicer import CatalogServicer
from kosmos.common.server import Service
from kosmos.store import Store
from kosmos.v1 import catalog_service_pb2, catalog_service_pb2_grpc

SERVICE_NAME = catalog_service_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name

__all__ = ["SERVICE_NAME", "Catalog", "services"]


def services(store: Store) -> list[Service]:
    servicer = CatalogServicer(Catalog(store))

    def register(server: grpc.Server) -> None:
        catalog_service_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]
