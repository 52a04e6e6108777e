"""The profile service: shops and customer profiles (and, in the same process, the catalog)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import grpc

from kosmos.catalog import services as catalog_services
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import Service
from kosmos.profile.domain import Profiles
from kosmos.profile.servicer import ProfileServicer
from kosmos.shopconfig import known_recommenders
from kosmos.shopconfig import servicer as shop_settings
from kosmos.store import Store
from kosmos.v1 import profile_service_pb2, profile_service_pb2_grpc

SERVICE_NAME = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name

__all__ = ["SERVICE_NAME", "Profiles", "services"]


def services(
    store: Store, known_recommenders: Callable[[], Collection[str]] | None = None
) -> list[Service]:
    """What the profile process hosts: ProfileService, CatalogService and ShopSettingsService.

    Args:
        store: The store.
        known_recommenders: Names a shop's routing may use; the installed plugins by default.
    """
    if known_recommenders is None:
        known_recommenders = _installed
    servicer = ProfileServicer(Profiles(store))

    def register(server: grpc.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server)

    return [
        Service(SERVICE_NAME, register),
        *catalog_services(store),
        *shop_settings.services(store, known_recommenders),
    ]


def _installed() -> Collection[str]:
    return known_recommenders(RecommendationSettings())
