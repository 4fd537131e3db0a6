# Two commands on a fresh machine: `make quickstart` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch 2.13.0 lies on this project's machines (a plain `torch` would pull a
# several-GB CUDA build there). Elsewhere: make TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.cnnlab-installed
SHARED_DATASETS ?= ../shared/datasets
# Where the quickstart looks for CIFAR-10: $CNNLAB_DATA if set, else ./data
export CNNLAB_DATA ?= $(CURDIR)/data
QUICKSTART_RECIPE ?= recipes/fast-cpu.yaml
# Extra flags for benchmarks/train_speed.py, e.g. make bench BENCH_ARGS="--rounds 1 --num-images 2000"
BENCH_ARGS ?=

.PHONY: install quickstart test data bench clean-venv docs docs-install results-docs gallery

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

# Unpack this project's bundled CIFAR-10 when it is beside the checkout and not yet unpacked;
# otherwise cnnlab finds the data itself ($CNNLAB_DATA, the cache) or downloads it.
data: $(STAMP)
	@if [ ! -d "$(CNNLAB_DATA)/cifar-10-batches-py" ] && [ -f "$(SHARED_DATASETS)/unpack.py" ]; then \
		echo "unpacking the bundled CIFAR-10 into $(CNNLAB_DATA)"; \
		$(PY) $(SHARED_DATASETS)/unpack.py cifar10 "$(CNNLAB_DATA)"; \
	fi

quickstart: data
	$(VENV)/bin/cnnlab train $(QUICKSTART_RECIPE)

test: $(STAMP)
	$(PY) -m pytest -q

# --data-dir is the folder HOLDING cifar-10-batches-py/, as for `cnnlab train --data-dir`.
bench: data
	$(PY) benchmarks/train_speed.py --data-dir "$(CNNLAB_DATA)" $(BENCH_ARGS)

# The documentation site: docs/ -> site/ (a broken link, a page missing from the nav or a
# docstring the API pages cannot read fails the build).
DOCS_STAMP := $(VENV)/.cnnlab-docs-installed
docs-install: $(DOCS_STAMP)

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

# The results pages (docs/results/) and the README's headline table, from results/ and docs/results.yaml.
results-docs: $(STAMP)
	$(PY) -m cnnlab.report.results_docs

# Screenshots of real report / explain / probe pages of tiny runs into docs/gallery/ (needs chromium).
gallery: $(STAMP)
	$(PY) scripts/gallery.py --out docs/gallery

clean-venv:
	rm -rf $(VENV)
