# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench bench-env bench-corelay bench-lxt bench-hf bench-transformers clean

BASE := $(VENV)/.installed-base

# The demo needs lrpkit with its embedded data only; the tests need every extra (Ray, zarr, the analysis stack).
$(BASE): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[data]"
	touch $(BASE)

$(STAMP): $(BASE)
	$(PY) -m pip install -q -e ".[data,analysis,dataset,ray,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE)
	$(PY) examples/demo.py --out out

test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

format: install
	$(VENV)/bin/ruff format src tests bench examples
	$(VENV)/bin/ruff check --fix src tests bench examples

# Benchmarks against Zennit and Captum: their own, large environment (never part of `make test`).
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip
	$(BENCH_PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BENCH_PY) -m pip install -q zennit==0.5.1 captum
	$(BENCH_PY) -m pip install -q -e .
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

bench: bench-env
	$(BENCH_PY) bench/speed.py $(BENCH_ARGS)
	$(BENCH_PY) bench/coverage.py --threads 1
	$(BENCH_PY) bench/conformance.py
	$(BENCH_PY) bench/evaluation_speed.py

# Transformers against LXT: LXT at commit f043441 (installed without its dependencies from a checkout of its
# repository) with the transformers release it names, and the newest transformers without LXT (never part of make test).
LXT_VENV := .venv-lxt
LXT_SRC ?= .lxt-src
LXT_COMMIT := f043441
HF_VENV := .venv-hf

$(LXT_SRC)/setup.py:
	git clone -q https://github.com/rachtibat/LRP-eXplains-Transformers $(LXT_SRC)
	git -C $(LXT_SRC) checkout -q $(LXT_COMMIT)

bench-lxt: $(LXT_SRC)/setup.py
	test -x $(LXT_VENV)/bin/python || $(PYTHON) -m venv $(LXT_VENV)
	$(LXT_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 transformers==5.9.0 zennit==0.5.1 \
		tabulate matplotlib
	$(LXT_VENV)/bin/python -m pip install -q --no-deps $(LXT_SRC)
	$(LXT_VENV)/bin/python -m pip install -q -e .

bench-hf:
	test -x $(HF_VENV)/bin/python || $(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 transformers==5.24.0
	$(HF_VENV)/bin/python -m pip install -q -e .

bench-transformers: bench-lxt bench-hf
	$(LXT_VENV)/bin/python bench/lxt_conformance.py --vit
	$(LXT_VENV)/bin/python bench/transformer_speed.py
	$(LXT_VENV)/bin/python bench/transformer_coverage.py
	$(HF_VENV)/bin/python bench/transformer_coverage.py
	$(HF_VENV)/bin/python bench/transformer_large.py

# SpRAy against CoRelAy: CoRelAy in its own small environment (never part of `make test`).
CORELAY_VENV := .venv-corelay

bench-corelay: install
	test -x $(CORELAY_VENV)/bin/python || $(PYTHON) -m venv $(CORELAY_VENV)
	$(CORELAY_VENV)/bin/python -m pip install -q torch==2.13.0 corelay==1.0.0
	mkdir -p out
	$(PY) bench/spray_corelay.py --make-heatmaps out/heatmaps-3.npy
	$(CORELAY_VENV)/bin/python bench/spray_corelay.py --heatmaps out/heatmaps-3.npy --write

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
