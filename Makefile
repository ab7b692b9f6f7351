# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
# Where `make run` serves the demo: make run HOST=0.0.0.0 PORT=9000
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck pytest bench proof system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian tools the tests drive (HAProxy, wrk, PostgreSQL, podman, Prometheus); installed only when missing.
system-deps:
	@./.ci/system-deps

# The demo needs only the [demo] extra, not the test tools.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

run: $(DEMO_STAMP)
	$(BIN)/python -m uvicorn app.main:app --host $(HOST) --port $(PORT)

test: $(STAMP) system-deps lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

proof: $(STAMP) system-deps
	$(BIN)/python bench/rolling_restart.py --rounds 10

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
