# manystore developer targets. Everything installs into the project-local .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint docs bench clean servers reliability

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned first: the CPU wheel; a looser pin (from an extra) would pull CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The demo needs the package and the layers it shows, not the test tool chain (a separate stamp, so
# `make test` still installs .[dev] on top).
LEAN_STAMP := $(VENV)/.installed-lean

$(LEAN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch pinned first (the CPU wheel), then the layers the demo shows: a DataLoader epoch and a
	# checkpoint (torch), a shard of typed samples and an array (numpy, msgpack).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[torch,samples]"
	touch $(LEAN_STAMP)

demo: $(LEAN_STAMP)
	$(BIN)/python -m manystore.demo

LINT_DIRS := $(wildcard src tests bench) docs/conf.py

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

# API reference + guides (docs/_build/html). Warnings are errors: a broken cross-reference or a
# public name without a docstring fails the build.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -a -q -W --keep-going -n -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# Azurite (Microsoft's Azure Blob emulator) for the azure backend tests, project-local.
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob

$(AZURITE):
	npm install --silent --no-audit --no-fund --prefix .tools/azurite azurite@3

# multi-storage-client 1.3.1, the reference release, in its own venv (tests/test_msc_surface.py compares against it).
MSC_VENV := .tools/msc-venv

$(MSC_VENV):
	python3 -m venv .tools/msc-venv && .tools/msc-venv/bin/pip install --quiet multi-storage-client==1.3.1

# cottoncandy 0.4.0 (PyPI), the arrays reference, in its own venv (boto3<1.36 pin; tests/cottoncandy_peer.py).
CC_VENV := .tools/cottoncandy-venv

$(CC_VENV):
	python3 -m venv .tools/cottoncandy-venv && .tools/cottoncandy-venv/bin/pip install --quiet 'cottoncandy[extra]==0.4.0'

servers: $(AZURITE) $(MSC_VENV) $(CC_VENV)

# pytest exits 5 when it collected no test; make treats any non-zero exit as failure.
test: lint docs servers
	$(BIN)/python -m pytest -q tests

# The benchmarks run in their own venv: the peers there (multi-storage-client registers the
# same fsspec protocol, msc) must never be installed beside the package under test.
BENCH_VENV := .venv-bench
BENCH_BIN := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet torch==2.13.0
	$(BENCH_BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

# S11's peers that cannot share the main venv, each in its own (see bench/torch_loader.py).
# litdata: its torchvision dependency breaks lightning's import in the main venv. torch==2.13.0
# goes in the same command as litdata, or its unpinned torchvision pulls torch 2.14 (CUDA, GBs);
# s3fs lists for it (fsspec), uvloop is its recommended event loop, zstd reads its index.
LITDATA_STAMP := .tools/litdata-venv/.installed

$(LITDATA_STAMP):
	python3 -m venv .tools/litdata-venv
	.tools/litdata-venv/bin/pip install --quiet torch==2.13.0 litdata s3fs uvloop zstd
	touch $@

# MSC 1.3.1 with torch (the reference venv above has no torch) and its boto3 extra (S3).
MSC_TORCH_STAMP := .tools/msc-torch-venv/.installed

$(MSC_TORCH_STAMP):
	python3 -m venv .tools/msc-torch-venv
	.tools/msc-torch-venv/bin/pip install --quiet torch==2.13.0 "multi-storage-client[boto3]==1.3.1"
	touch $@

# Side-by-side benchmarks against the peers (own rclone server). BENCH_ARGS=--quick for ~1 minute.
bench: $(BENCH_STAMP) $(LITDATA_STAMP) $(MSC_TORCH_STAMP) $(CC_VENV)
	$(BENCH_BIN)/python -m bench.run $(BENCH_ARGS)

# Fault-injection, retry-semantics and concurrency suites, then docs/reliability.md from their tally.
RELIABILITY_JSON := .pytest_cache/reliability.json

reliability: $(STAMP)
	rm -f $(RELIABILITY_JSON)
	MANYSTORE_RELIABILITY_REPORT=$(RELIABILITY_JSON) $(BIN)/python -m pytest -q tests/test_faults.py tests/test_faults_extra.py tests/test_retry_semantics.py tests/test_concurrency.py tests/test_client_retry.py tests/test_download_integrity.py
	MANYSTORE_RELIABILITY_REPORT=$(RELIABILITY_JSON) $(BIN)/python tests/reliability_report.py docs/reliability.md

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tools .pytest_cache .mypy_cache .ruff_cache
