"""What kosmosctl does to a Kosmos namespace, over the official Kubernetes Python client.

Where state lives:
- services and replicas: the Deployments and StatefulSets themselves;
- model versions and their age: each recommendation replica's own ``kosmos_model_age_seconds``
  gauge, read through the API server's pod proxy (what serves is what the replica says);
- pinned model versions: ``KOSMOS_MODEL_PINS`` in the ``kosmos-models`` ConfigMap, which the
  recommendation Deployment reads, with the value before the last change kept in an annotation
  so that a rollback can restore it;
- partner plugins: Services labelled ``kosmos.io/plugin=true``; ``KOSMOS_REMOTE_RECOMMENDERS`` in
  the ``kosmos-recommendation`` ConfigMap routes to them.
A change to either ConfigMap restarts the recommendation Deployment (a rolling update: its
PodDisruptionBudget and ``maxUnavailable: 0`` keep it serving) so the replicas read it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as kube_config
from prometheus_client.parser import text_string_to_metric_families

from kosmos.plugin.routing import parse_names

FIELD_MANAGER = "kosmosctl"
PLUGIN_LABEL = "kosmos.io/plugin"
PLUGIN_NAME_LABEL = "kosmos.io/plugin-name"
MODELS_CONFIGMAP = "kosmos-models"
RECOMMENDATION_CONFIGMAP = "kosmos-recommendation"
RECOMMENDATION = "recommendation"
PINS_KEY = "KOSMOS_MODEL_PINS"
REMOTES_KEY = "KOSMOS_REMOTE_RECOMMENDERS"
PREVIOUS_PINS = "kosmos.io/previous-pins"
RESTARTED_AT = "kosmos.io/restarted-at"
METRICS_PORT = 9464
SERVICES = ("profile", "feedback", "recommendation")

# Kinds kosmosctl applies: (API class, patch method, namespaced). Applied in this order, so
# that what a workload refers to exists before it.
_KINDS: dict[str, tuple[Callable[[client.ApiClient], Any], str, bool]] = {
    "Namespace": (client.CoreV1Api, "patch_namespace", False),
    "ServiceAccount": (client.CoreV1Api, "patch_namespaced_service_account", True),
    "Role": (client.RbacAuthorizationV1Api, "patch_namespaced_role", True),
    "RoleBinding": (client.RbacAuthorizationV1Api, "patch_namespaced_role_binding", True),
    "ConfigMap": (client.CoreV1Api, "patch_namespaced_config_map", True),
    "Secret": (client.CoreV1Api, "patch_namespaced_secret", True),
    "PersistentVolumeClaim": (
        client.CoreV1Api,
        "patch_namespaced_persistent_volume_claim",
        True,
    ),
    "NetworkPolicy": (client.NetworkingV1Api, "patch_namespaced_network_policy", True),
    "Service": (client.CoreV1Api, "patch_namespaced_service", True),
    "StatefulSet": (client.AppsV1Api, "patch_namespaced_stateful_set", True),
    "Deployment": (client.AppsV1Api, "patch_namespaced_deployment", True),
    "HorizontalPodAutoscaler": (
        client.AutoscalingV2Api,
        "patch_namespaced_horizontal_pod_autoscaler",
        True,
    ),
    "PodDisruptionBudget": (client.PolicyV1Api, "patch_namespaced_pod_disruption_budget", True),
    "CronJob": (client.BatchV1Api, "patch_namespaced_cron_job", True),
}


class CtlError(RuntimeError):
    """Something an operator must fix; the message says what."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One Deployment or StatefulSet and how many of its replicas are ready."""

    kind: str
    name: str
    desired: int
    ready: int
    image: str


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model version as the recommendation replicas report it."""

    shop: str
    recommender: str
    version: str
    age_seconds: float
    replicas: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class Plugin:
    """A partner plugin found from its labelled Service."""

    name: str
    address: str
    service: str


@dataclass(frozen=True, slots=True)
class Status:
    namespace: str
    workloads: list[Workload]
    models: list[ServedModel]
    unreachable: list[str]
    """Recommendation pods whose metrics could not be read, with the reason."""
    pins: dict[tuple[str, str], str]


def connect(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client from the kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) or, inside a
    pod, from its service account."""
    try:
        api: client.ApiClient = kube_config.new_client_from_config(
            config_file=kubeconfig, context=context
        )
        return api
    except (kube_config.ConfigException, FileNotFoundError, TypeError) as exc:
        if kubeconfig is not None or context is not None:
            raise CtlError(f"cannot load kubeconfig: {exc}") from exc
        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException:
            raise CtlError(f"no kubeconfig and not in a cluster: {exc}") from exc
        return client.ApiClient()


def parse_pins(raw: str) -> dict[tuple[str, str], str]:
    pins = {}
    for part in raw.split(","):
        key, _, version = part.strip().partition("=")
        shop, _, recommender = key.partition("/")
        if shop and recommender and version:
            pins[(shop, recommender)] = version
    return pins


def format_pins(pins: Mapping[tuple[str, str], str]) -> str:
    return ",".join(f"{s}/{r}={v}" for (s, r), v in sorted(pins.items()))


def render(path: Path) -> list[dict[str, Any]]:
    """The objects of a kustomize directory (rendered by kubectl) or of a YAML file."""
    if path.is_dir():
        here = Path(sys.executable).parent / "kubectl"
        kubectl = str(here) if here.exists() else shutil.which("kubectl")
        if kubectl is None:
            raise CtlError("kubectl is needed to render a kustomize directory")
        done = subprocess.run(
            [kubectl, "kustomize", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise CtlError(f"kubectl kustomize {path}: {done.stderr.strip()}")
        text = done.stdout
    elif path.is_file():
        text = path.read_text()
    else:
        raise CtlError(f"{path}: no such file or directory")
    return [o for o in yaml.safe_load_all(text) if o]


class Cluster:
    """One Kosmos namespace.

    Args:
        api: The API client (`connect`).
        namespace: The namespace Kosmos runs in.
        clock: Seconds since the epoch (restart annotations).
    """

    def __init__(
        self, api: client.ApiClient, namespace: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.clock = clock
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)

    # -- apply -------------------------------------------------------------------------------

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> list[str]:
        """Server-side applies ``objects`` (creating or updating each); returns ``Kind/name``."""
        order = list(_KINDS)
        pending = sorted(
            objects, key=lambda o: order.index(o["kind"]) if o["kind"] in order else 99
        )
        applied = []
        for obj in pending:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind not in _KINDS:
                raise CtlError(f"kosmosctl cannot apply {kind} {name}")
            api_class, method, namespaced = _KINDS[kind]
            patch = getattr(api_class(self.api), method)
            args: dict[str, Any] = {
                "name": name,
                "body": dict(obj),
                "field_manager": FIELD_MANAGER,
                "force": True,
                "_content_type": "application/apply-patch+yaml",
            }
            if namespaced:
                args["namespace"] = obj["metadata"].get("namespace", self.namespace)
            try:
                patch(**args)
            except client.ApiException as exc:
                raise CtlError(f"applying {kind}/{name}: {exc.status} {exc.reason}") from exc
            applied.append(f"{kind}/{name}")
        return applied

    # -- status ------------------------------------------------------------------------------

    def workloads(self) -> list[Workload]:
        found = []
        for d in self.apps.list_namespaced_deployment(self.namespace).items:
            found.append(_workload("Deployment", d))
        for s in self.apps.list_namespaced_stateful_set(self.namespace).items:
            found.append(_workload("StatefulSet", s))
        return sorted(found, key=lambda w: (w.kind, w.name))

    def pins(self) -> dict[tuple[str, str], str]:
        data = self._config_map(MODELS_CONFIGMAP).data or {}
        return parse_pins(data.get(PINS_KEY, ""))

    def status(self) -> Status:
        """Workloads, the models each recommendation replica serves, and the pins."""
        pins = self.pins()
        served: dict[tuple[str, str, str], list[float]] = {}
        unreachable = []
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"app.kubernetes.io/name={RECOMMENDATION}"
        ).items
        for pod in pods:
            name = pod.metadata.name if pod.metadata else "?"
            if pod.status is None or pod.status.phase != "Running":
                continue
            try:
                text = self.core.connect_get_namespaced_pod_proxy_with_path(
                    f"{name}:{METRICS_PORT}", self.namespace, "metrics"
                )
            except client.ApiException as exc:
                unreachable.append(f"{name}: {exc.status} {exc.reason}")
                continue
            for family in text_string_to_metric_families(str(text)):
                if family.name != "kosmos_model_age_seconds":
                    continue
                for sample in family.samples:
                    key = (
                        sample.labels.get("kosmos_shop", ""),
                        sample.labels.get("kosmos_recommender", ""),
                        sample.labels.get("kosmos_model_version", ""),
                    )
                    served.setdefault(key, []).append(sample.value)
        models = [
            ServedModel(shop, rec, version, min(ages), len(ages), pins.get((shop, rec)) == version)
            for (shop, rec, version), ages in sorted(served.items())
        ]
        return Status(self.namespace, self.workloads(), models, unreachable, pins)

    # -- models ------------------------------------------------------------------------------

    def rollout(self, shop: str, recommender: str, version: str) -> str:
        """Pins ``version`` for the shop and recommender and restarts recommendation."""
        parse_names(recommender)
        pins = self.pins()
        pins[(shop, recommender)] = version
        return self._set_pins(pins)

    def unpin(self, shop: str, recommender: str) -> str:
        """Drops the pin: the trainer's current version serves again."""
        pins = self.pins()
        if pins.pop((shop, recommender), None) is None:
            raise CtlError(f"no version of {recommender!r} is pinned for shop {shop!r}")
        return self._set_pins(pins)

    def rollback(self) -> str:
        """Restores the pins as they were before the last rollout, unpin or rollback."""
        cm = self._config_map(MODELS_CONFIGMAP)
        annotations = (cm.metadata.annotations if cm.metadata else None) or {}
        if PREVIOUS_PINS not in annotations:
            raise CtlError("nothing to roll back: no earlier model pins are recorded")
        return self._set_pins(parse_pins(annotations[PREVIOUS_PINS]))

    def _set_pins(self, pins: Mapping[tuple[str, str], str]) -> str:
        before = (self._config_map(MODELS_CONFIGMAP).data or {}).get(PINS_KEY, "")
        value = format_pins(pins)
        self.core.patch_namespaced_config_map(
            MODELS_CONFIGMAP,
            self.namespace,
            {"metadata": {"annotations": {PREVIOUS_PINS: before}}, "data": {PINS_KEY: value}},
        )
        if value != before:
            self.restart(RECOMMENDATION)
        return value

    # -- scale -------------------------------------------------------------------------------

    def scale(self, service: str, replicas: int) -> str:
        """Sets the replicas of ``service``; under an autoscaler, its floor (and ceiling if
        lower). Returns what was changed."""
        if replicas < 0:
            raise CtlError("replicas must not be negative")
        try:
            hpa = self.autoscaling.read_namespaced_horizontal_pod_autoscaler(
                service, self.namespace
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            hpa = None
        if hpa is not None and replicas > 0:
            ceiling = max(hpa.spec.max_replicas, replicas)
            self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                service,
                self.namespace,
                {"spec": {"minReplicas": replicas, "maxReplicas": ceiling}},
            )
            return f"HorizontalPodAutoscaler/{service}: {replicas}..{ceiling} replicas"
        try:
            self.apps.patch_namespaced_deployment_scale(
                service, self.namespace, {"spec": {"replicas": replicas}}
            )
        except client.ApiException as exc:
            if exc.status == 404:
                raise CtlError(f"no Deployment {service!r} in {self.namespace}") from exc
            raise
        return f"Deployment/{service}: {replicas} replicas"

    # -- plugins -----------------------------------------------------------------------------

    def plugins(self) -> list[Plugin]:
        """Services labelled ``kosmos.io/plugin=true``: the name (``kosmos.io/plugin-name``,
        else the Service's) and the port named grpc (else the first)."""
        found = []
        services = self.core.list_namespaced_service(
            self.namespace, label_selector=f"{PLUGIN_LABEL}=true"
        ).items
        for svc in services:
            meta, spec = svc.metadata, svc.spec
            if meta is None or spec is None or not spec.ports:
                continue
            labels = meta.labels or {}
            raw = labels.get(PLUGIN_NAME_LABEL, meta.name or "")
            try:
                (name,) = parse_names(raw)
            except ValueError as exc:
                raise CtlError(f"Service {meta.name}: bad plugin name {raw!r}: {exc}") from exc
            port = next((p for p in spec.ports if p.name == "grpc"), spec.ports[0])
            address = f"{meta.name}.{self.namespace}.svc.cluster.local:{port.port}"
            found.append(Plugin(name, address, meta.name or ""))
        return sorted(found, key=lambda p: p.name)

    def sync_plugins(self) -> tuple[str, bool]:
        """Writes the discovered plugins into ``KOSMOS_REMOTE_RECOMMENDERS``; returns the value
        and whether it changed (then recommendation restarts to route to them)."""
        value = ",".join(f"{p.name}={p.address}" for p in self.plugins())
        before = (self._config_map(RECOMMENDATION_CONFIGMAP).data or {}).get(REMOTES_KEY, "")
        if value == before:
            return value, False
        self.core.patch_namespaced_config_map(
            RECOMMENDATION_CONFIGMAP, self.namespace, {"data": {REMOTES_KEY: value}}
        )
        self.restart(RECOMMENDATION)
        return value, True

    # -- helpers -----------------------------------------------------------------------------

    def restart(self, deployment: str) -> None:
        """A rolling restart, as ``kubectl rollout restart`` does it: a new template annotation."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self.apps.patch_namespaced_deployment(deployment, self.namespace, body)

    def _config_map(self, name: str) -> client.V1ConfigMap:
        try:
            return self.core.read_namespaced_config_map(name, self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                raise CtlError(
                    f"no ConfigMap {name!r} in {self.namespace}: apply an overlay first"
                ) from exc
            raise


def _workload(kind: str, obj: Any) -> Workload:
    spec, status = obj.spec, obj.status
    containers = spec.template.spec.containers if spec and spec.template.spec else []
    return Workload(
        kind,
        obj.metadata.name,
        spec.replicas if spec and spec.replicas is not None else 1,
        (status.ready_replicas or 0) if status else 0,
        containers[0].image if containers else "",
    )


def to_json(status: Status) -> str:
    """The status as JSON (``kosmosctl status -o json``)."""
    return json.dumps(
        {
            "namespace": status.namespace,
            "workloads": [asdict(w) for w in status.workloads],
            "models": [asdict(m) for m in status.models],
            "unreachable": status.unreachable,
            "pins": {f"{s}/{r}": v for (s, r), v in status.pins.items()},
        },
        indent=2,
    )
