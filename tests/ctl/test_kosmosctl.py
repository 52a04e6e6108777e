"""kosmosctl against a local HTTP server that speaks the Kubernetes API's wire format (issue 10).

The server is a fake only of what we do not own (the API server): it stores objects by their
REST path, lists collections with label selectors, applies merge patches and the scale
subresource, and serves pods' /metrics through the pod proxy path.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kosmos.common.config import RecommendationSettings
from kosmos.ctl import main
from kosmos.ctl._cluster import render

ROOT = Path(__file__).resolve().parents[2]
NS = "kosmos-dev"
TOKEN = "test-token"
APPS = f"/apis/apps/v1/namespaces/{NS}"
CORE = f"/api/v1/namespaces/{NS}"


def merge(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386), which strategic merge equals for maps of scalars."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeKubernetes(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects: dict[str, dict] = {}
        self.metrics: dict[str, str] = {}  # pod name -> exposition text
        self.requests: list[tuple[str, str, str, dict]] = []  # method, path, type, query
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: FakeKubernetes

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def reply(self, code: int, body: dict | str) -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(body, str) else "application/json"
        )
        self.send_header("Content-Length", str(len(data.encode())))
        self.end_headers()
        self.wfile.write(data.encode())

    def not_found(self, path: str) -> None:
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
        self.reply(404, {**status, "reason": "NotFound", "message": f"{path} not found"})

    def route(self) -> tuple[str, dict[str, str]] | None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.reply(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
            return None
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with self.server.lock:
            self.server.requests.append(
                (
                    self.command,
                    urllib.parse.unquote(url.path),
                    self.headers.get("Content-Type", ""),
                    query,
                )
            )
        return urllib.parse.unquote(url.path), query

    def do_GET(self) -> None:
        routed = self.route()
        if routed is None:
            return
        path, query = routed
        objects = self.server.objects
        if "/proxy/" in path:  # /api/v1/namespaces/ns/pods/NAME:PORT/proxy/metrics
            pod = path.split("/pods/")[1].split(":")[0]
            text = self.server.metrics.get(pod)
            if text is None:
                self.reply(503, {"kind": "Status", "code": 503, "reason": "ServiceUnavailable"})
            else:
                self.reply(200, text)
            return
        if path in objects:
            self.reply(200, objects[path])
            return
        selector = dict(p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p)
        items = [
            o
            for p, o in sorted(objects.items())
            if p.rsplit("/", 1)[0] == path
            and selector.items() <= (o["metadata"].get("labels") or {}).items()
        ]
        if items or path.endswith(("s", "ies")):
            self.reply(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
        else:
            self.not_found(path)

    def do_PATCH(self) -> None:
        routed = self.route()
        if routed is None:
            return
        path, _query = routed
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind = self.headers.get("Content-Type", "")
        objects = self.server.objects
        with self.server.lock:
            if path.endswith("/scale"):
                target = objects.get(path.removesuffix("/scale"))
                if target is None:
                    return self.not_found(path)
                merge(target, body)
                meta = target["metadata"]
                replicas = target["spec"]["replicas"]
                return self.reply(200, {
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
                    "spec": {"replicas": replicas}, "status": {"replicas": replicas},
                })  # fmt: skip
            if kind == "application/apply-patch+yaml":
                status = objects.get(path, {}).get("status")
                objects[path] = body if status is None else {**body, "status": status}
                return self.reply(200, objects[path])
            if path not in objects:
                return self.not_found(path)
            merge(objects[path], body)
            return self.reply(200, objects[path])


@pytest.fixture
def fake(tmp_path):
    server = FakeKubernetes()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "op", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "op"}}],
                "current-context": "fake",
            }
        )
    )
    server.kubeconfig = str(kubeconfig)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def ctl(fake, *args: str) -> int:
    return main(["--kubeconfig", fake.kubeconfig, "-n", NS, *args])


@pytest.fixture(scope="module")
def dev_yaml(tmp_path_factory) -> Path:
    """The dev overlay rendered once (kosmosctl applies a YAML file as it does a directory)."""
    path = tmp_path_factory.mktemp("dev") / "dev.yaml"
    path.write_text(yaml.safe_dump_all(render(ROOT / "deploy/k8s/overlays/dev")))
    return path


@pytest.fixture
def applied(fake, dev_yaml):
    assert ctl(fake, "apply", str(dev_yaml)) == 0
    return fake


def patches(fake, path: str) -> list[tuple[str, str, str, dict]]:
    return [r for r in fake.requests if r[0] == "PATCH" and r[1] == path]


def test_apply_server_side_applies_every_object_of_the_overlay(fake, capsys):
    assert ctl(fake, "apply", str(ROOT / "deploy/k8s/overlays/dev")) == 0
    applies = [r for r in fake.requests if r[0] == "PATCH"]
    assert all(r[2] == "application/apply-patch+yaml" for r in applies)
    assert all(r[3] == {"fieldManager": "kosmosctl", "force": "true"} for r in applies)
    assert applies[0][1] == f"/api/v1/namespaces/{NS}"  # the namespace first
    for path in (
        f"{APPS}/deployments/recommendation",
        f"{APPS}/statefulsets/postgres",
        f"{CORE}/configmaps/kosmos-models",
        f"/apis/batch/v1/namespaces/{NS}/cronjobs/trainer",
        f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/recommendation",
        f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/recommendation",
        f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/default-deny",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/kosmosctl",
    ):
        assert path in fake.objects, path
    deployment = fake.objects[f"{APPS}/deployments/recommendation"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "kosmos:dev"
    assert "applied Deployment/recommendation" in capsys.readouterr().out
    # Applying again changes nothing that is not in the manifests (status survives).
    fake.objects[f"{APPS}/deployments/recommendation"]["status"] = {"readyReplicas": 1}
    assert ctl(fake, "apply", str(ROOT / "deploy/k8s/overlays/dev")) == 0
    assert fake.objects[f"{APPS}/deployments/recommendation"]["status"] == {"readyReplicas": 1}


def _pod(name: str, phase: str = "Running") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"app.kubernetes.io/name": "recommendation"}},
        "spec": {"containers": [{"name": "recommendation", "image": "kosmos:dev"}]},
        "status": {"phase": phase},
    }  # fmt: skip


def _metrics(*models: tuple[str, str, str, float]) -> str:
    lines = ["# HELP kosmos_model_age_seconds Age of each serving model",
             "# TYPE kosmos_model_age_seconds gauge"]  # fmt: skip
    for shop, recommender, version, age in models:
        lines.append(
            f'kosmos_model_age_seconds{{kosmos_model_version="{version}",'
            f'kosmos_recommender="{recommender}",kosmos_shop="{shop}"}} {age}'
        )
    return "\n".join(lines) + "\n"


def test_status_shows_replicas_and_the_models_each_replica_serves(applied, capsys):
    fake = applied
    fake.objects[f"{APPS}/deployments/recommendation"]["status"] = {"readyReplicas": 1}
    fake.objects[f"{APPS}/deployments/profile"]["status"] = {"readyReplicas": 1}
    for name in ("rec-a", "rec-b", "rec-c"):
        fake.objects[f"{CORE}/pods/{name}"] = _pod(name)
    fake.objects[f"{CORE}/pods/rec-old"] = _pod("rec-old", phase="Succeeded")
    fake.metrics["rec-a"] = _metrics(
        ("acme", "als", "v2", 120.0), ("acme", "popularity", "in-process", 5.0)
    )
    fake.metrics["rec-b"] = _metrics(("acme", "als", "v2", 60.0))
    # rec-c serves no metrics: reported, not fatal.
    assert (
        ctl(fake, "models", "rollout", "--shop", "acme", "--recommender", "als", "--version", "v2")
        == 0
    )
    capsys.readouterr()
    assert ctl(fake, "status", "-o", "json") == 0
    status = json.loads(capsys.readouterr().out)
    workloads = {w["name"]: w for w in status["workloads"]}
    assert (workloads["recommendation"]["ready"], workloads["recommendation"]["desired"]) == (1, 2)
    assert workloads["profile"]["ready"] == 1 and workloads["feedback"]["ready"] == 0
    assert workloads["postgres"]["kind"] == "StatefulSet"
    assert status["models"] == [
        {"shop": "acme", "recommender": "als", "version": "v2", "age_seconds": 60.0,
         "replicas": 2, "pinned": True},
        {"shop": "acme", "recommender": "popularity", "version": "in-process",
         "age_seconds": 5.0, "replicas": 1, "pinned": False},
    ]  # fmt: skip
    assert [u.split(":")[0] for u in status["unreachable"]] == ["rec-c"]
    assert not any("rec-old" in r[1] for r in fake.requests)  # only running pods are asked
    assert ctl(fake, "status") == 0
    out = capsys.readouterr().out
    assert "recommendation" in out and "1/2" in out and "1.0m" in out


def test_rollout_pins_a_version_and_rollback_restores_the_pins_before(applied, capsys):
    fake = applied
    cm = f"{CORE}/configmaps/kosmos-models"
    deployment = f"{APPS}/deployments/recommendation"
    assert ctl(fake, "models", "rollback") == 2  # nothing recorded yet
    assert "nothing to roll back" in capsys.readouterr().err

    assert (
        ctl(fake, "models", "rollout", "--shop", "acme", "--recommender", "als", "--version", "v1")
        == 0
    )
    assert (
        ctl(fake, "models", "rollout", "--shop", "acme", "--recommender", "als", "--version", "v2")
        == 0
    )
    assert (
        ctl(
            fake,
            "models",
            "rollout",
            "--shop",
            "zed",
            "--recommender",
            "lightfm",
            "--version",
            "v9",
        )
        == 0
    )
    pins = fake.objects[cm]["data"]["KOSMOS_MODEL_PINS"]
    assert pins == "acme/als=v2,zed/lightfm=v9"
    # What the recommendation service will read from it:
    assert RecommendationSettings.from_env({"KOSMOS_MODEL_PINS": pins}).model_pins == {
        ("acme", "als"): "v2",
        ("zed", "lightfm"): "v9",
    }
    template = fake.objects[deployment]["spec"]["template"]["metadata"]
    assert "kosmos.io/restarted-at" in template["annotations"]  # the replicas roll
    restarts = len(patches(fake, deployment))

    assert ctl(fake, "models", "rollback") == 0
    assert fake.objects[cm]["data"]["KOSMOS_MODEL_PINS"] == "acme/als=v2"
    assert ctl(fake, "models", "unpin", "--shop", "acme", "--recommender", "als") == 0
    assert fake.objects[cm]["data"]["KOSMOS_MODEL_PINS"] == ""
    assert len(patches(fake, deployment)) == restarts + 2
    assert ctl(fake, "models", "unpin", "--shop", "acme", "--recommender", "als") == 2
    assert (
        ctl(
            fake,
            "models",
            "rollout",
            "--shop",
            "acme",
            "--recommender",
            "Bad Name",
            "--version",
            "v1",
        )
        == 2
    )


def test_scale_sets_the_autoscaler_floor_or_the_deployment_replicas(applied, capsys):
    fake = applied
    hpa = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/recommendation"
    assert fake.objects[hpa]["spec"]["maxReplicas"] == 3  # the dev overlay's ceiling
    assert ctl(fake, "scale", "recommendation", "--replicas", "2") == 0
    assert (fake.objects[hpa]["spec"]["minReplicas"], fake.objects[hpa]["spec"]["maxReplicas"]) == (
        2,
        3,
    )
    assert ctl(fake, "scale", "recommendation", "--replicas", "5") == 0  # the ceiling follows
    assert (fake.objects[hpa]["spec"]["minReplicas"], fake.objects[hpa]["spec"]["maxReplicas"]) == (
        5,
        5,
    )
    assert not patches(fake, f"{APPS}/deployments/recommendation/scale")  # the HPA owns it
    assert ctl(fake, "scale", "profile", "--replicas", "3") == 0
    assert fake.objects[f"{APPS}/deployments/profile"]["spec"]["replicas"] == 3
    assert patches(fake, f"{APPS}/deployments/profile/scale")
    assert ctl(fake, "scale", "nothing", "--replicas", "1") == 2
    assert "no Deployment 'nothing'" in capsys.readouterr().err


def _service(name: str, labels: dict, ports: list[dict]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"ports": ports, "selector": {"app": name}},
    }


def test_plugins_are_discovered_from_labelled_services_and_routed_to(applied, capsys):
    fake = applied
    fake.objects[f"{CORE}/services/acme-recs"] = _service(
        "acme-recs",
        {"kosmos.io/plugin": "true", "kosmos.io/plugin-name": "acme_recs"},
        [{"name": "metrics", "port": 9464}, {"name": "grpc", "port": 50070}],
    )
    fake.objects[f"{CORE}/services/bought-together"] = _service(
        "bought-together", {"kosmos.io/plugin": "true"}, [{"port": 8080}]
    )
    fake.objects[f"{CORE}/services/unrelated"] = _service("unrelated", {}, [{"port": 1}])
    assert ctl(fake, "plugins") == 0
    out = capsys.readouterr().out
    assert "acme_recs" in out and "bought-together" in out and "unrelated" not in out

    cm = f"{CORE}/configmaps/kosmos-recommendation"
    deployment = f"{APPS}/deployments/recommendation"
    before = len(patches(fake, deployment))
    assert ctl(fake, "plugins", "sync") == 0
    value = fake.objects[cm]["data"]["KOSMOS_REMOTE_RECOMMENDERS"]
    assert RecommendationSettings.from_env({"KOSMOS_REMOTE_RECOMMENDERS": value}).remote == {
        "acme_recs": f"acme-recs.{NS}.svc.cluster.local:50070",
        "bought-together": f"bought-together.{NS}.svc.cluster.local:8080",
    }
    assert len(patches(fake, deployment)) == before + 1  # recommendation restarts to use them
    assert ctl(fake, "plugins", "sync") == 0  # nothing new: no restart
    assert len(patches(fake, deployment)) == before + 1
    assert "unchanged" in capsys.readouterr().out


def test_a_bad_token_is_reported_as_the_clusters_refusal(applied, tmp_path, capsys):
    config = json.loads(Path(applied.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = "wrong"
    bad = tmp_path / "bad"
    bad.write_text(json.dumps(config))
    assert main(["--kubeconfig", str(bad), "-n", NS, "status"]) == 1
    assert "401" in capsys.readouterr().err


def test_a_missing_overlay_is_an_operator_error(fake, capsys):
    assert ctl(fake, "apply", "deploy/k8s/overlays/nope") == 2
    assert "no such file" in capsys.readouterr().err
