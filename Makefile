# vila-m3: `make run` answers a question about an image with VILA-M3; `make test` runs every test (CPU, offline).
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= MONAI/Llama3-VILA-M3-8B
REVISION ?= main
IMAGE ?= outputs/sample_ct.png
PROMPT ?= What organ is shown in this CT image?
ARGS ?=

.PHONY: install run demo test lint bench

$(VENV)/.installed: setup.cfg pyproject.toml ci/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,dev]" -c ci/constraints.txt
	touch $@

install: $(VENV)/.installed

outputs/sample_ct.png: | install
	mkdir -p outputs
	$(PY) -m vila_m3_core.samples $@

run: install $(IMAGE)
	$(VENV)/bin/vila-m3 generate --model_path $(MODEL) --revision $(REVISION) --image $(IMAGE) --prompt "$(PROMPT)" $(ARGS)

demo: install $(IMAGE)
	$(PY) -c "from vila_m3_core.model import build_tiny_checkpoint as b; b('outputs/tiny-vila-m3-8b', flavor='llama3')"
	$(VENV)/bin/vila-m3 generate --model_path outputs/tiny-vila-m3-8b --image $(IMAGE) --prompt "$(PROMPT)" --max_new_tokens 16 --json

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests
	if [ -f ci/verify_bundle.py ]; then $(PY) ci/verify_bundle.py --all; fi
	if [ -f ci/run_bundle_tests.py ]; then $(PY) ci/run_bundle_tests.py; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done
