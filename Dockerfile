# syntax=docker/dockerfile:1
# One image for every Kosmos process; the manifests in deploy/k8s run it as
# `python -m kosmos.<service>`. Plugins are extra layers:
#   docker build -t kosmos:dev .                                  # core + implicit + lightfm
#   docker build --build-arg PLUGINS="implicit" -t kosmos:slim .  # fewer plugins
#   docker build --build-arg EXTRA_PACKAGES="acme-kosmos-recs==1.2" -t kosmos:acme .
# A partner can also layer onto a released image: FROM ghcr.io/kosmos-project/kosmos:0.1.0,
# then RUN /opt/kosmos/bin/pip install acme-kosmos-recs (as root, then USER 10001 again).
# -- build: a virtual environment in /opt/kosmos, code generated from the protos -------------
FROM python:3.11.11-slim-bookworm AS build
# A compiler for plugins whose wheels are not published for this platform (LightFM's C core).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/kosmos
ENV PATH=/opt/kosmos/bin:$PATH
WORKDIR /src
# The code generator first: its layer survives edits to the services.
RUN pip install "grpcio-tools>=1.66,<2" "mypy-protobuf>=3.6"
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY tools/gen_proto.py ./tools/gen_proto.py
COPY services ./services
RUN python tools/gen_proto.py && pip install . && pip uninstall -y grpcio-tools mypy-protobuf

# -- plugins: each one its own layer, so changing one does not rebuild the others ------------
FROM build AS plugins
ARG PLUGINS="implicit lightfm"
ARG EXTRA_PACKAGES=""
COPY plugins ./plugins
RUN for plugin in $PLUGINS; do pip install "./plugins/$plugin" || exit 1; done
RUN if [ -n "$EXTRA_PACKAGES" ]; then pip install $EXTRA_PACKAGES; fi

# -- web: the storefront and dashboard the HTTP port serves (services/web, built with npm) ---
# The TypeScript is generated from the protos by grpcio-tools' protoc with protoc-gen-es, then
# bundled by esbuild; only the built pages (dist) reach the runtime image.
FROM node:20.18.1-bookworm-slim AS web
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
RUN python3 -m venv /opt/protoc \
 && /opt/protoc/bin/pip install --no-cache-dir "grpcio-tools>=1.66,<2" "googleapis-common-protos>=1.63"
WORKDIR /src
COPY proto ./proto
COPY services/web/package.json services/web/package-lock.json ./services/web/
RUN npm ci --prefix services/web --no-audit --no-fund
COPY services/web ./services/web
RUN KOSMOS_PYTHON=/opt/protoc/bin/python npm run --prefix services/web gen \
 && npm run --prefix services/web build

# -- runtime: the venv and the pages only, no compilers, no sources, not root ---------------
FROM python:3.11.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="kosmos" \
      org.opencontainers.image.description="Kosmos personalization cluster: profile, feedback, recommendation, trainer" \
      org.opencontainers.image.source="https://github.com/kosmos-project/kosmos" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 kosmos \
 && useradd --system --uid 10001 --gid kosmos --no-create-home --shell /usr/sbin/nologin kosmos
COPY --from=plugins /opt/kosmos /opt/kosmos
COPY --from=web /src/services/web/dist /opt/kosmos/web
ENV PATH=/opt/kosmos/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    KOSMOS_WEB_DIR=/opt/kosmos/web
USER 10001:10001
EXPOSE 50051 50061 50062 50063 9464 8080
# Kubernetes probes over gRPC health (see deploy/k8s); this one serves `docker run`.
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import grpc, os; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; g.HealthStub(grpc.insecure_channel(os.environ.get('KOSMOS_HEALTH_TARGET', '127.0.0.1:50051'))).Check(h.HealthCheckRequest(), timeout=2)"]
ENTRYPOINT ["python", "-m"]
CMD ["kosmos.cluster"]
