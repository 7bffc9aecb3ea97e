# Entry points for people and CI. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# Podman on these machines needs runc, cgroupfs and grantable ulimits: the lab
# passes its own containers.conf instead of editing /etc.
export CONTAINERS_CONF := $(CURDIR)/molecule/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# Code that runs on the training host (Python 3.6 + TensorFlow 1.7).
PY36_CODE := src/facekit
# Code that also runs on the Vision Kit (Python 3.5 on Raspbian Stretch images): facekit.detector and
# what it reaches, as tools/check_imports.py computes it (and checks: only the modules it lists as the
# kit's needs, no controller package).
PY35_CODE = $(shell python3 tools/check_imports.py --kit-files)

.PHONY: help test check venv py36 py36-mkl kit-env lint pytest molecule lab lab-down bench bench-fleet bench-training clean

help:
	@echo "make lab        run site.yml on the local container lab: training host + 2 kits (LAB_KITS=N, LAB_DATASET=voc, LAB_TENSORFLOW=mkl|stock, LAB_TRAIN_STEPS=N,"
	@echo "                LAB_MIN_PRECISION=P|f1, LAB_SOURCES=real) and print a summary"
	@echo "make test       install everything, lint, run pytest and every Molecule scenario, side by side where"
	@echo "                they can (tools/suite.py), and end with a table of each part's result and seconds"
	@echo "make check      the inner loop: lint and pytest, no containers (same table)"
	@echo "make lint       ansible-lint (production), yamllint, ruff, the kit's imports (tools/check_imports.py),"
	@echo "                vermin (Python 3.6; 3.5 for the kit's code)"
	@echo "make pytest     the Python tests of src/ and molecule/lab (also on Python 3.6 + TensorFlow 1.7 when a Python 3.6 exists)"
	@echo "make molecule   every Molecule scenario (SCENARIO=name runs one), with what they need"
	@echo "make bench      the dataset conversion, kit decoder, WIDER scorer, eval run and software bonnet benchmarks (figures,"
	@echo "                no pass/fail)"
	@echo "make bench-fleet the deploy stage's time for fleets of 2, 5 and 10 kit containers"
	@echo "make bench-training training steps/s on stock TensorFlow 1.7.1 and intel-tensorflow 1.13.1 (MKL)"
	@echo "make lab-down   remove the lab containers and stop the stand-in server"

# The suite's parts (venvs, lab image, stand-ins, lint, pytest, each scenario) run side by side
# where they do not depend on each other; tools/suite.py prints each part's log as it ends and a
# table at the end. It needs only a python3: it creates the venvs itself.
test:
	python3 tools/suite.py

check:
	python3 tools/suite.py lint pytest

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml tools/bootstrap-venv.sh
	tools/bootstrap-venv.sh $(VENV)
	touch $@

# The training host's stack (Python 3.6, TensorFlow 1.7.1, the role's pins) for
# src/tests/test_training_host_stack.py; skipped with a reason where no Python 3.6 exists.
py36: venv
	tools/py36-env.sh .venv-py36

# The same with training_host_tensorflow: mkl's pins (intel-tensorflow 1.13.1), for bench-training.
py36-mkl: venv
	tools/py36-env.sh .venv-py36-mkl mkl

lint: venv
	ansible-lint --profile production --strict
	yamllint --strict .
	ruff check src benchmarks molecule playbooks roles tools
	python tools/check_imports.py
	vermin --no-tips --violations --eval-annotations -t=3.6- $(PY36_CODE)
	vermin --no-tips --violations --eval-annotations -t=3.5- $(PY35_CODE)

# The Vision Kit's library stack (AIY's client library, protobuf 3.20, numpy) for the tests that
# run facekit.detector against the software bonnet.
kit-env: venv
	tools/kit-env.sh .venv-kit

pytest: venv py36 kit-env
	pytest

molecule:
	python3 tools/suite.py $(or $(SCENARIO),scenarios)

lab: venv
	molecule/lab/lab.sh up

lab-down: venv
	molecule/lab/lab.sh down

bench: venv kit-env
	python benchmarks/bench_convert.py
	python benchmarks/bench_decode.py
	PYTHONPATH=src .venv-kit/bin/python benchmarks/bench_decode.py   # the kit's stack
	python benchmarks/bench_eval.py
	python benchmarks/bench_evalrun.py
	python benchmarks/bench_bonnet.py

# The deploy stage's wall time for 2, 5 and 10 kit containers (podman; about 15 minutes).
bench-fleet: venv
	python benchmarks/bench_fleet.py

# Training steps/s of the lab's config on stock TensorFlow 1.7.1 and intel-tensorflow 1.13.1, and
# what the thread settings add (about 10 minutes; needs the lab's stand-ins: make lab or make test).
bench-training: venv py36 py36-mkl
	python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) .venv-py36 .venv-py36-mkl .venv-kit .pytest_cache .ruff_cache
