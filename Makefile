# Edgeline: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed or built here (and cached outside the repo).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# Components the tests and the demo need, built from Go modules (dev/versions.env).
TOOLS := etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm kubelet containerd containerd-shim-runc-v2

.PHONY: help setup tools test test-unit test-integration test-e2e demo demo-down crds crds-check chart-sync chart-check argocd argocd-check lint bench clean

help:
	@echo "make demo      local hub + two edge clusters, the operator and the samples (Ctrl-C stops)"
	@echo "make test      unit and end-to-end tests against real clusters, then tear down"
	@echo "make crds      regenerate crds/ from the API models;  make crds-check  verify them"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*; touch $@

setup: $(STAMP)

tools:
	bash dev/build-tools.sh $(TOOLS)
	bash dev/install-node-tools.sh
	bash dev/install-monitoring.sh
	bash dev/build-luahealth.sh >/dev/null

test: setup tools images
	$(PY) -m pytest tests

# The operator and edge runtime images (images/), built with podman on a Debian base made here;
# cached in ~/.cache/edgeline/images, found through .edgeline/images.env. docs/install.md.
.PHONY: images images-push
images:
	bash dev/build-images.sh

images-push:
	@test -n "$(REGISTRY)" || { echo "usage: make images-push REGISTRY=host:port" >&2; exit 2; }
	bash dev/build-images.sh --push $(REGISTRY)

test-unit: setup
	$(PY) -m pytest tests/unit

test-integration: setup tools
	$(PY) -m pytest tests/integration

test-e2e: setup tools images
	$(PY) -m pytest tests/e2e

demo: setup tools images
	$(PY) dev/demo.py

demo-down: setup
	$(PY) dev/demo.py --down

crds: setup
	$(PY) -m edgeline.api.crdgen --out crds
	$(MAKE) chart-sync

# The chart carries copies of crds/, the PrometheusRule and the user roles; install.yaml is rendered from it.
chart-sync: setup
	$(PY) helm/sync-crds.py && $(PY) helm/render-install.py

chart-check: setup
	$(PY) helm/sync-crds.py --check && $(PY) helm/render-install.py --check

crds-check: setup
	$(PY) -m edgeline.api.crdgen --check crds

argocd: setup
	$(PY) manifests/argocd/render_cm.py

argocd-check: setup
	$(PY) manifests/argocd/render_cm.py --check

# Long (about an hour on 2 cores); not part of `make test`.
bench: setup tools
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	$(PY) bench/artifacts/bench_fetch.py
	$(PY) bench/fanout/bench_fanout.py
	$(PY) bench/rollback/bench_rollback.py
	$(PY) bench/scale/bench_scale.py
	$(PY) bench/runtime/bench_infer.py
	$(PY) bench/plot.py

lint: setup
	$(VENV)/bin/lint-imports

clean:
	-$(VENV)/bin/edgeline dev down
	rm -rf .edgeline
