#!/usr/bin/env bash
# TypeScript from the protos (npm run gen): proto/kosmos/v1, plus google.rpc's error details
# from googleapis-common-protos (in .venv). protoc is grpcio-tools' (in .venv);
# src/gen is generated, never committed.
set -euo pipefail
cd "$(dirname "$0")"
PY=../../.venv/bin/python
SITE=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf src/gen && mkdir -p src/gen
$PY -m grpc_tools.protoc -I ../../proto -I "$SITE" \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
  --es_out=src/gen --es_opt=target=ts,import_extension=js \
  ../../proto/kosmos/v1/*.proto google/rpc/error_details.proto
