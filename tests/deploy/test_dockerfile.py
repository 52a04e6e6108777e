"""The Dockerfile's recipe works: its build, plugin and web stages run here, as written, into a
clean virtual environment, every entry point the manifests run starts from it (issue 10), and
the image's HTTP port serves the pages its web stage built (issue 14).

No container runtime is needed: the instructions are read from the Dockerfile and replayed,
with /opt/kosmos pointing at a temporary folder. System packages (apt-get) are skipped; the
plugins stage installs only the template plugin (the others have their own tests).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def instructions(text: str) -> list[tuple[str, str, str]]:
    """(stage, instruction, arguments), line continuations joined, comments dropped."""
    joined, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            if current.strip():
                joined.append(current.strip())
            current = ""
    stage, out = "", []
    for line in joined:
        op, _, args = line.partition(" ")
        if op == "FROM":
            stage = args.split(" AS ")[-1]
        out.append((stage, op, args))
    return out


def replay(tmp: Path, args: dict[str, str]) -> tuple[Path, dict[str, str], list[str]]:
    """Runs the build and plugins stages; returns the venv, the runtime ENV and its CMD."""
    prefix = tmp / "opt-kosmos"
    protoc = tmp / "opt-protoc"  # the web stage's code generator
    work = tmp / "src"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp))}  # pip cache
    cmd: list[str] = []
    cwd = work
    ignored = {".venv", "node_modules", "__pycache__", "var"}

    def sub(value: str) -> str:
        value = value.replace("/opt/kosmos", str(prefix)).replace("/opt/protoc", str(protoc))
        for name, v in {**args, **env}.items():
            value = value.replace(f"${{{name}}}", v).replace(f"${name}", v)
        return value

    for stage, op, raw in instructions((ROOT / "Dockerfile").read_text()):
        value = sub(raw)
        if op == "ARG" and stage:
            name, _, default = value.partition("=")
            args.setdefault(name, default.strip('"'))
        elif op == "ENV":
            for pair in shlex.split(value):
                name, _, v = pair.partition("=")
                env[name] = v
        elif op == "WORKDIR":
            cwd = work
        elif op == "COPY" and "--from" not in value:
            *sources, target = shlex.split(value)
            for source in sources:
                if target in ("./", "."):
                    dest = cwd / Path(source).name
                elif target.endswith("/"):
                    dest = cwd / target / Path(source).name
                else:
                    dest = cwd / target
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        dest,
                        ignore=shutil.ignore_patterns(*ignored, "*_pb2*", "*.egg-info"),
                        dirs_exist_ok=True,  # the stages share one /src here
                    )
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / source, dest)
        elif op == "COPY" and stage == "runtime" and value.startswith("--from=web "):
            # The built pages: from the web stage's /src (here, `work`) into the image.
            _from, source, target = shlex.split(value)
            shutil.copytree(work / Path(source).relative_to("/src"), target)
        elif op == "RUN" and stage in ("build", "plugins", "web") and "apt-get" not in value:
            # The images' python is python3 on PATH; here it is this interpreter's base.
            command = value.replace("python -m venv", f"{sys.executable} -m venv", 1)
            command = command.replace("python3 -m venv", f"{sys.executable} -m venv", 1)
            # Speed, not behaviour: here pip may use its cache and skip compiling bytecode.
            fast = {k: v for k, v in env.items() if k != "PIP_NO_CACHE_DIR"} | {
                "PIP_NO_COMPILE": "1"
            }
            done = subprocess.run(["bash", "-ec", command], cwd=cwd, env={**fast, **args},
                                  capture_output=True, text=True, timeout=900)  # fmt: skip
            assert done.returncode == 0, f"RUN {raw}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        elif op == "CMD" and stage == "runtime":
            cmd = __import__("json").loads(value)
    return prefix, env, cmd


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image")
    return replay(tmp, {"PLUGINS": "template", "EXTRA_PACKAGES": ""}) + (tmp,)


@pytest.mark.parametrize(
    ("module", "listen_var"),
    [
        ("kosmos.profile", "KOSMOS_PROFILE_LISTEN"),
        ("kosmos.feedback", "KOSMOS_FEEDBACK_LISTEN"),
        ("kosmos.recommendation", "KOSMOS_RECOMMENDATION_LISTEN"),
        (None, "KOSMOS_CLUSTER_LISTEN"),  # the image's CMD
    ],
)
def test_each_service_starts_from_the_image_venv(image, module, listen_var):
    prefix, env, cmd, tmp = image
    argv = [f"{prefix}/bin/python", "-m", module or cmd[0]]
    assert module or cmd == ["kosmos.cluster"]
    run_env = {**env, listen_var: "127.0.0.1:0", "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/k.db",
               "KOSMOS_ROUTING": "acme_example,popularity"}  # fmt: skip
    # Run outside the checkout, so only the installed package can be imported.
    proc = subprocess.Popen(argv, cwd=tmp, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, line + proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()


def test_the_trainer_and_kosmosctl_run_from_the_image_venv(image):
    prefix, env, _cmd, tmp = image
    run_env = {**env, "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/k.db",
               "KOSMOS_MODEL_DIR": str(tmp / "models")}  # fmt: skip
    done = subprocess.run([f"{prefix}/bin/python", "-m", "kosmos.training"], cwd=tmp,
                          env=run_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run([f"{prefix}/bin/kosmosctl", "--help"], cwd=tmp, env=run_env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "plugins" in done.stdout
    # Build-only tools are gone from the runtime venv.
    assert not list((prefix / "lib").glob("python*/site-packages/grpc_tools"))


def test_the_image_serves_the_pages_its_web_stage_built(image):
    prefix, env, cmd, tmp = image
    assert env["KOSMOS_WEB_DIR"] == str(prefix / "web")
    run_env = {**env, "KOSMOS_CLUSTER_LISTEN": "127.0.0.1:0", "KOSMOS_HTTP_LISTEN": "127.0.0.1:0",
               "KOSMOS_DATABASE_URL": f"sqlite:///{tmp}/pages.db"}  # fmt: skip
    proc = subprocess.Popen([f"{prefix}/bin/python", "-m", cmd[0]], cwd=tmp, env=run_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        (http,) = [line for line in lines if " http on " in line] or [None]
        assert http, "".join(lines) + proc.stderr.read()
        base = "http://" + http.split(" http on ")[1].strip()
        pages = [("/", "app.js"), ("/dashboard/", "app.js"), ("/dashboard/app.js", "createKosmos")]
        for path, marker in pages:
            with urllib.request.urlopen(base + path, timeout=10) as answer:  # noqa: S310
                assert answer.status == 200, path
                assert marker in answer.read().decode(), path
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.communicate()
