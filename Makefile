# One command each on a fresh machine: `make test`, `make demo`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.housex-installed

.PHONY: setup test demo bench clean-demo
setup: $(STAMP)

$(STAMP): pyproject.toml
	@if ! command -v ffmpeg >/dev/null || ! ldconfig -p 2>/dev/null | grep -q libavcodec; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing FFmpeg (Debian package ffmpeg)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) || exit 1; \
	  else \
	    echo "setup: FFmpeg is missing: install it first (e.g. 'sudo apt-get install ffmpeg'), then rerun make."; exit 1; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing headless Chromium for the browser test (Debian packages chromium, chromium-driver)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || exit 1; \
	  else \
	    echo "setup: chromium + chromedriver not found: the browser test of the web app will be skipped (install them to run it)"; \
	  fi; \
	fi
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/housex demo

bench: setup
	$(PY) -m bench

clean-demo:
	rm -rf demo-out housex-v2
