# Sprechzimmer — developer entry points. `make up` is the main job, `make test` the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COMPONENTS := contract hack/devcluster operator media-pod signaling
PYPROJECTS := $(addsuffix /pyproject.toml,$(COMPONENTS))

.PHONY: help packages dev tools up links down status lint test test-unit e2e

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt $(PYPROJECTS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt $(addprefix -e ,$(COMPONENTS))
	touch $@

dev: $(VENV)/.installed ## install every component editable, plus the test tools, into .venv

packages: ## install the Debian packages the project needs (coturn, chromium, containerd, …), if missing
	hack/install-packages.sh

tools: ## build the pinned Kubernetes toolchain (cached in ~/.cache/sprechzimmer)
	hack/build-tools.sh

up: packages dev tools ## start the local cluster (with a real node where possible), operator, TURN server and signaling, apply the samples
	$(PY) -m sprechzimmer.devcluster.cli up --with=operator,turn,signaling --real-node=auto
	@echo; $(CURDIR)/.tools/bin/kubectl --kubeconfig .cluster/kubeconfig get vs -A
	@echo; $(PY) -m sprechzimmer.devcluster.cli links

links: dev ## print the 1:1 sample session's two join links
	$(PY) -m sprechzimmer.devcluster.cli links

down: dev ## stop the local cluster and remove .cluster/
	$(PY) -m sprechzimmer.devcluster.cli down

status: dev ## is the local cluster running?
	$(PY) -m sprechzimmer.devcluster.cli status

lint: dev ## ruff, formatting, mypy and the import-direction contracts (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(addsuffix /src,$(COMPONENTS)) hack/bench media-pod/bench
	MYPYPATH=operator/tests:operator/bench $(BIN)/mypy --follow-imports=silent operator/bench
	MYPYPATH=signaling/tests:operator/tests:signaling/bench $(BIN)/mypy --follow-imports=silent signaling/bench
	$(BIN)/lint-imports

test-unit: dev ## only the tests that need no processes
	$(BIN)/pytest -m unit

test: packages dev tools lint ## everything: lint, unit, cluster, media and e2e tests
	$(BIN)/pytest

e2e: packages dev tools ## the e2e: control plane + real node, images, helm install, e2e/ (docs/e2e.md)
	$(BIN)/pytest e2e -v -rs

.PHONY: images
images: packages dev ## build the images without a registry into .images/ (cached); IMPORT_TO=<containerd socket> imports them
	$(PY) images/build.py $(if $(IMPORT_TO),--import-to $(IMPORT_TO))
