# One command each on a fresh machine: `make test`, `make demo`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# what the package needs at run time (make demo), and everything on top of it (make test, make bench)
RUN_STAMP := $(VENV)/.housex-run-installed
STAMP := $(VENV)/.housex-installed

.PHONY: setup test demo bench clean-demo
setup: $(STAMP)

$(RUN_STAMP): pyproject.toml
	@if ! command -v ffmpeg >/dev/null || ! ldconfig -p 2>/dev/null | grep -q libavcodec; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing FFmpeg (Debian package ffmpeg)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) || exit 1; \
	  else \
	    echo "setup: FFmpeg is missing: install it first (e.g. 'sudo apt-get install ffmpeg'), then rerun make."; exit 1; \
	  fi; \
	fi
	@if ! ldconfig -p 2>/dev/null | grep -q libfluidsynth || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing FluidSynth and the General MIDI SoundFont for the synthetic generator (Debian packages libfluidsynth3, fluid-soundfont-gm)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfluidsynth3 fluid-soundfont-gm >/dev/null) || exit 1; \
	  else \
	    echo "setup: FluidSynth or FluidR3_GM.sf2 is missing: install them first (e.g. 'sudo apt-get install libfluidsynth3 fluid-soundfont-gm'), then rerun make."; exit 1; \
	  fi; \
	fi
	@test -x $(PY) || python3 -m venv $(VENV)
	@# no pip cache: the venv alone is ~6.5 GB, and CI's disk has run out before
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q --no-cache-dir -e .
	@# librosa's numba functions compiled and cached by this one process: workers that import librosa
	@# together on a fresh install could otherwise corrupt that cache (dataset_script/librosa_import.py)
	$(PY) -c "import numpy as np; from housex.cues import beat_grid; beat_grid(np.random.default_rng(0).standard_normal(22050 * 20).astype(np.float32), 22050)"
	@touch $(RUN_STAMP)

# the tests' extras on top: pytest, Label Studio's SDK, selenium + Chromium, transformers' test mixins
$(STAMP): $(RUN_STAMP)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "setup: installing headless Chromium for the browser test (Debian packages chromium, chromium-driver)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || exit 1; \
	  else \
	    echo "setup: chromium + chromedriver not found: the browser test of the web app will be skipped (install them to run it)"; \
	  fi; \
	fi
	$(PY) -m pip install -q --no-cache-dir -e ".[dev]"
	@# transformers' common test mixins (ModelTesterMixin, ConfigTester, feature-extraction mixins) from the
	@# source distribution of exactly the installed version, into the venv (tests/test_transformers_common.py)
	@TV=$$($(PY) -c "import transformers; print(transformers.__version__)") && TMP=$$(mktemp -d) && \
	  $(PY) -m pip download -q --no-binary :all: --no-deps "transformers==$$TV" -d $$TMP && \
	  rm -rf $(VENV)/share/transformers-tests && mkdir -p $(VENV)/share/transformers-tests && \
	  tar xzf $$TMP/transformers-$$TV.tar.gz -C $(VENV)/share/transformers-tests --strip-components=1 "transformers-$$TV/tests" && \
	  touch $(VENV)/share/transformers-tests/tests/__init__.py && echo "$$TV" > $(VENV)/share/transformers-tests/VERSION && \
	  rm -rf $$TMP
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: $(RUN_STAMP)
	$(VENV)/bin/housex demo

bench: setup
	$(PY) -m bench

clean-demo:
	rm -rf demo-out housex-v2
