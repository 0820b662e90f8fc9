# Shared by both layers' Makefiles (layers/kubernetes/lambda-bytecode.mk is a symbolic link to this file, so each
# layer's folder holds it: sam build copies a layer's folder following links, and its cache hashes the linked
# file's content, so a change here rebuilds both layers).
#
# Why bytecode (`compile`): Lambda's /opt is read-only, so a layer without it is parsed and compiled again by every
# cold start. The .pyc are unchecked-hash: Python uses them without stat'ing the source or comparing timestamps,
# which the zip and Lambda's extraction are not trusted to keep. The .py stay, so tracebacks still show their lines.
# The bytecode must come from the runtime's Python (3.12: the magic number differs between versions, and a .pyc of
# another version is silently ignored), so a build insists on python3.12 (`make build` puts pyenv's on PATH).
# `make compile PYTHON_DIR=<dir> BYTECODE_PYTHON=<python>` compiles alone: the layer test and the cold-import
# benchmark use it with the interpreter that imports the result.

LAMBDA_PYTHON ?= python3.12
BYTECODE_PYTHON ?= $(LAMBDA_PYTHON)
PYTHON_DIR ?= $(ARTIFACTS_DIR)/python

.PHONY: compile check-lambda-python layer-size

check-lambda-python:
	@$(LAMBDA_PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null || { \
	  echo "$(LAMBDA_PYTHON) is missing or not Python 3.12, the Lambda runtime's version, which the layer's" \
	       "bytecode must match: put a python3.12 on PATH (make build sets PYENV_VERSION=3.11.7:3.12.1)" \
	       "or pass LAMBDA_PYTHON=." >&2; \
	  exit 1; }

compile:
	@test -d "$(PYTHON_DIR)" || { echo "no $(PYTHON_DIR) to compile" >&2; exit 1; }
	$(BYTECODE_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(PYTHON_DIR)"

# Unzipped bytes, what Lambda's limit counts (plain du rounds every small file up to a disk block).
layer-size:
	@du -sh --apparent-size "$(PYTHON_DIR)" 2>/dev/null || du -sh "$(PYTHON_DIR)"
