# Kosmos — every target sets up what it needs; a clean clone runs `make run` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEN_STAMP := services/kosmos/v1/.generated
PROTOS := $(wildcard proto/kosmos/v1/*.proto) services/kosmos/oteldemo/demo.proto
PLUGINS := $(wildcard plugins/*/pyproject.toml)
# `make run` keeps its database and logs here.
RUN_DIR ?= var

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  \033[1m%-10s\033[0m %s\n",$$1,$$2}'

$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' $(foreach p,$(dir $(PLUGINS)),-e ./$(p))
	touch $@

$(GEN_STAMP): $(STAMP) $(PROTOS) tools/gen_proto.py
	$(PY) tools/gen_proto.py
	touch $@

# The Node.js example plugin (plugins/node-example): its tests run the conformance suite over
# gRPC. Without npm its tests skip, except under CI=true, where they fail.
NODE_PLUGIN := plugins/node-example
NODE_STAMP := $(NODE_PLUGIN)/node_modules/.installed

$(NODE_STAMP): $(NODE_PLUGIN)/package-lock.json
	@if command -v npm >/dev/null; then \
	  echo "npm ci --prefix $(NODE_PLUGIN)" && npm ci --prefix $(NODE_PLUGIN) --no-audit --no-fund && touch $@; \
	else echo "npm not found: $(NODE_PLUGIN) is not installed and its tests will skip"; fi

# The browser side (services/web): the TypeScript client generated from the protos, the
# storefront and the dashboard, built into services/web/dist, which the HTTP port serves.
# Without npm the pages are missing and the Node and browser tests skip, except under CI=true.
WEB := services/web
WEB_STAMP := $(WEB)/dist/.built
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/storefront $(WEB)/dashboard $(WEB)/test -name '*.ts' -not -path '*/gen/*' 2>/dev/null) \
  $(wildcard $(WEB)/*/index.html) $(WEB)/style.css $(WEB)/build.mjs $(WEB)/gen.sh

$(WEB_STAMP): $(WEB)/package-lock.json $(PROTOS) $(WEB_SOURCES) $(STAMP)
	@if command -v npm >/dev/null; then \
	  set -e; npm ci --prefix $(WEB) --no-audit --no-fund; \
	  npm run --prefix $(WEB) gen; npm run --prefix $(WEB) build; touch $@; \
	else echo "npm not found: $(WEB) is not built (no storefront, dashboard or Node client)"; fi

# The browser tests drive Debian's chromium through playwright-core; installed when missing
# (apt-get, as root), else they skip, except under CI=true.
CHROMIUM ?= /usr/bin/chromium

.PHONY: chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y chromium >/dev/null || (apt-get update >/dev/null && apt-get install -y chromium >/dev/null); \
	  else echo "$(CHROMIUM) not found and not root: the browser tests will skip"; fi; fi

.PHONY: setup
setup: $(STAMP) $(GEN_STAMP) $(NODE_STAMP) $(WEB_STAMP) ## Create .venv, install Kosmos and the plugins, generate code, build the web pages.

.PHONY: proto
proto: $(STAMP) ## Generate Python code from proto/kosmos/v1.
	$(PY) tools/gen_proto.py
	touch $(GEN_STAMP)

# checkov (the policy check on deploy/k8s and the Dockerfile) lives in its own venv: its
# pinned dependencies would fight ours.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install -q 'checkov>=3.2,<4'
	touch $@

.PHONY: checkov
checkov: $(CHECKOV_STAMP) ## Install checkov into its own venv (.venv-checkov).

.PHONY: manifests
manifests: setup $(CHECKOV_STAMP) ## Render deploy/k8s overlays, validate them against the Kubernetes schemas, policy-check them and the Dockerfile.
	$(PY) tools/manifests.py --checkov $(CHECKOV) --out $(RUN_DIR)/manifests

.PHONY: test
test: setup $(CHECKOV_STAMP) chromium ## Run the whole test suite.
	$(PY) -m pytest tests $(wildcard plugins/*/tests)

# The CI suite runs the fuzz tests at 20,000 raw requests and 60 examples per RPC group; this
# runs them ten times longer, printing the status-code table. FUZZ_SEED=n varies the bytes.
FUZZ_REQUESTS ?= 200000
FUZZ_EXAMPLES ?= 600

.PHONY: fuzz
fuzz: setup ## Fuzz every RPC for longer than CI does (hostile messages and mutated bytes).
	FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(PY) -m pytest -s -q tests/test_fuzz_wire.py tests/test_fuzz_requests.py

# make run routes customers with history to ALS (small factors suit the small demo shop) and new
# ones to popularity, which fills in behind ALS too. This chain scored best on the synthetic shop:
#   kosmos evaluate --dataset synthetic --recommenders popularity,als,lightfm \
#     --set als.factors=8 --set als.regularization=2 --routing "warm=als,popularity;cold=popularity"
# Override any of it from the environment: KOSMOS_ROUTING=... make run.
DEMO_ROUTING := warm=als,popularity;cold=popularity

.PHONY: run
run: setup ## Load the demo shop, train, and start the whole cluster on one machine (SQLite).
	KOSMOS_ROUTING="$${KOSMOS_ROUTING:-$(DEMO_ROUTING)}" \
	KOSMOS_PLUGIN__ALS__FACTORS="$${KOSMOS_PLUGIN__ALS__FACTORS:-8}" \
	KOSMOS_PLUGIN__ALS__REGULARIZATION="$${KOSMOS_PLUGIN__ALS__REGULARIZATION:-2}" \
	$(PY) -m kosmos.demo --dir $(RUN_DIR)

# Real data for evaluation and benchmarks (never committed); synthetic data stands in without it.
DATA_DIR ?= ../shared/data
RETAIL := $(DATA_DIR)/online-retail/online_retail.csv.gz

.PHONY: bench
bench: setup ## Recommend vs an empty RPC (1 and 2 processes); grpc.aio; catalog size; plugin scoring vs numpy; freshness (a change to the next Recommend, 1 and 2 replicas); bulk import vs a plain batched insert (SQLite and PostgreSQL); memory per item and customer; the popularity model's fit, save and load; JSON on the request path (stdlib vs orjson); server tracing per call (ours vs the instrumentation's); Recommend, ANN recall and fit time as the shop grows; the HTTP port vs gRPC.
	mkdir -p $(RUN_DIR)
	$(PY) tools/bench.py --plot $(RUN_DIR)/bench-latency.png
	$(PY) tools/bench_aio.py
	$(PY) tools/bench_catalog.py
	$(PY) tools/bench_store.py
	$(PY) tools/bench_choices.py
	$(PY) tools/bench_import.py
	$(PY) tools/bench_memory.py
	$(PY) tools/bench_popularity.py
	$(PY) tools/bench_json.py
	$(PY) tools/bench_tracing.py
	$(PY) tools/bench_scale.py
	$(PY) tools/bench_http.py
	@if [ -f "$(RETAIL)" ]; then \
	  $(PY) plugins/implicit/bench.py --data "$(RETAIL)" && $(PY) plugins/lightfm/bench.py --data "$(RETAIL)" \
	    && $(PY) plugins/ranker/bench.py --data "$(RETAIL)"; \
	else echo "($(RETAIL) not found: plugin benchmarks on synthetic data)"; \
	  $(PY) plugins/implicit/bench.py --data synthetic && $(PY) plugins/lightfm/bench.py --synthetic \
	    && $(PY) plugins/ranker/bench.py --data synthetic; fi

.PHONY: bench-quality
bench-quality: setup ## What Recommend serves over gRPC on the real data, beside the plugins and the libraries.
	@if [ -f "$(RETAIL)" ]; then \
	  $(PY) tools/bench_quality.py --data-dir "$(DATA_DIR)" --dataset online-retail && \
	  $(PY) tools/bench_quality.py --data-dir "$(DATA_DIR)" --dataset online-retail --repeats && \
	  $(PY) tools/bench_quality.py --data-dir "$(DATA_DIR)" --dataset ml-100k; \
	else echo "($(DATA_DIR) not found: make bench-quality needs the real data sets)"; fi

.PHONY: lint
lint: setup ## ruff, mypy and buf lint.
	$(BIN)/ruff format --check services tests tools plugins
	$(BIN)/ruff check services tests tools plugins
	$(BIN)/mypy services
	@if [ -d $(WEB)/node_modules ]; then echo "tsc --noEmit ($(WEB))"; npm run --silent --prefix $(WEB) typecheck; fi
	cd proto && ../$(BIN)/buf lint
	@# Wire compatibility of the working tree against the last commit (checks uncommitted edits).
	cd proto && ../$(BIN)/buf breaking --against '../.git#ref=HEAD,subdir=proto'

.PHONY: fmt
fmt: setup ## Format the code.
	$(BIN)/ruff format services tests tools plugins
	$(BIN)/ruff check --fix services tests tools plugins

.PHONY: clean
clean: ## Remove the virtual environment, generated code and run state.
	rm -rf $(VENV) $(CHECKOV_VENV) $(RUN_DIR) services/kosmos/v1/*_pb2*.py* $(GEN_STAMP) \
	  $(WEB)/node_modules $(WEB)/dist $(WEB)/src/gen
