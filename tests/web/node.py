"""Running the Node side of services/web from the tests: skipped without npm or the built
package, except under CI=true, where a missing piece fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "services" / "web"
BUILT = WEB / "dist" / ".built"


def require_web() -> str:
    """The node binary, once services/web is built; skips (fails on CI) otherwise."""
    node = shutil.which("node")
    missing = ""
    if node is None:
        missing = "node is not installed"
    elif not BUILT.exists():
        missing = f"{WEB} is not built (make setup with npm)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


def node_calls(base_url: str, calls: list[dict], protocol: str = "connect") -> list[dict]:
    """Makes ``calls`` from Node through the generated client (services/web/test/call.ts)."""
    node = require_web()
    done = subprocess.run(
        [node, str(WEB / "dist" / "test" / "call.mjs"), base_url, protocol],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers: list[dict] = json.loads(done.stdout)
    return answers
