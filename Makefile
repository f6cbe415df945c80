# pyruntime: set-up, demo, tests, benchmarks. Everything the project needs is installed from here.
SHELL := /bin/bash
# Debian's python3.11 first: built with PGO and LTO, it starts and imports ~15% faster than a plain
# pyenv build (--enable-shared, no optimizations), and the runtime is started several times per container.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11 /root/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11) python3)
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := build-essential libffi-dev libseccomp-dev libcap-dev python3.11-venv python3.11-dev busybox-static runc crun podman conmon \
	containernetworking-plugins uidmap tmux iproute2 qemu-system-x86 containerd criu time \
	docker.io tini buildah
# (docker.io's postinst starts no daemon where policy-rc.d forbids it, as in containers and CI images;
# the docker tier starts its own dockerd and never uses /var/lib/docker or /run/docker.sock)
# apt_install PACKAGES: install those not installed yet (apt-get update only when the first try fails)
apt_install = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }; \
	fi
ROOTFS := bundles/busybox/rootfs
SOURCES := $(shell find pyruntime csrc -name '*.py' -o -name '*.c' -o -name '*.h') pyproject.toml setup.py

.PHONY: all setup deps deps-arm64 deps-bench demo test compat test-unit test-integration test-podman podman-setup podman-teardown test-security test-vm test-arm64 bench lint clean bundles dev \
	test-docker test-buildah test-kubernetes test-engines soak

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
## arm64 tier: tests/unit and a chosen part of tests/integration inside an emulated arm64 machine, with
## pyruntime pip-installed there (tests/vm/test_arm64_vm.py; 8-12 min; not part of `make test`).
## The first run builds the arm64 image (/var/cache/pyruntime-arm64-vm, ~5 min).
test-arm64: setup deps-arm64
	PYRUNTIME_TEST_ARM64=1 $(PY) -P -m pytest -q -s -p no:cacheprovider tests/vm/test_arm64_vm.py
ARM64_PACKAGES := qemu-system-arm mmdebstrap kmod e2fsprogs busybox-static python3.11
deps-arm64: .stamp-apt-arm64
.stamp-apt-arm64:
	@$(call apt_install,$(ARM64_PACKAGES))
	@touch $@
## attack tests: malicious bundles and images against a real runtime (tests/security/_attack.py)
test-security: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/security
## podman + conmon end to end, with runc as the control (a private podman environment, see below; as root
## and as a private unprivileged user: rootless podman, tests/podman/test_podman_rootless.py)
test-podman: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/podman

## dockerd (private: own data root, exec root, socket, containerd) with `--runtime pyrt` and runc as the control
test-docker: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/docker
## buildah bud/run/from scratch and podman build with RUN steps, pyruntime and runc
test-buildah: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/buildah
## a private containerd's CRI plugin driven over gRPC as kubelet does (handlers pyrt and runc)
test-kubernetes: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/kubernetes
## every engine tier
test-engines: setup bundles
	$(PY) -P -m pytest -q -p no:cacheprovider tests/podman tests/containerd tests/docker tests/buildah tests/kubernetes

## soak (not in `make test`): podman, docker and CRI clients in parallel, hundreds of containers each,
## CPU load beside; pyruntime runs through tests/soak/runtime-wrapper.sh.in, which keeps every failed
## runtime call with its --log in $(SOAK_DIR)/runtime-failures.log; per engine: containers run, failures,
## leaks, duration in $(SOAK_DIR)/report.txt; exits non-zero on any failure or leak.
## Knobs: SOAK_CLIENTS=4 SOAK_CONTAINERS=75 SOAK_LOAD=1 SOAK_RUNTIMES=pyruntime[,runc]
SOAK_DIR ?= $(CURDIR)/.soak
soak: setup bundles
	rm -rf $(SOAK_DIR) && mkdir -p $(SOAK_DIR)
	sed -e 's|@PYRT@|$(CURDIR)/$(VENV)/bin/pyruntime|; s|@OUT@|$(SOAK_DIR)|' tests/soak/runtime-wrapper.sh.in \
	  > $(SOAK_DIR)/pyruntime && chmod +x $(SOAK_DIR)/pyruntime
	SOAK_DIR=$(SOAK_DIR) PYRUNTIME_BIN=$(SOAK_DIR)/pyruntime $(PY) -P -m pytest -q -s -p no:cacheprovider \
	  tests/soak/soak_engines.py; rc=$$?; cat $(SOAK_DIR)/report.txt; \
	  echo "runtime calls that exited non-zero: $$(grep -c '^===' $(SOAK_DIR)/runtime-failures.log 2>/dev/null || echo 0)"; exit $$rc

## a private podman environment in .podman/ for trying pyruntime by hand (the user's config is untouched):
##   . .podman/env && podman --runtime pyruntime run --rm localhost/pyrt-busybox echo hi
PODMAN_DIR ?= $(CURDIR)/.podman
podman-setup: setup bundles
	sh tests/podman/setup.sh $(PODMAN_DIR) $(CURDIR)/$(VENV)/bin/pyruntime
	@echo "now: . $(PODMAN_DIR)/env && podman --runtime pyruntime run --rm localhost/pyrt-busybox echo hi"
podman-teardown:
	sh tests/podman/teardown.sh $(PODMAN_DIR)

deps: .stamp-apt
.stamp-apt: Makefile
	@$(call apt_install,$(APT_PACKAGES))
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

## runc's own integration suite (v1.1.5 bats) against runc and pyruntime, compared test by test.
## Not part of `make test`: it needs a hand-built copy of the suite (see the message below).
RUNC_BATS ?= $(CURDIR)/../shared/suites/runc-bats
RUNC_BATS_DIR ?= $(HOME)/.cache/oci-suites/runc-bats
COMPAT_OUT ?= /tmp/pyruntime-compat
compat: setup bundles
	@for p in bats jq gawk; do dpkg -s $$p >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$p; done
	@if [ ! -x $(RUNC_BATS)/run.sh ] || [ ! -d $(RUNC_BATS_DIR)/tests/integration ]; then \
	  echo "runc's bats suite is not built here: see $(RUNC_BATS)/README.md (RUNC_SRC=<runc v1.1.5 checkout> $(RUNC_BATS)/build.sh;"; \
	  echo "the search tool's fetch brings github:opencontainers/runc), or set RUNC_BATS / RUNC_BATS_DIR"; exit 2; fi
	RUNC_BATS_DIR=$(RUNC_BATS_DIR) RUNC_BATS_OUT=$(COMPAT_OUT)/runc $(RUNC_BATS)/run.sh -t 300 $$(command -v runc) $(FILES) || true
	RUNC_BATS_DIR=$(RUNC_BATS_DIR) RUNC_BATS_OUT=$(COMPAT_OUT)/pyruntime $(RUNC_BATS)/run.sh -t 300 $(CURDIR)/$(VENV)/bin/pyruntime $(FILES) || true
	$(PY) tests/compat/compare.py $(COMPAT_OUT)/runc/results.tsv $(COMPAT_OUT)/pyruntime/results.tsv

bench: setup bundles deps-bench
	$(PY) bench/run.py
## valgrind: the benchmark's instruction counts (load-independent; bench/run.py --only instructions)
BENCH_PACKAGES := valgrind
deps-bench: .stamp-apt-bench
.stamp-apt-bench:
	@$(call apt_install,$(BENCH_PACKAGES))
	@touch $@

lint: setup
	$(VENV)/bin/ruff check pyruntime tests bench

## the Python API's reference (pyruntime.api, the pytest plugin, the errors) from the docstrings, with
## pdoc (PyPI), in build/docs; a warning (an annotation pdoc cannot read...) fails the build
.PHONY: docs
docs: setup
	$(VENV)/bin/pip install -q 'pdoc>=14'
	rm -rf build/docs
	$(PY) -W error -m pdoc -o build/docs pyruntime.api pyruntime.pytest_plugin pyruntime.errors
	@echo "the API reference: build/docs/index.html"

clean:
	rm -rf build *.egg-info .stamp-* pyruntime/_native*.so pyruntime/_initstub pyruntime/_argtable.py $(ROOTFS)
