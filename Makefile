# pyruntime: set-up, demo, tests, benchmarks. Everything the project needs is installed from here.
SHELL := /bin/bash
# Debian's python3.11 first: built with PGO and LTO, it starts and imports ~15% faster than a plain
# pyenv build (--enable-shared, no optimizations), and the runtime is started several times per container.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11 /root/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11) python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := build-essential libffi-dev libseccomp-dev libcap-dev python3.11-venv python3.11-dev busybox-static runc crun podman conmon \
	containernetworking-plugins uidmap tmux iproute2 qemu-system-x86 containerd criu time
ROOTFS := bundles/busybox/rootfs
SOURCES := $(shell find pyruntime csrc -name '*.py' -o -name '*.c' -o -name '*.h') pyproject.toml setup.py

.PHONY: all setup deps demo test test-unit test-integration test-podman podman-setup podman-teardown test-security test-vm bench lint clean bundles dev

all: setup bundles

## one of the two commands: install what is missing, build the example bundle, run a container in it
demo: setup bundles
	cd bundles/busybox && ../../$(VENV)/bin/pyruntime run demo-$$$$

## the other: the whole test suite (unit, integration, security, podman, VM tiers)
test: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests

test-unit: setup
	$(PY) -P -m pytest -q tests/unit
test-integration: setup bundles
	$(PY) -P -m pytest -q tests/integration
## cgroup v2 tier: tests/integration/test_cgroups.py inside one qemu guest (tests/vm/run-in-vm.sh)
test-vm: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/vm
## attack tests: malicious bundles and images against a real runtime (tests/security/_attack.py)
test-security: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/security
## podman + conmon end to end, with runc as the control (a private podman environment, see below)
test-podman: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/podman

## a private podman environment in .podman/ for trying pyruntime by hand (the user's config is untouched):
##   . .podman/env && podman --runtime pyruntime run --rm localhost/pyrt-busybox echo hi
PODMAN_DIR ?= $(CURDIR)/.podman
podman-setup: setup bundles
	sh tests/podman/setup.sh $(PODMAN_DIR) $(CURDIR)/$(VENV)/bin/pyruntime
	@echo "now: . $(PODMAN_DIR)/env && podman --runtime pyruntime run --rm localhost/pyrt-busybox echo hi"
podman-teardown:
	sh tests/podman/teardown.sh $(PODMAN_DIR)

deps: .stamp-apt
.stamp-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }; \
	fi
	@touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

setup: deps .stamp-install
.stamp-install: $(PY) $(SOURCES)
	$(PY) -m pip install -q '.[test,net]'
	$(PY) -I -m pyruntime.launcher  # a console script started with -IS (faster than pip's), the argv table
	@touch $@

## editable install for development (slower start-up: the editable finder costs ~10 ms per call)
dev: deps $(PY)
	$(PY) -m pip install -q -e '.[test,net]'
	$(PY) -I -m pyruntime.argtable  # the fast path's command-line table (pyruntime/_argtable.py)

bundles: $(ROOTFS)/bin/busybox
$(ROOTFS)/bin/busybox: bundles/make-rootfs.sh | deps
	sh bundles/make-rootfs.sh $(ROOTFS)

bench: setup bundles
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check pyruntime tests bench

clean:
	rm -rf build *.egg-info .stamp-* pyruntime/_native*.so pyruntime/_initstub pyruntime/_argtable.py $(ROOTFS)
