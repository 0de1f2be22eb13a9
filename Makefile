# The two commands of the README: `make demo` and `make test`. Both set everything up first, from the lock.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel; an unpinned torch would pull a multi-GB CUDA build. Override for a GPU machine,
# e.g. make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
# Every other package, transitive ones included, at the exact version the suite passed with.
# `make lock` rewrites it; `make setup LOCK=` installs the open ranges of pyproject.toml instead.
LOCK ?= constraints.txt
BIN := $(VENV)/bin
STAMP := $(VENV)/.secateur-installed

.PHONY: setup demo test lint bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q $(if $(LOCK),-c $(LOCK)) -e ".[dev]"
	$(BIN)/python -m pip check
	@touch $@

demo: setup
	$(BIN)/secateur prune --model smollm2-135m --dataset lee --method wanda --sparsity 0.5 \
		--out runs/smollm2-135m-wanda-50 --overwrite

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/prune_speed.py

# Resolve the open ranges of pyproject.toml afresh in a throw-away venv and record what was installed.
# Run `make test` afterwards: the lock is only as good as the suite that passed on it.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q $(TORCH)
	.venv-lock/bin/python -m pip install -q -e ".[dev]"
	.venv-lock/bin/python tools/write_lock.py .venv-lock > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) runs
