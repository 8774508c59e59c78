# Two entry points: `make run` starts the platform, `make test` runs the whole suite.
# Everything else here is what those two need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GEN := build/gen/python
PROTOS := $(shell find proto -name '*.proto')
# Folders that hold the platform's Python packages: the runtime, every service folder (each
# declares its context in crm_<name>/context.py, found by crm_runtime.context), the tools.
PKG_DIRS := runtime $(sort $(wildcard services/*)) tools $(GEN) .

.PHONY: run test check setup venv proto kafka-jars postgres lock bench lint clean
BUF_VERSION := v1.75.0
BUF := .cache/bin/buf

# DEMO_LEADS=N captures N demo leads through the API once the platform is up.
run: setup
	DEMO_LEADS=$(DEMO_LEADS) $(PY) -m crm_devstack run

test: setup postgres check
	$(PY) -m crm_devstack test -- $(PYTEST_ARGS)

# Python lint and types (pyproject.toml): ruff everywhere, mypy with the runtime strict.
# Every service package (services/*/crm_*) is checked, so a new context is too.
TYPED_PKGS := crm_runtime $(notdir $(wildcard services/*/crm_*)) crm_devstack
check: setup
	$(PY) -m ruff check runtime services tools tests bench
	$(PY) -m mypy $(addprefix -p ,$(TYPED_PKGS))

# BENCH=steady_load.py (or throughput.py, leads_import.py) runs one of them.
bench: setup
	$(PY) -m crm_devstack bench $(BENCH)

setup: venv proto kafka-jars

venv: $(VENV)/.installed $(VENV)/.paths

$(VENV)/.installed: requirements.txt
	# A venv without pip (python3-venv missing when it was made) is made again.
	$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV) || \
	  { rm -rf $(VENV); echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; }; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# The platform's packages are found through a .pth file: no copy to keep in sync.
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  printf '%s\n' $(addprefix $(CURDIR)/,$(PKG_DIRS)) > "$$site/crm-platform.pth"
	touch $@

# A service folder added since the venv was made joins the import path.
$(VENV)/.paths: $(VENV)/.installed $(wildcard services/*)
	site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  printf '%s\n' $(addprefix $(CURDIR)/,$(PKG_DIRS)) > "$$site/crm-platform.pth"
	touch $@

proto: $(GEN)/.stamp

$(GEN)/.stamp: $(PROTOS) $(VENV)/.installed
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(GEN) --pyi_out=$(GEN) \
	  --grpc_python_out=$(GEN) $(PROTOS)
	touch $@

kafka-jars: $(VENV)/.installed
	$(PY) -c 'from pathlib import Path; from crm_devstack.kafka_broker import ensure_jars; ensure_jars(Path(".cache"))'

postgres:
	bash deploy/local/ensure-postgres.sh

# Proto lint (buf STANDARD rules, see buf.yaml) and breaking-change check against main.
lint: $(BUF)
	$(BUF) lint
	if git rev-parse --verify -q main >/dev/null; then $(BUF) breaking --against '.git#branch=main'; fi

$(BUF):
	GOBIN=$(CURDIR)/.cache/bin go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

# Re-resolve the pinned set from requirements.in.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q -r requirements.in
	{ echo "# Generated from requirements.in by 'make lock'; every version pinned."; \
	  build/lock-venv/bin/pip freeze; } > requirements.txt

clean:
	rm -rf build $(VENV)
