# Two commands on a fresh machine: `make dev` runs the whole service, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The Dockerfile's base image, pinned by digest (the same as docker-compose.yml's x-base-image).
BASE_IMAGE := python:3.11-slim-bookworm
BASE_DIGEST := sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
IMAGE ?= belvo-mfa-sessions

.PHONY: install dev test test-fast lint fmt bench image clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Python >= 3.10 is required" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

## dev: embedded Redis + Belvo sandbox + web + worker; prints a curl walk-through. Ctrl-C stops.
dev: install
	$(PY) -m devstack

## test: lint, then both tiers: the fast in-process tier, then the system tier on real processes.
test: install lint
	$(PY) -m pytest

## test-fast: the in-process tier only (real Redis and sandbox, no process stacks): well under a minute.
test-fast: install
	$(PY) -m pytest -m "not system"

## lint: ruff, the layering contract (import-linter) and types (mypy, strict on the core package mfa/).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

fmt: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## bench: the benchmark suite (bench/results.json, bench/RESULTS.md, bench/latency.png); BENCH_ARGS=--quick for a short run.
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m bench $(BENCH_ARGS)

## image: the production image (web and worker, no sandbox), its base pinned by digest (needs Docker BuildKit).
image:
	docker buildx build --build-context $(BASE_IMAGE)=docker-image://$(BASE_IMAGE)@$(BASE_DIGEST) \
		--target production -t $(IMAGE) .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
