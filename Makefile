# Two commands do all the setup: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modeconn-installed
FASHION_DIR := /usr/share/datasets/fashion-mnist
FORTUNES_DIR := /usr/share/games/fortunes
PYTEST_ARGS ?=

.PHONY: demo test test-slow bench data browser slurm clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CUDA build that also runs on the CPU; these wheels lie on local disk here.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian's Fashion-MNIST, when apt is available and the files are missing (needs root).
data:
	@if [ ! -e $(FASHION_DIR)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
		|| echo "note: could not install dataset-fashion-mnist; fashion_mnist needs dataset.root or dataset.download=true"; \
	fi
	@# Debian's fortunes (a few MB of plain text): the default corpus of dataset=text.
	@if [ ! -e $(FORTUNES_DIR)/fortunes ] && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && apt-get install -y -qq fortunes >/dev/null; } \
		|| echo "note: could not install fortunes; dataset=text needs dataset.root=FILE"; \
	fi

# Debian's chromium for the dashboard's browser test (tests/test_dashboard_browser.py skips without one).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: could not install chromium; the dashboard's browser test will be skipped"; \
	fi

# Debian's SLURM (slurm-wlm, munge; slurmdbd + MariaDB for sacct) for tests/test_slurm.py, which
# starts a one-node cluster on this machine (.ci/slurm/start.sh) and skips without these.
SLURM_BINARIES := slurmctld slurmd slurmdbd munged mariadbd
slurm:
	@missing=; for b in $(SLURM_BINARIES); do command -v $$b >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
		bash .ci/slurm/install.sh \
		|| echo "note: could not install SLURM; the SLURM test will be skipped"; \
	fi

demo: $(STAMP) data
	$(PY) -m modeconn dataset=mnist1d arch=mlp method=linear logger=csv

# Every test, the slow-marked ones too (SLURM, transformers, examples: a few minutes); plain `pytest`
# skips them while developing.
test: $(STAMP) data browser slurm
	WANDB_MODE=disabled $(PY) -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

test-slow: $(STAMP) data browser slurm
	WANDB_MODE=disabled $(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP) data
	$(PY) benchmarks/loader.py

clean-venv:
	rm -rf $(VENV)
