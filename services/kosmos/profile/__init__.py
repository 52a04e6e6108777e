"""The profile service: shops and customer profiles (and, in the same process, the catalog)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import grpc

from kosmos.catalog import services as catalog_services
from kosmos.common.config import RecommendationSettings
from kosmos.common.server import Service
from kosmos.experiments import servicer as experiments
from kosmos.keys import services as key_services
from kosmos.profile.domain import Profiles
from kosmos.profile.servicer import ProfileServicer
from kosmos.shopconfig import Recommenders, known_recommenders
from kosmos.shopconfig import rules_servicer as merchant_rules
from kosmos.shopconfig import servicer as shop_settings
from kosmos.store import Store
from kosmos.v1 import profile_service_pb2, profile_service_pb2_grpc

SERVICE_NAME = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name

__all__ = ["SERVICE_NAME", "Profiles", "installed_recommenders", "services"]


def services(store: Store, recommenders: Callable[[], Recommenders] | None = None) -> list[Service]:
    """What the profile process hosts: ProfileService, CatalogService, ApiKeyService,
    ShopSettingsService, MerchantRulesService and ExperimentService.

    Args:
        store: The store.
        recommenders: The recommenders a shop's settings may name (asked on each settings
            update); by default the installed plugins, loaded on first use.
    """
    if recommenders is None:
        recommenders = installed_recommenders(RecommendationSettings())
    servicer = ProfileServicer(Profiles(store))

    def register(server: grpc.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server)

    return [
        Service(SERVICE_NAME, register),
        *catalog_services(store),
        *key_services(store),
        *shop_settings.services(store, recommenders),
        *merchant_rules.services(store),
        *experiments.services(store, recommenders),
    ]


def installed_recommenders(settings: RecommendationSettings) -> Callable[[], Recommenders]:
    """The installed (and remote) recommenders ``settings`` allow, found on first use: a
    profile process that never sees a settings update never imports a plugin."""
    return functools.cache(lambda: known_recommenders(settings))
