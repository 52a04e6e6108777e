"""ExperimentService over gRPC: proto <-> experiments document, validation, the report."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from kosmos.common.errors import AlreadyExists, InvalidArgument, NotFound
from kosmos.common.names import (
    check_shop_id,
    decode_page_token,
    encode_page_token,
    page_size,
    parse_shop,
    shop_name,
)
from kosmos.common.server import Service
from kosmos.common.timestamps import to_seconds, to_timestamp
from kosmos.experiments import report
from kosmos.experiments.domain import HOLDOUT, KIND, Experiment
from kosmos.plugin.routing import Routing
from kosmos.shopconfig._settings import Recommenders
from kosmos.shopconfig.rules_servicer import rule_to_proto, rules_from_proto
from kosmos.shopconfig.servicer import _SETTING_KEY as SETTING_KEY
from kosmos.shopconfig.servicer import MAX_SETTING_VALUE
from kosmos.store import Store
from kosmos.v1 import experiment_service_pb2, experiment_service_pb2_grpc
from kosmos.v1.shop_settings_service_pb2 import PluginSettings

pb = experiment_service_pb2
EXPERIMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_VARIANTS = 10
MAX_HOLDOUT = 0.5
MAX_WEIGHT = 1000.0
MAX_VARIANT_PLUGINS = 10
DEFAULT_CONFIDENCE = 0.95
_STATES = {
    "scheduled": pb.EXPERIMENT_STATE_SCHEDULED,
    "running": pb.EXPERIMENT_STATE_RUNNING,
    "ended": pb.EXPERIMENT_STATE_ENDED,
}


def experiment_name(shop_id: str, experiment_id: str) -> str:
    return f"{shop_name(shop_id)}/experiments/{experiment_id}"


def parse_experiment_name(name: str, field: str) -> tuple[str, str]:
    if not name:
        raise InvalidArgument(field, "MISSING_FIELD", "is required")
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "shops" or parts[2] != "experiments":
        raise InvalidArgument(
            field, "INVALID_NAME", "must look like shops/{shop}/experiments/{experiment}"
        )
    if not EXPERIMENT_ID.fullmatch(parts[3]):
        raise InvalidArgument(field, "INVALID_ID", "the experiment id is 1-63 of a-z, 0-9, - and _")
    return check_shop_id(parts[1], field), parts[3]


def _experiment_from_proto(m: Any, known: Recommenders, now: float) -> dict[str, Any]:
    field = "experiment"
    if not m.variants:
        raise InvalidArgument(f"{field}.variants", "MISSING_FIELD", "needs at least one variant")
    if len(m.variants) > MAX_VARIANTS:
        raise InvalidArgument(
            f"{field}.variants", "TOO_MANY_ENTRIES", f"takes at most {MAX_VARIANTS}"
        )
    variants = []
    seen: set[str] = set()
    for n, v in enumerate(m.variants):
        vf = f"{field}.variants[{n}]"
        if not v.variant_id:
            raise InvalidArgument(f"{vf}.variant_id", "MISSING_FIELD", "is required")
        if not EXPERIMENT_ID.fullmatch(v.variant_id) or v.variant_id == HOLDOUT:
            raise InvalidArgument(
                f"{vf}.variant_id", "INVALID_ID", "1-63 of a-z, 0-9, - and _; not 'holdout'"
            )
        if v.variant_id in seen:
            raise InvalidArgument(f"{vf}.variant_id", "DUPLICATE_VARIANT", "is used twice")
        seen.add(v.variant_id)
        if not (math.isfinite(v.weight) and 0 <= v.weight <= MAX_WEIGHT):
            raise InvalidArgument(f"{vf}.weight", "INVALID_VALUE", f"must be 0 to {MAX_WEIGHT:g}")
        d: dict[str, Any] = {"variant_id": v.variant_id, "weight": float(v.weight or 1.0)}
        if v.display_name:
            d["display_name"] = v.display_name
        if v.routing.strip():
            try:
                routing = Routing.parse(v.routing.strip())
            except ValueError as exc:
                raise InvalidArgument(f"{vf}.routing", "INVALID_ROUTING", str(exc)) from None
            for name in routing.names:
                if name not in known:
                    raise InvalidArgument(
                        f"{vf}.routing",
                        "UNKNOWN_RECOMMENDER",
                        f"{name!r} is not an installed or configured recommender",
                    )
            d["routing"] = str(routing)
        if v.plugin_settings:
            d["plugin_settings"] = _plugin_settings(v.plugin_settings, known, vf)
        if v.rules:
            d["rules"] = rules_from_proto(v.rules, f"{vf}.rules")
        variants.append(d)
    if not (math.isfinite(m.holdout_fraction) and 0 <= m.holdout_fraction <= MAX_HOLDOUT):
        raise InvalidArgument(
            f"{field}.holdout_fraction", "INVALID_VALUE", f"must be 0 to {MAX_HOLDOUT:g}"
        )
    doc: dict[str, Any] = {
        "variants": variants,
        "holdout_fraction": float(m.holdout_fraction),
        "create_time": now,
        "start_time": to_seconds(m.start_time) if m.HasField("start_time") else now,
    }
    if m.display_name:
        doc["display_name"] = m.display_name
    if m.placements:
        doc["placements"] = sorted(set(m.placements))
    if m.HasField("end_time"):
        doc["end_time"] = to_seconds(m.end_time)
        if doc["end_time"] <= doc["start_time"]:
            raise InvalidArgument(f"{field}.end_time", "INVALID_VALUE", "must be after start_time")
    return doc


def _plugin_settings(
    given: Mapping[str, Any], known: Recommenders, vf: str
) -> dict[str, dict[str, str]]:
    """A variant's plugin settings, checked as the shop's are (`kosmos.shopconfig.servicer`)."""
    if len(given) > MAX_VARIANT_PLUGINS:
        raise InvalidArgument(
            f"{vf}.plugin_settings", "TOO_MANY_ENTRIES", f"takes at most {MAX_VARIANT_PLUGINS}"
        )
    result: dict[str, dict[str, str]] = {}
    for name in sorted(given):
        values = dict(given[name].values)
        field = f"{vf}.plugin_settings[{name!r}]"
        if name not in known:
            raise InvalidArgument(
                field,
                "UNKNOWN_RECOMMENDER",
                f"{name!r} is not an installed or configured recommender"
                f" (known: {', '.join(sorted(known))})",
            )
        if not values:
            raise InvalidArgument(field, "MISSING_FIELD", "needs at least one setting")
        for key, value in values.items():
            if not SETTING_KEY.match(key):
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
        factory = known[name]
        if factory is not None:
            try:
                factory(values)  # the plugin's own check: unknown keys, bad values
            except Exception as exc:  # noqa: BLE001 (a plugin's factory is not our code)
                raise InvalidArgument(field, "INVALID_SETTING", str(exc)) from None
        result[name] = values
    return result


def _to_proto(shop_id: str, e: Experiment, now: float) -> Any:
    d = e.document
    m = pb.Experiment(
        name=experiment_name(shop_id, e.experiment_id),
        display_name=e.display_name,
        holdout_fraction=e.holdout_fraction,
        placements=sorted(e.placements),
        state=_STATES[e.state(now)],
        create_time=to_timestamp(e.create_time),
        start_time=to_timestamp(e.start_time),
    )
    if e.end_time is not None:
        m.end_time.CopyFrom(to_timestamp(e.end_time))
    for v in d["variants"]:
        m.variants.append(
            pb.Variant(
                variant_id=v["variant_id"],
                weight=v.get("weight", 1.0),
                routing=v.get("routing", ""),
                display_name=v.get("display_name", ""),
                rules=[rule_to_proto(r) for r in v.get("rules") or ()],
                plugin_settings={
                    name: PluginSettings(values=values)
                    for name, values in (v.get("plugin_settings") or {}).items()
                },
            )
        )
    return m


def _estimate(e: report.Estimate) -> Any:
    return pb.MetricEstimate(
        value=e.value,
        ci_low=e.ci_low,
        ci_high=e.ci_high,
        difference=e.difference,
        difference_ci_low=e.difference_ci_low,
        difference_ci_high=e.difference_ci_high,
        p_value=e.p_value,
        significant=e.significant,
        test=e.test,
    )


class ExperimentServicer(experiment_service_pb2_grpc.ExperimentServiceServicer):
    def __init__(
        self,
        store: Store,
        known: Callable[[], Recommenders],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.known = known
        self.clock = clock

    def _all(self, shop_id: str) -> tuple[int, dict[str, Any]]:
        stored = self.store.get_document(shop_id, KIND)
        if stored is None:
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
            return 0, {}
        return stored.revision, dict(stored.document.get("experiments") or {})

    def _one(self, shop_id: str, experiment_id: str) -> Experiment:
        _, found = self._all(shop_id)
        if experiment_id not in found:
            raise NotFound("experiment", experiment_name(shop_id, experiment_id))
        return Experiment.from_document(experiment_id, found[experiment_id])

    def CreateExperiment(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC's names)
        shop_id = parse_shop(request.parent, "parent")
        if not request.experiment_id:
            raise InvalidArgument("experiment_id", "MISSING_FIELD", "is required")
        if not EXPERIMENT_ID.fullmatch(request.experiment_id):
            raise InvalidArgument("experiment_id", "INVALID_ID", "1-63 of a-z, 0-9, - and _")
        now = self.clock()
        doc = _experiment_from_proto(request.experiment, self.known(), now)
        revision, found = self._all(shop_id)
        if request.experiment_id in found:
            raise AlreadyExists(
                "EXPERIMENT_EXISTS", f"{experiment_name(shop_id, request.experiment_id)} exists"
            )
        found[request.experiment_id] = doc
        # Optimistic: a concurrent change of the shop's experiments is ABORTED, to retry.
        self.store.put_document(shop_id, KIND, {"experiments": found}, expected_revision=revision)
        e = Experiment.from_document(request.experiment_id, doc)
        return pb.CreateExperimentResponse(experiment=_to_proto(shop_id, e, now))

    def GetExperiment(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, experiment_id = parse_experiment_name(request.name, "name")
        e = self._one(shop_id, experiment_id)
        return pb.GetExperimentResponse(experiment=_to_proto(shop_id, e, self.clock()))

    def ListExperiments(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id = parse_shop(request.parent, "parent")
        size = page_size(request.page_size)
        cursor = decode_page_token(request.page_token, request.parent)
        offset = int(cursor["offset"]) if cursor else 0
        _, found = self._all(shop_id)
        ordered = sorted(
            (Experiment.from_document(k, v) for k, v in found.items()),
            key=lambda e: (-e.create_time, e.experiment_id),
        )
        now = self.clock()
        token = ""
        if len(ordered) > offset + size:
            token = encode_page_token(request.parent, {"offset": offset + size})
        return pb.ListExperimentsResponse(
            experiments=[_to_proto(shop_id, e, now) for e in ordered[offset : offset + size]],
            next_page_token=token,
        )

    def EndExperiment(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, experiment_id = parse_experiment_name(request.name, "name")
        revision, found = self._all(shop_id)
        if experiment_id not in found:
            raise NotFound("experiment", experiment_name(shop_id, experiment_id))
        now = self.clock()
        doc = dict(found[experiment_id])
        if doc.get("end_time") is None or doc["end_time"] > now:
            doc["end_time"] = now
            found[experiment_id] = doc
            self.store.put_document(
                shop_id, KIND, {"experiments": found}, expected_revision=revision
            )
        e = Experiment.from_document(experiment_id, doc)
        return pb.EndExperimentResponse(experiment=_to_proto(shop_id, e, now))

    def GetExperimentReport(self, request: Any, context: Any) -> Any:  # noqa: N802
        shop_id, experiment_id = parse_experiment_name(request.name, "name")
        confidence = request.confidence_level or DEFAULT_CONFIDENCE
        if not (math.isfinite(confidence) and 0.5 <= confidence <= 0.999):
            raise InvalidArgument("confidence_level", "INVALID_VALUE", "must be 0.5 to 0.999")
        e = self._one(shop_id, experiment_id)
        ids = [v.variant_id for v in e.variants]
        if e.holdout_fraction > 0:
            ids.append(HOLDOUT)
        outcomes = self.store.experiment_outcomes(shop_id, experiment_id)
        return pb.GetExperimentReportResponse(
            name=experiment_name(shop_id, experiment_id),
            confidence_level=confidence,
            control_variant_id=ids[0],
            variants=[_variant(f) for f in report.figures(outcomes, ids, confidence)],
            method=report.METHOD,
        )


def _variant(f: report.VariantFigures) -> Any:
    return pb.VariantReport(
        variant_id=f.variant_id,
        customers=f.customers,
        recommendations=f.recommendations,
        impressions=f.impressions,
        clicks=f.clicks,
        add_to_carts=f.add_to_carts,
        purchases=f.purchases,
        revenue=f.revenue,
        click_through_rate=_estimate(f.click_through_rate),
        add_to_cart_rate=_estimate(f.add_to_cart_rate),
        conversion_rate=_estimate(f.conversion_rate),
        revenue_per_customer=_estimate(f.revenue_per_customer),
    )


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExperimentService"].full_name


def services(store: Store, known: Callable[[], Recommenders]) -> list[Service]:
    servicer = ExperimentServicer(store, known)

    def register(server: grpc.Server) -> None:
        experiment_service_pb2_grpc.add_ExperimentServiceServicer_to_server(servicer, server)

    return [Service(SERVICE_NAME, register)]
