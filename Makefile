# Two commands for a fresh machine: `make demo` and `make test`.
#
# Every install goes through constraints.txt, the lock of the tested environment (CPython 3.11
# on Linux x86_64, every extra: test, bench, formats, cluster, notebook, gpu). A newer release
# upstream cannot change what `make test` installs; `make upgrade` moves the lock on purpose.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt
# What the lock is compiled for: the Python and platform CI, the Docker image and the tests use.
LOCK_IN    := pyproject.toml constraints-tools.in
LOCK_FLAGS := --extra test --extra bench --extra formats --extra cluster --extra notebook --extra gpu \
              --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
              --no-emit-package bioxen-dask --custom-compile-command "make lock"
# An environment with no lock: the newest releases pip resolves today (see README, "Versions").
LATEST := .venv-latest

.PHONY: demo test test-fast install lock upgrade test-latest bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip setuptools wheel

$(STAMP): $(PY) pyproject.toml $(LOCK) deploy/install-system-deps.sh
	-sh deploy/install-system-deps.sh
	$(PY) -m pip install --quiet -c $(LOCK) --build-constraint $(LOCK) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bioxen-dask demo --out demo-output

test: $(STAMP)
	$(PY) -m pytest -q

# The quick tier: everything but the integration tests marked slow (clusters in subprocesses,
# SIGKILL, gateway, notebooks). `make test` (and CI, .ci/run) runs them all.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The lock: compiled by uv from pyproject.toml's ranges. `make lock` keeps every pin that still
# satisfies pyproject.toml (after editing a range); `make upgrade` takes the newest releases.
$(VENV)/bin/uv: $(PY)
	$(PY) -m pip install --quiet -c $(LOCK) uv

lock: $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile $(LOCK_IN) $(LOCK_FLAGS) -o $(LOCK)

upgrade: $(VENV)/bin/uv
	$(VENV)/bin/uv pip compile $(LOCK_IN) $(LOCK_FLAGS) --upgrade -o $(LOCK)

# The suite against the newest releases, without the lock (what a `pip install bioxen-dask`
# user gets today). The lock-consistency tests skip there, by name.
test-latest:
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	-sh deploy/install-system-deps.sh
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[test]"
	BIOXEN_DASK_UNLOCKED=1 $(LATEST)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -c $(LOCK) --build-constraint $(LOCK) -e ".[bench]"
	$(VENV)/bin/bioxen-dask bench all

clean:
	rm -rf $(VENV) $(LATEST) demo-output bench-output .pytest_cache
