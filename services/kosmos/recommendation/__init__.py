"""The recommendation service: offers from the routed chain of recommender plugins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from kosmos.common.config import RecommendationSettings
from kosmos.common.server import Service
from kosmos.plugin import LoadedPlugin, discover
from kosmos.recommendation.domain import Context, Recommendations
from kosmos.recommendation.model_admin import ModelAdmin, ModelServicer
from kosmos.recommendation.models import ModelHub
from kosmos.recommendation.servicer import RecommendationServicer
from kosmos.store import Store
from kosmos.training.artifacts import open_artifacts
from kosmos.training.trainer import train
from kosmos.v1 import (
    model_service_pb2,
    model_service_pb2_grpc,
    recommendation_service_pb2,
    recommendation_service_pb2_grpc,
)

SERVICE_NAME = recommendation_service_pb2.DESCRIPTOR.services_by_name[
    "RecommendationService"
].full_name

MODEL_SERVICE_NAME = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name

__all__ = [
    "MODEL_SERVICE_NAME",
    "SERVICE_NAME",
    "Built",
    "Context",
    "ModelHub",
    "Recommendations",
    "build",
    "services",
]


def load_plugins(settings: RecommendationSettings) -> dict[str, LoadedPlugin]:
    """Installed plugins (entry points) and out-of-process ones (``KOSMOS_REMOTE_RECOMMENDERS``).

    Raises:
        kosmos.plugin.PluginLoadError: A routed recommender cannot be loaded.
    """
    remote: dict[str, LoadedPlugin] = {}
    if settings.remote:
        from kosmos.plugin.remote import remote_plugins  # noqa: PLC0415 (only when configured)

        remote = remote_plugins(
            settings.remote, settings.remote_timeout_ms / 1000.0, settings.remote_tls
        )
    local = discover(
        required=[n for n in settings.routing.names if n not in remote],
        disabled=settings.disabled | set(remote),
    )
    return {**local, **remote}


@dataclass(frozen=True, slots=True)
class Built:
    """The recommendation service's parts, before any server: the domain that answers
    ``Recommend`` and ``SimilarItems``, the model hub behind it (not started) and the model
    administration (``TrainModels``)."""

    recommendations: Recommendations
    models: ModelHub
    admin: ModelAdmin


def build(
    store: Store,
    settings: RecommendationSettings,
    plugins: Mapping[str, LoadedPlugin] | None = None,
) -> Built:
    """The parts `services` serves, for a server or a benchmark of the domain in process.

    Raises:
        kosmos.plugin.PluginLoadError: A routed recommender cannot be loaded.
    """
    if plugins is None:
        plugins = load_plugins(settings)
    from kosmos.shopconfig import ShopConfig, cluster_policy  # noqa: PLC0415 (it imports us)
    from kosmos.shopconfig.documents import DocumentCache  # noqa: PLC0415 (it imports us)

    shops = ShopConfig(store, settings)
    policy = cluster_policy(settings)
    artifacts = open_artifacts(settings.model_store, settings.model_dir, store)
    trainer = None
    if settings.train_in_background and artifacts is not None:
        trained, names = artifacts, list(settings.routing.names)

        def trainer() -> object:
            return train(
                store,
                trained,
                plugins,
                names,
                settings.plugin_settings,
                None,
                settings.model_keep,
                variants=models.variant_models,
            )

    models = ModelHub(
        store,
        plugins,
        settings.routing.names,
        settings.plugin_settings,
        settings.refresh_seconds,
        artifacts=artifacts,
        fit_in_process=settings.fit_in_process,
        poll_seconds=settings.model_poll_seconds,
        seen_policy=policy,
        weights=settings.weights,
        shop_settings=shops,
        trainer=trainer,
        pins=settings.model_pins,
        documents=DocumentCache(store),
    )
    recommendations = Recommendations(
        store,
        models,
        settings.routing,
        settings.max_per_category,
        settings.recent_interactions,
        settings.repurchase_cooldown_hours,
        seen_policy=policy,
        weights=settings.weights,
        shop_settings=shops,
        list_length=settings.list_length,
    )
    admin = ModelAdmin(store, models, plugins, settings.plugin_settings, settings.model_keep)
    return Built(recommendations, models, admin)


def services(
    store: Store,
    settings: RecommendationSettings,
    plugins: Mapping[str, LoadedPlugin] | None = None,
) -> list[Service]:
    """The recommendation service, its plugins loaded and its model refresher started.

    Args:
        store: Where profiles, the catalog and interactions live.
        settings: Routing, filtering and refresh settings.
        plugins: The recommenders to route to; those installed (entry points) by default.

    Raises:
        kosmos.plugin.PluginLoadError: A routed recommender cannot be loaded.
    """
    built = build(store, settings, plugins)
    models = built.models
    servicer = RecommendationServicer(built.recommendations)

    def register(server: grpc.Server) -> None:
        recommendation_service_pb2_grpc.add_RecommendationServiceServicer_to_server(
            servicer, server
        )
        models.start()

    admin = ModelServicer(built.admin)

    def register_admin(server: grpc.Server) -> None:
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(admin, server)

    return [
        Service(SERVICE_NAME, register, stop=models.stop, ready=lambda: models.ready),
        Service(MODEL_SERVICE_NAME, register_admin),
    ]
