# Two entry points for a new user: `make demo` and `make test`. Both build the environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint typecheck bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned here: an unpinned torch resolves to a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev,int8]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/esrgan upscale assets/sample_baby_lr.png --model realesrgan-x4plus --out-dir outputs/demo

# The web page test drives Debian's chromium (never a browser download): install it when missing, and
# fail loudly when that is impossible; ESRGAN_REQUIRE_BROWSER=1 makes the test fail rather than skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium missing: installing Debian's chromium for the web page test"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	} || { echo "error: could not install chromium (apt-get install -y chromium); the browser test needs it" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || { echo "error: chromium is still not on PATH" >&2; exit 1; }

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	ESRGAN_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# mypy on src, settings in pyproject.toml ([tool.mypy]); `make test` runs it after ruff.
typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) outputs .pytest_cache
