# `make test` and `make demo` build .venv themselves; the stamp makes a second run a no-op
# unless pyproject.toml or constraints.txt changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DISABLE_VERSION_CHECK := 1

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check lf_reasoning tests bench examples
	$(BIN)/ruff format --check lf_reasoning tests bench examples

# Headless Chromium for the `inspect --html` browser test (tests/test_inspect.py skips, saying so, without it).
# Installed only when absent; never fatal (no root, no apt: the test is skipped).
.PHONY: browser
browser:
	@command -v chromium >/dev/null || (apt-get install -y -qq chromium || (apt-get update -qq && \
		apt-get install -y -qq chromium) || sudo -n apt-get install -y -qq chromium) >/dev/null 2>&1 || \
		echo "chromium not installed: the inspect browser test will be skipped"

test: browser
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

# Converts every bundled shape into dataset_info/, then runs the news-title classifier end to end on the tiny
# model (CPU): it exits non-zero unless training beats the untrained model and chance by a clear margin.
demo: $(STAMP)
	$(BIN)/python examples/demo.py
	$(BIN)/python examples/news_title_classifier/run.py

bench: $(STAMP)
	$(BIN)/python bench/bench_convert.py
	$(BIN)/python bench/bench_stats.py
	$(BIN)/python bench/bench_distill.py
	$(BIN)/python bench/bench_verify.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
