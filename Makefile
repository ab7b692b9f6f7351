# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
# Where `make run` serves the demo: make run HOST=0.0.0.0 PORT=9000
HOST ?= 127.0.0.1
PORT ?= 8000
# The newer Pythons run the in-process suite (every test not marked `server`) and mypy, each
# in its own .venv-X.Y; the full suite, real servers included, runs on the .venv above.
OTHER_PYTHONS := 3.12 3.13

.PHONY: run test lint typecheck docs pytest other-pythons peers bench proof system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Kept between runs: make would otherwise delete these intermediate stamps and reinstall.
.PRECIOUS: .venv-%/.installed
.venv-%/.installed: pyproject.toml
	@python=$$(./.ci/find-python $*) && \
	  { test -x .venv-$*/bin/python || "$$python" -m venv .venv-$*; }
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -e '.[test]'
	touch $@

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

test: $(STAMP) system-deps lint typecheck docs pytest other-pythons peers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture

typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/), built into site/; --strict makes every warning
# (a broken link or anchor, a page out of the nav, a missing snippet) an error. Material's
# notice of its end of life is silenced here: docs/design.md ("Documentation") records it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

other-pythons: $(foreach v,$(OTHER_PYTHONS),pytest-$(v))

# mypy first: it is quick, and a version-specific typing error reads better than a failing test.
pytest-%: .venv-%/.installed
	.venv-$*/bin/mypy --python-version $*
	.venv-$*/bin/pytest -m "not server" -q -p no:cacheprovider $(PYTEST_ARGS)

# Other projects' suites with the middleware around every app, against their own baseline:
# see peers/README.md. The sdists and the environments they need are cached outside the clone.
PEERS_STAMP := .venv-peers/.installed
$(PEERS_STAMP): pyproject.toml peers/requirements.txt
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet --upgrade pip
	.venv-peers/bin/python -m pip install --quiet -e . -r peers/requirements.txt
	touch $@

peers: $(PEERS_STAMP)
	.venv-peers/bin/python peers/run.py $(PEERS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

proof: $(STAMP) system-deps
	$(BIN)/python bench/rolling_restart.py --rounds 10

clean:
	rm -rf $(VENV) $(foreach v,$(OTHER_PYTHONS),.venv-$(v)) .venv-peers .mypy_cache .pytest_cache .ruff_cache site
