# Every target installs what it needs: a fresh machine runs `make demo` and `make test` and nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sam build of python3.12 functions needs a python3.12 on PATH; pyenv provides one on these machines.
SAM_ENV := AWS_DEFAULT_REGION=us-west-2 AWS_REGION=us-west-2 SAM_CLI_TELEMETRY=0 PYENV_VERSION=3.11.7:3.12.1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all install registry-bin node-deps lint typecheck unit test validate build demo bench deploy lock clean diagrams

all: test

$(STAMP): requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP)

# CNCF distribution from Debian: the real registry the cache tests and the sandbox run.
registry-bin:
	@command -v docker-registry >/dev/null || test -x /usr/bin/docker-registry || { \
	  echo "installing Debian's docker-registry"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry) >/dev/null; }
	@# The package starts a system service; the tests run their own instances on free ports instead.
	@-systemctl disable --now docker-registry >/dev/null 2>&1 || true
	@-pkill -x docker-registry >/dev/null 2>&1 || true

# asl-validator (npm), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

node-deps: $(NODE_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/core/fargate_app

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

validate: $(STAMP)
	$(SAM_ENV) $(BIN)/sam validate --lint --template template.yaml

build: $(STAMP)
	$(SAM_ENV) $(BIN)/sam build --template template.yaml --cached --parallel

test: $(STAMP) $(NODE_STAMP) registry-bin lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadgroup
	$(MAKE) validate build

demo: $(STAMP) registry-bin
	$(BIN)/fargate-app sandbox run --request examples/nginx.json --teardown

deploy: build
	$(BIN)/sam deploy --guided

lock:
	rm -rf /tmp/fargate-app-lock && $(PYTHON) -m venv /tmp/fargate-app-lock
	/tmp/fargate-app-lock/bin/pip install --quiet -r requirements-dev.in
	( echo "# Generated from requirements-dev.in with pip freeze (Python 3.11): regenerate with 'make lock'."; \
	  /tmp/fargate-app-lock/bin/pip freeze ) > requirements-dev.txt

# The state-machine diagrams of the README, drawn from the ASL with graphviz (Debian).
diagrams: $(STAMP)
	@command -v dot >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null)
	$(BIN)/python tools/asl_diagram.py statemachine/*.asl.json --out docs/statemachines

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
