# Two commands set up a fresh machine:
#   make demo   - create .venv, install, run the main job on the built-in ToyFaces data
#   make test   - create .venv (with test extras) if needed, check the import layers, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: demo test venv venv-test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, from the CPU wheel; everything else is constrained to it so no CUDA build is pulled.
	$(PIP) install -q $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c $(VENV)/constraints.txt -e '.[test]'
	# test-only reference for the Inception/FID/KID/IS cross-checks; its dependencies (torchvision) break
	# the CPU torch, so it is installed without them and its modules are loaded directly by the tests.
	$(PIP) install -q --no-deps torch-fidelity==0.4.0
	touch $@

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/fairlatent demo --out $(DEMO_OUT)

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports && $(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
