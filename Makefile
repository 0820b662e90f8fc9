# Every target installs what it needs: a fresh machine runs `make demo` and `make test` and nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sam build of python3.12 functions needs a python3.12 on PATH; pyenv provides one on these machines.
SAM_ENV := AWS_DEFAULT_REGION=us-west-2 AWS_REGION=us-west-2 SAM_CLI_TELEMETRY=0 PYENV_VERSION=3.11.7:3.12.1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all install deps registry-bin skopeo-bin node-deps checkov lint typecheck unit test iam reliability mutation validate build demo bench deploy lock clean diagrams

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
	@# The package may start a system service on :5000; the tests run their own instances on free ports instead.
	@-systemctl disable --now docker-registry >/dev/null 2>&1 || true

# asl-validator (npm), pinned by package-lock.json.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

node-deps: $(NODE_STAMP)

# checkov (tests/reliability's security checks) pins boto3 < 1.36, which the dev environment cannot share: it gets
# its own venv inside .venv, pinned here.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(CHECKOV_STAMP)

# The three installs side by side: each waits on downloads and the disk as much as on the CPU (a fresh clone: pip
# 1.5 min, checkov's own venv 0.8 min, npm seconds). checkov's venv goes inside .venv once .venv itself exists.
deps:
	mkdir -p $(VENV)
	$(MAKE) --no-print-directory -j3 $(STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p fargate_app -p fargate_app_cli -p fargate_sandbox -p kube_emulator -p benchmarks

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

validate: $(STAMP)
	$(SAM_ENV) $(BIN)/sam validate --lint --template template.yaml

build: $(STAMP)
	$(SAM_ENV) $(BIN)/sam build --template template.yaml --cached --parallel

# The whole suite once; its sandboxes record their authorization decisions, and docs/iam.md's goals are checked with
# one grant removed per role and ClusterRole (`make iam` removes every grant and writes the page). Three workers on two
# cores: the sandbox tests spend a third of their time waiting on scaled waits and servers, which a third worker fills.
IAM_RESULTS := .iam-results
test: deps registry-bin skopeo-bin lint typecheck
	rm -rf $(IAM_RESULTS)
	KUBECTL=$$($(BIN)/python tools/kubectl.py --dest $(BIN)) KUBECTL_CONFORMANCE_DOC=$(CURDIR)/docs/sandbox.md \
	  IAM_RESULTS_DIR=$(CURDIR)/$(IAM_RESULTS) IAM_GRANT_MUTATIONS=sample $(BIN)/pytest -q -n 3 --dist loadgroup
	$(BIN)/python tools/iam_report.py --results $(IAM_RESULTS) --check
	$(BIN)/python tools/mutation_run.py --sample
	$(MAKE) validate build

# Least privilege, proven: every grant beside the calls it allowed, the mutation test, parliament (docs/iam.md). Fails when
# a call is refused, a finding is unexplained or a grant is unused or unnecessary.
iam: $(STAMP) registry-bin
	rm -rf $(IAM_RESULTS)
	KUBECTL=$$($(BIN)/python tools/kubectl.py --dest $(BIN)) IAM_RESULTS_DIR=$(CURDIR)/$(IAM_RESULTS) \
	  $(BIN)/pytest -q -n 2 --dist loadgroup tests/e2e tests/reliability tests/iam
	$(BIN)/python tools/iam_report.py --results $(IAM_RESULTS) --out docs/iam.md

# docs/reliability.md's figures: the reliability suite, with the e2e and sandbox tests under the same credential scan, then
# docs/reliability.md from what each pytest process recorded. Fails when a test fails or a goal is missed.
reliability: $(STAMP) registry-bin checkov
	@results=$$(mktemp -d); \
	RELIABILITY_RESULTS_DIR=$$results IAM_RESULTS_DIR=$$results/iam \
	  $(BIN)/pytest -q -n 2 --dist loadgroup tests/reliability tests/e2e tests/sandbox \
	  tests/unit/test_asl_dataflow.py; \
	status=$$?; \
	$(BIN)/python tools/reliability_report.py --results $$results --out docs/reliability.md || status=1; \
	rm -rf $$results; exit $$status

# The mutation figure: mutmut over fargate_app against the unit and integration tests (docs/mutation.json, section 8
# of docs/reliability.md), and every e2e/reliability test file run by itself. Verdicts are kept per module: this
# measures the modules changed since their verdicts (or whose run stopped), so a long figure is brought up to date a
# few modules at a time. Not part of `make test`, which runs `tools/mutation_run.py --sample`: a fixed sample whose
# mutants must all be killed.
mutation: $(STAMP) registry-bin checkov
	$(BIN)/python tools/mutation_run.py --stale
	$(BIN)/python tools/mutation_report.py --alone

demo: $(STAMP) registry-bin
	KUBECTL=$$($(BIN)/python tools/kubectl.py --dest $(BIN)) \
	  $(BIN)/fargate-app sandbox run --request examples/nginx.json --teardown

# Debian's skopeo: figure 4's baseline (a `skopeo copy` through the same pull-through proxy).
skopeo-bin:
	@command -v skopeo >/dev/null || { \
	  echo "installing Debian's skopeo"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo) >/dev/null; }

# Every figure of docs/benchmarks.md, measured on this machine (a few minutes); prints the table, rewrites the doc.
bench: $(STAMP) registry-bin skopeo-bin build
	KUBECTL=$$($(BIN)/python tools/kubectl.py --dest $(BIN)) $(BIN)/python -m benchmarks

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
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache $(IAM_RESULTS) .mutation .mutation-sample
