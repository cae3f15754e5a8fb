# pyphys: the two commands of the quick start are `make demo` and `make test`.
# Every target does its own set-up (scripts/setup.sh is idempotent and fast when done).

PY      := .venv/bin/python
PYTEST  := $(PY) -m pytest


.PHONY: all setup lint kernel module demo test test-host test-install test-vm bench lab-times shell shell-stock checkpatch clean

all: demo

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/build-kernel.sh >/dev/null

module: kernel
	@scripts/build-module.sh "$$(scripts/build-kernel.sh 2>/dev/null)/linux"

# The lab demo: lab kernel + pyphys.ko + `pyphys hostname NinjaNinja`, uname -n before and after.
demo: kernel
	@$(PY) scripts/demo.py

# Lint and format check (ruff, configured in pyproject.toml): part of `make test`.
lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Every test, host and VM (each kernel booted once). Under CI=true a skipped VM test fails.
test: kernel lint
	@$(PYTEST) -ra --durations=30 $(PYTEST_ARGS)

test-host: setup
	@$(PYTEST) -ra --ignore=tests/vm $(PYTEST_ARGS)

# pyphys module install (DKMS) inside both stock guests: tens of minutes under TCG, so not in `test`.
test-install: setup
	@CI=true PYPHYS_INSTALL_TESTS=1 $(PYTEST) -ra tests/vm -m install $(PYTEST_ARGS)

test-vm: kernel
	@$(PYTEST) -ra tests/vm $(PYTEST_ARGS)

# Performance against the peers named in the issues, side by side in one run.
bench: kernel
	@$(PY) scripts/bench.py $(BENCH)

# Each classroom lab as a student runs it (lab start, solution, check): time to prompt, pass/fail.
lab-times: kernel
	@$(PY) scripts/lab-times.py $(LABS)

# An interactive shell in the lab VM (lab kernel, edu + ivshmem attached).
shell: kernel
	@$(PY) -m pyphys lab shell

shell-stock: setup
	@$(PY) -m pyphys lab shell --kernel stock

# kmod/compat.h exists to hold the version checks and the older kernels' spellings, so it is
# checked without the three warnings that flag exactly those; pyphys.c gets no exceptions.
CHECKPATCH_COMPAT_IGNORE := LINUX_VERSION_CODE,CONSTANT_COMPARISON,DEPRECATED_API

checkpatch: kernel
	@cp="$$(scripts/build-kernel.sh 2>/dev/null)/linux/scripts/checkpatch.pl"; \
	"$$cp" --strict --no-tree -f kmod/pyphys.c && \
	"$$cp" --strict --no-tree --ignore $(CHECKPATCH_COMPAT_IGNORE) -f kmod/compat.h

clean:
	rm -rf .venv .pytest_cache build *.egg-info
