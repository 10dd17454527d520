# jupyter_cvat_train — the commands a fresh machine needs.
#   make demo            set up, generate a sample CVAT export, validate it, train the default model
#                        on it (CPU, about a minute), auto-annotate a new batch with the trained model
#   make demo DATA=x.zip the same on any CVAT export (its own images are annotated)
#   make test            set up, then every check (lint + layer contracts, pytest, ui-tests, TypeScript checks)
#   make lab             JupyterLab with the extension
#   make ray-cluster     a single-node Ray head here, for trying the ray job backend (make ray-stop)
#   make gpu-carry       .gpu/: what benchmarks/gpu_suite.sh needs on a GPU machine without a network
#   make clean           remove what set-up and tests made (.venv, node_modules, builds, outputs)
# Set-up is incremental: each step leaves a stamp file and runs again only when its inputs change.
# Prerequisites: python3 (>= 3.10, with venv), Node.js >= 18 with npm; Chromium is installed
# with apt-get when running as root, otherwise the command to run is printed.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# jlpm scripts call `jupyter labextension build`, which calls `jupyter-builder`: both live in the venv.
export PATH := $(abspath $(BIN)):$(PATH)
DATA ?=
DEMO_DIR ?= demo-output
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=

LABEXT := jupyter_cvat_train/labextension
TS_SOURCES := $(shell find src -name '*.ts' -o -name '*.tsx') $(wildcard style/*.css style/*.js style/icons/*.svg)
PY_STAMP := $(VENV)/.installed
LABEXT_STAMP := $(VENV)/.labextension-linked
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/jupyter-cvat-train
NODE_STAMP := node_modules/.installed
UI_NODE_STAMP := ui-tests/node_modules/.installed

.PHONY: setup python-deps node-deps build chromium ui-deps demo test lint pytest ui-test bench-panel ts-check lab clean ray-cluster ray-stop gpu-carry

setup: python-deps build chromium ui-deps

python-deps: $(PY_STAMP)
node-deps: $(NODE_STAMP)
build: $(LABEXT_STAMP)
ui-deps: $(UI_NODE_STAMP)

# Python: the package (editable) with the training and test extras, pinned by constraints.
# SKIP_JUPYTER_BUILDER: the labextension is built below with the venv's own jupyterlab.
# The develop link is dropped first so pip never writes (or uninstalls) through it.
$(PY_STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if [ -L $(LABEXT_LINK) ]; then rm $(LABEXT_LINK); fi
	$(PY) -m pip install -q -U pip
	SKIP_JUPYTER_BUILDER=1 $(PY) -m pip install -c requirements/constraints.txt -e ".[train,onnx,test,cvat,tf]"
	# keras-hub without its dependencies: it hard-requires tensorflow-text, which pulls the full
	# tensorflow wheel over tensorflow-cpu; the tf extra holds the one it imports (tokenizers).
	$(PY) -m pip install -c requirements/constraints.txt --no-deps keras-hub
	touch $@

# Node: jlpm is the Yarn that ships with jupyterlab (.yarnrc.yml: node_modules linker).
$(NODE_STAMP): $(PY_STAMP) package.json yarn.lock .yarnrc.yml
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' 2>/dev/null || { \
	  echo "Node.js 18 or newer with npm is needed (found: $$(node --version 2>/dev/null || echo none))."; \
	  echo "Install it with: sudo apt-get install -y nodejs npm   (Debian 12 has 18), or from https://nodejs.org"; \
	  exit 1; }
	jlpm install $(if $(CI),--immutable,)
	touch $@

# The labextension, built into jupyter_cvat_train/labextension and linked into the venv.
$(LABEXT)/package.json: $(NODE_STAMP) $(TS_SOURCES) tsconfig.json
	jlpm build
	touch $@

$(LABEXT_STAMP): $(LABEXT)/package.json $(PY_STAMP)
	jupyter labextension develop --overwrite .
	touch $@

# The browser the ui-tests drive: Debian's Chromium (Playwright's own download is not reachable).
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Chromium: apt-get update && apt-get install -y chromium"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  test -x "$(CHROMIUM)" || { echo "apt-get installed chromium, but $(CHROMIUM) is still missing"; exit 1; }; \
	else \
	  echo "Chromium is missing at $(CHROMIUM). Install it with:"; \
	  echo "    sudo apt-get update && sudo apt-get install -y chromium"; \
	  echo "or point CHROMIUM=/path/to/chromium at another Chromium build."; \
	  exit 1; \
	fi

$(UI_NODE_STAMP): ui-tests/package.json ui-tests/package-lock.json
	cd ui-tests && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

# The main job, end to end: validate a CVAT export, train the default model on it (CPU,
# from scratch: no weights can be downloaded here), auto-annotate a new batch of images.
DEMO_MODEL ?= ssdlite320-mobilenet-v3
DEMO_HP ?= pretrained=false,epochs=8,image_size=192,batch_size=16,optimizer=adamw,learning_rate=0.003,weight_decay=0.0001
demo: setup
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
ifeq ($(DATA),)
	$(BIN)/cvat-train sample-dataset $(DEMO_DIR)/sample-export.zip --format coco --images 200 --seed 0
	$(BIN)/cvat-train sample-dataset $(DEMO_DIR)/next-batch.zip --format coco --images 40 --seed 1
	$(eval DEMO_DATA := $(DEMO_DIR)/sample-export.zip)
	$(eval DEMO_NEXT := $(DEMO_DIR)/next-batch.zip)
else
	$(eval DEMO_DATA := $(DATA))
	$(eval DEMO_NEXT := $(DATA))
endif
	$(BIN)/cvat-train validate "$(DEMO_DATA)"
	$(BIN)/cvat-train train "$(DEMO_DATA)" --model $(DEMO_MODEL) --output $(DEMO_DIR)/train --hp "$(DEMO_HP)"
	$(BIN)/cvat-train annotate "$(DEMO_NEXT)" --model-dir $(DEMO_DIR)/train/output/model \
	  --output $(DEMO_DIR)/annotations-coco.zip --format coco --threshold 0.5 --preview 4
	@echo
	@echo "CVAT-importable annotations: $(DEMO_DIR)/annotations-coco.zip (CVAT: Actions > Upload annotations > COCO 1.0)"
	@echo "Model folder: $(DEMO_DIR)/train/output/model   TensorBoard: $(DEMO_DIR)/train/output/tensorboard"

# pytest exits 5 when it collects no tests: that is a failure here, not a pass.
pytest: setup
	$(BIN)/pytest -q -ra $(PYTEST_ARGS)

ui-test: setup
	cd ui-tests && CHROMIUM=$(CHROMIUM) npx playwright test

# The panel benchmark (not part of `make test`): 200 finished jobs and one running; prints BENCH {...}.
bench-panel: setup
	cd ui-tests && CHROMIUM=$(CHROMIUM) npx playwright test -c bench.config.ts

# TypeScript: prettier and eslint checks, jest, and src/api/schema.ts generated from the
# API contract (jupyter_cvat_train/server/api-schema.json) is current.
ts-check: node-deps
	jlpm lint:check
	jlpm test
	jlpm check:api

# Python: ruff lint and format check, and the layer contracts of docs/architecture.md
# (import-linter; contracts in pyproject.toml).
lint: python-deps
	$(BIN)/ruff check jupyter_cvat_train tests benchmarks
	$(BIN)/ruff format --check jupyter_cvat_train tests benchmarks
	$(BIN)/lint-imports

# Every suite runs even when an earlier one fails; the exit status is non-zero if any failed.
test: setup
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory pytest || status=1; \
	$(MAKE) --no-print-directory ui-test || status=1; \
	$(MAKE) --no-print-directory ts-check || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$status

# Root (containers, CI machines) needs --allow-root; LAB_ARGS adds more (e.g. --port 8899).
LAB_ARGS ?=
lab: setup
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# A single-node Ray head on this machine, for trying the ray job backend: prints its address and
# the --CvatTrainApp.ray_address= to give JupyterLab. RAY_DIR: Ray's temp folder (short: socket
# paths); RAY_PORT: the dashboard's port. ray-stop ends that head only (`ray stop` ends them all).
RAY_DIR ?= /tmp/cvat-train-ray-$(shell id -u)
RAY_PORT ?= 8265
ray-cluster: python-deps
	$(PY) -m jupyter_cvat_train.jobs.backends.ray_head start --dir $(RAY_DIR) --dashboard-port $(RAY_PORT)

ray-stop:
	$(PY) -m jupyter_cvat_train.jobs.backends.ray_head stop --dir $(RAY_DIR)

# What the GPU suite (benchmarks/gpu_suite.sh) needs on a GPU machine whose python3 has torch and
# torchvision but no network: the wheels of our other runtime needs for CPython $(GPU_PYTHON) on
# x86-64 Linux, and the BCCD COCO export, in .gpu/ (ignored by git; bring it along).
GPU_PYTHON ?= 3.12
GPU_WHEELS := faster-coco-eval==1.8.0 orjson==3.13.0 imagesize==2.0.1 defusedxml==0.7.1
SHARED ?= ../shared
gpu-carry: python-deps
	rm -rf .gpu && mkdir -p .gpu/whl
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
	  $(foreach t,2_28 2_27 2_24 2_17 2014,--platform manylinux$(if $(findstring _,$(t)),_,)$(t)_x86_64) \
	  -d .gpu/whl $(GPU_WHEELS)
	cp $(SHARED)/datasets/bccd/bccd-coco-1.0.zip .gpu/
	du -sh .gpu

clean:
	rm -rf $(VENV) node_modules lib tsconfig.tsbuildinfo $(LABEXT) $(DEMO_DIR) .gpu \
	  ui-tests/node_modules ui-tests/test-results ui-tests/playwright-report
