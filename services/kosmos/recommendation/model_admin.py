"""ModelService: see and steer model versions over gRPC (list, train, roll back).

Training runs on a background thread, never on the request's; a rollback changes which
version is current and the replica's loader swaps it in off the request thread too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kosmos.common.errors import FailedPrecondition, InvalidArgument, NotFound
from kosmos.common.names import (
    check_resource_id,
    decode_page_token,
    encode_page_token,
    page_size,
    parse_recommender,
    parse_shop,
    shop_name,
)
from kosmos.common.timestamps import to_timestamp
from kosmos.plugin import LoadedPlugin
from kosmos.recommendation.models import ModelHub
from kosmos.store import Store
from kosmos.training.artifacts import ArtifactError, Artifacts, Version
from kosmos.training.trainer import train
from kosmos.v1 import model_service_pb2, model_service_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listed:
    version: Version
    serving: bool


class ModelAdmin:
    """The rules behind ModelService; plain Python."""

    def __init__(
        self,
        store: Store,
        hub: ModelHub,
        plugins: Mapping[str, LoadedPlugin],
        plugin_settings: Mapping[str, Mapping[str, str]],
        keep: int,
    ) -> None:
        self.store = store
        self.hub = hub
        self.plugins = plugins
        self.plugin_settings = plugin_settings
        self.keep = keep
        self._training: set[str] = set()
        self._guard = threading.Lock()

    def _artifacts(self, shop_id: str) -> Artifacts:
        if self.store.get_shop(shop_id) is None:
            raise NotFound("shop", shop_name(shop_id))
        if self.hub.artifacts is None:
            raise FailedPrecondition(
                "NO_MODEL_STORE",
                "models are only fitted in process: set KOSMOS_MODEL_DIR or"
                " KOSMOS_MODEL_STORE=database to keep versions",
            )
        return self.hub.artifacts

    def _names(self, shop_id: str) -> list[str]:
        """The routed recommenders, then the shop's experiment variant models."""
        return list(self.hub.names) + sorted(self.hub.variant_models(shop_id))

    def _check_recommender(self, name: str, field: str, shop_id: str = "") -> None:
        if name not in self._names(shop_id):
            raise InvalidArgument(
                field,
                "UNKNOWN_RECOMMENDER",
                f"{name!r} is not routed nor a running experiment's variant model",
            )

    def versions(self, shop_id: str, recommender: str) -> list[Listed]:
        artifacts = self._artifacts(shop_id)
        names = [recommender] if recommender else self._names(shop_id)
        listed = []
        for name in names:
            current = artifacts.current(shop_id, name)
            listed += [Listed(v, v.version == current) for v in artifacts.versions(shop_id, name)]
        return listed

    def start_training(self, shop_id: str, force: bool) -> list[str]:
        artifacts = self._artifacts(shop_id)
        with self._guard:
            if shop_id in self._training:
                raise FailedPrecondition(
                    "TRAINING_RUNNING", f"shop {shop_id!r} is being trained already"
                )
            self._training.add(shop_id)
        names = list(self.hub.names)
        variants = self.hub.variant_models(shop_id)

        def run() -> None:
            try:
                train(
                    self.store,
                    artifacts,
                    self.plugins,
                    names,
                    self.plugin_settings,
                    [shop_id],
                    self.keep,
                    force=force,
                    variants=lambda _shop: variants,
                )
                self.hub.load_artifacts(shop_id)
            except Exception:
                log.exception("training shop %r failed", shop_id)
            finally:
                with self._guard:
                    self._training.discard(shop_id)

        threading.Thread(target=run, name=f"kosmos-train-{shop_id}", daemon=True).start()
        return names + sorted(name for name, (base, _) in variants.items() if base in names)

    def rollback(self, shop_id: str, recommender: str, version: str) -> Listed:
        artifacts = self._artifacts(shop_id)
        masked = self.store.latest_mask_time(shop_id)
        if masked is not None:
            # A version fitted before an erasure or a training withdrawal may hold a customer
            # who is gone: it never serves again (issue 11).
            names = [v.version for v in artifacts.versions(shop_id, recommender)]
            current = artifacts.current(shop_id, recommender)
            target = version or (
                names[names.index(current) - 1] if current in names and names.index(current) else ""
            )
            found = [v for v in artifacts.versions(shop_id, recommender) if v.version == target]
            if found and found[0].create_time <= masked:
                raise FailedPrecondition(
                    "VERSION_HOLDS_ERASED_DATA",
                    f"version {target!r} was fitted before a customer's erasure or training"
                    " withdrawal and is never served again",
                )
        try:
            served = artifacts.rollback(shop_id, recommender, version or None)
        except ArtifactError as error:
            if version:
                raise NotFound(
                    "model version", f"{shop_name(shop_id)}/recommenders/{recommender}/{version}"
                ) from None
            raise FailedPrecondition("NO_EARLIER_VERSION", str(error)) from None
        threading.Thread(  # swap it in here too, off the request thread
            target=self.hub.load_artifacts, args=(shop_id,), daemon=True
        ).start()
        found = [v for v in artifacts.versions(shop_id, recommender) if v.version == served]
        return Listed(found[0], True)


def _message(shop_id: str, listed: Listed) -> model_service_pb2.ModelVersion:
    v = listed.version
    return model_service_pb2.ModelVersion(
        name=f"{shop_name(shop_id)}/recommenders/{v.recommender}/versions/{v.version}",
        create_time=to_timestamp(v.create_time),
        serving=listed.serving,
        interactions=v.interactions,
        fit_seconds=v.fit_seconds,
        distribution=v.distribution,
        metrics=dict(v.metrics),
    )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, admin: ModelAdmin) -> None:
        self.admin = admin

    def ListModelVersions(
        self, request: model_service_pb2.ListModelVersionsRequest, context: Any
    ) -> model_service_pb2.ListModelVersionsResponse:
        shop_id = parse_shop(request.parent, "parent")
        if request.recommender:
            check_resource_id(request.recommender, "recommender")
            self.admin._check_recommender(request.recommender, "recommender", shop_id)
        size = page_size(request.page_size)
        scope = f"models:{shop_id}:{request.recommender}"
        cursor = decode_page_token(request.page_token, scope) or {"o": 0}
        offset = cursor.get("o")
        if not isinstance(offset, int) or offset < 0:
            raise InvalidArgument("page_token", "INVALID_PAGE_TOKEN", "is not a token we gave")
        listed = self.admin.versions(shop_id, request.recommender)
        page: Sequence[Listed] = listed[offset : offset + size]
        more = offset + size < len(listed)
        return model_service_pb2.ListModelVersionsResponse(
            model_versions=[_message(shop_id, item) for item in page],
            next_page_token=encode_page_token(scope, {"o": offset + size}) if more else "",
        )

    def TrainModels(
        self, request: model_service_pb2.TrainModelsRequest, context: Any
    ) -> model_service_pb2.TrainModelsResponse:
        shop_id = parse_shop(request.parent, "parent")
        names = self.admin.start_training(shop_id, request.force)
        return model_service_pb2.TrainModelsResponse(recommenders=names)

    def RollbackModel(
        self, request: model_service_pb2.RollbackModelRequest, context: Any
    ) -> model_service_pb2.RollbackModelResponse:
        shop_id, recommender = parse_recommender(request.name, "name")
        self.admin._check_recommender(recommender, "name", shop_id)
        if request.version:
            check_resource_id(request.version, "version")
        listed = self.admin.rollback(shop_id, recommender, request.version)
        return model_service_pb2.RollbackModelResponse(model_version=_message(shop_id, listed))
