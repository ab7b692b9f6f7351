# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
# Where `make run` serves the demo: make run HOST=0.0.0.0 PORT=9000
HOST ?= 127.0.0.1
PORT ?= 8000
# The project's tools are PEP 735 dependency groups (pyproject.toml), which pip installs
# from 25.1 on; the extras are the published ones, installed as a user would.
PIP_INSTALL := python -m pip install --quiet
TOOLS := -e '.[gunicorn,metrics]' --group test --group lint
# The newer Pythons run the in-process suite (every test not marked `server`), mypy and the
# real-uvicorn drain tests, each in its own .venv-X.Y; the full suite, real servers included,
# runs on the .venv above. HOST_PYTHONS are found on this machine (.ci/find-python);
# ROOT_PYTHONS run in a Debian unstable root (.ci/in-root), as Debian 12 has no 3.14 or 3.15.
# With your own 3.14 and 3.15: make test HOST_PYTHONS="3.12 3.13 3.14 3.15" ROOT_PYTHONS=
HOST_PYTHONS ?= 3.12 3.13
ROOT_PYTHONS ?= 3.14 3.15
OTHER_PYTHONS := $(HOST_PYTHONS) $(ROOT_PYTHONS)
# How a command runs for Python $(1): in the root, or here.
in_env = $(if $(filter $(1),$(ROOT_PYTHONS)),./.ci/in-root )

.PHONY: run test lint package typecheck docs pytest other-pythons peers peers-in-test bench proof \
  system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) --upgrade 'pip>=25.1'
	$(BIN)/$(PIP_INSTALL) $(TOOLS) --group docs
	touch $(STAMP)

# Kept between runs: make would otherwise delete these intermediate stamps and reinstall.
.PRECIOUS: .venv-%/.installed
.venv-%/.installed: pyproject.toml
	@if [ -n "$(call in_env,$*)" ]; then python=python$*; \
	  else python=$$(./.ci/find-python $*) || exit 1; fi && \
	  { test -x .venv-$*/bin/python || $(call in_env,$*)"$$python" -m venv .venv-$*; }
	$(call in_env,$*).venv-$*/bin/$(PIP_INSTALL) --upgrade 'pip>=25.1'
	$(call in_env,$*).venv-$*/bin/$(PIP_INSTALL) $(TOOLS)
	touch $@

# Debian tools the tests drive (HAProxy, wrk, PostgreSQL, podman, Prometheus, debootstrap);
# installed only when missing.
system-deps:
	@./.ci/system-deps

# The demo needs only the demo group and the metrics extra, not the test tools.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) --upgrade 'pip>=25.1'
	$(BIN)/$(PIP_INSTALL) -e '.[metrics]' --group demo
	touch $(DEMO_STAMP)

run: $(DEMO_STAMP)
	$(BIN)/python -m uvicorn app.main:app --host $(HOST) --port $(PORT)

test: $(STAMP) system-deps lint package typecheck docs pytest other-pythons peers-in-test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture

# The sdist and the wheel a release would upload, checked as PyPI would read them.
package: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/), built into site/; --strict makes every warning
# (a broken link or anchor, a page out of the nav, a missing snippet) an error. Material's
# notice of its end of life is silenced here: docs/design.md ("Documentation") records it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# Two at a time: a leg uses under half a core (its tests mostly wait on timers), so two keep
# CI within its 25 minutes on two cores, while the 3.11 run of the real servers, whose timing
# margins a busy machine can exceed, runs alone before them. Each leg's output is kept whole.
OTHER_JOBS ?= 2
other-pythons:
	$(MAKE) --no-print-directory -j$(OTHER_JOBS) --output-sync=target \
	  $(foreach v,$(OTHER_PYTHONS),pytest-$(v))

# mypy first: it is quick, and a version-specific typing error reads better than a failing test.
pytest-%: .venv-%/.installed
	$(call in_env,$*).venv-$*/bin/mypy --python-version $*
	$(call in_env,$*).venv-$*/bin/pytest -m "not server" -q -p no:cacheprovider $(PYTEST_ARGS)
	$(call in_env,$*).venv-$*/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS) \
	  tests/servers/test_uvicorn_drain.py

# Other projects' suites with the middleware around every app, against their own baseline:
# see peers/README.md. The sdists and the environments they need are cached outside the clone.
PEERS_STAMP := .venv-peers/.installed
$(PEERS_STAMP): pyproject.toml peers/requirements.txt
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet --upgrade pip
	.venv-peers/bin/python -m pip install --quiet -e . -r peers/requirements.txt
	touch $@

# `make peers` runs every suite; `make test` all but FastAPI's, whose 5,000 tests take two
# cores 7 minutes, beyond CI's 25 with five Pythons (peers/README.md has its last results).
PEERS ?=
TEST_PEERS ?= starlette asgi-lifespan sse-starlette starlette-context
peers: $(PEERS_STAMP)
	.venv-peers/bin/python peers/run.py $(PEERS)

peers-in-test: $(PEERS_STAMP)
	.venv-peers/bin/python peers/run.py $(TEST_PEERS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

proof: $(STAMP) system-deps
	$(BIN)/python bench/rolling_restart.py --rounds 10

clean:
	rm -rf $(VENV) $(foreach v,$(OTHER_PYTHONS),.venv-$(v)) .venv-peers .mypy_cache .pytest_cache \
	  .ruff_cache site dist
