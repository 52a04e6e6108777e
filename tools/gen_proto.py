"""Generate Python messages, stubs and type stubs from proto/kosmos/v1 into services/kosmos/v1.

Run through `make proto`. The output is not committed: every setup regenerates it, so the code
always matches the protos and the installed grpcio-tools.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "services"


def main() -> int:
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "kosmos/v1").glob("*.proto")
    )
    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        # mypy-protobuf's stubs type both the messages and the gRPC stubs and servicers.
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return int(code)
    # The OpenTelemetry demo's recommendation contract, vendored beside its adapter: generated
    # from services/ so that its stub imports kosmos.oteldemo.demo_pb2.
    code = protoc.main(
        [
            "protoc",
            f"-I{OUT}",
            f"--python_out={OUT}",
            f"--grpc_python_out={OUT}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={OUT}",
            f"--mypy_grpc_out={OUT}",
            "kosmos/oteldemo/demo.proto",
        ]
    )
    if code != 0:
        print(f"protoc failed on the OpenTelemetry demo's proto: {code}", file=sys.stderr)
        return int(code)
    init = OUT / "kosmos/v1/__init__.py"
    init.parent.mkdir(parents=True, exist_ok=True)
    print(f"generated {len(protos)} protos into {init.parent.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
