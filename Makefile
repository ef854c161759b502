# Two commands on a fresh machine: `make dev` runs the whole service, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install dev test lint fmt bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Python >= 3.10 is required" or 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

## dev: embedded Redis + Belvo sandbox + web + worker; prints a curl walk-through. Ctrl-C stops.
dev: install
	$(PY) -m devstack

## test: lint, then the whole suite against real redis-server, gunicorn, RQ workers and the sandbox.
test: install lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

fmt: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## bench: the benchmark suite (bench/results.json, bench/RESULTS.md, bench/latency.png); BENCH_ARGS=--quick for a short run.
bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
