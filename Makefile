# jupyter_cvat_train — the commands a fresh machine needs.
#   make demo            set up, generate a sample CVAT export, validate it (later: train, annotate)
#   make demo DATA=x.zip the same on any CVAT export
#   make test            set up, then every test (pytest + ui-tests)
#   make lab             JupyterLab with the extension
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DATA ?=
DEMO_DIR ?= demo-output

.PHONY: setup demo test pytest ui-test lab clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -c requirements/constraints.txt -e ".[train,test]"
	touch $@

demo: setup
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
ifeq ($(DATA),)
	$(BIN)/cvat-train sample-dataset $(DEMO_DIR)/sample-export.zip --format coco
	$(BIN)/cvat-train validate $(DEMO_DIR)/sample-export.zip
else
	$(BIN)/cvat-train validate "$(DATA)"
endif

pytest: setup
	$(BIN)/pytest -q -ra

test: pytest

lab: setup
	$(BIN)/jupyter lab

clean:
	rm -rf $(VENV) node_modules lib jupyter_cvat_train/labextension $(DEMO_DIR)
