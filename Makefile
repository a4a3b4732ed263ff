# Developer and CI entry points for the acestream_proxy custom integration.
#
#   make test          lint (ruff), type-check (mypy) and test (pytest) against
#                      Home Assistant 2025.4.4 in .venv (the minimum we support);
#                      fails when any module's coverage is below its minimum;
#                      pytest runs in two workers (PYTEST_WORKERS=0: one process)
#   make test-newest   the pytest suite (with the coverage minimums) against the newest
#                      Home Assistant that pytest-homeassistant-custom-component pairs
#                      with, on Python 3.14, in a Debian sid root that script/newest.sh
#                      builds and caches under /var/cache/acestream-proxy (needs root;
#                      about 4 minutes the first time, seconds after; follows new
#                      releases by itself)
#   make demo          Home Assistant + engine simulator with the integration set up
#                      (script/demo.py; `make demo ARGS=--check` is a smoke test)
#   make bench         script/bench.py (ARGS=... are passed on), then script/bench_lists.py
#   make bench-lists   a 2,000-channel playlist: parse, diff, serve, subscribe, refresh
#   make soak          a two-hour match compressed into about three minutes through a
#                      real Home Assistant, with faults, failovers and reloads; prints
#                      its invariants and exits non-zero if one fails (script/soak.py)
#   make demo-newest, make soak-newest, make bench-newest
#                      the same on the newest Home Assistant release, on Python 3.14,
#                      in the root script/newest.sh builds (as make test-newest)
#   make check-release what a user does in the UI (engines found and typed, a
#                      reconfigure, a channel and entity id renamed, a failover that
#                      moves an ad-hoc device, an add-on found while Supervisor data
#                      is not ready) on a real `hass` of the newest homeassistant on
#                      PyPI (which may be newer than phacc's pairing; script/newest.sh
#                      --release caches it in the same root); fails on any ERROR or
#                      "Detected" line in its log (script/check_release.py)
#   make e2e           headless Chromium + hls.js, and VLC, play HLS through Home Assistant;
#                      Chromium plays a recording's MP4 from its media
#   make e2e-newest    the same on the newest release, in script/newest.sh's root, which
#                      gets Chromium, VLC and a user for VLC the first time (apt: about
#                      20 s here on a built root; 2 s after)
#   make lint          ruff check, ruff format --check, mypy
#   make format        ruff format + ruff check --fix
#   make clean         remove the virtual environments, demo state and caches
#
# Python: a CPython 3.13 interpreter is looked up in this order: $(PYTHON) if set
# on the command line, `python3.13` if it runs and reports 3.13, then pyenv's
# 3.13.0 ($(pyenv root)/versions/3.13.0/bin/python3.13).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

VENV := .venv

REQUIREMENTS := requirements_test.txt

# This machine's pip config lists local file:// indexes that lack most packages;
# pip warns once per package about them. Drop those lines (pipefail keeps pip's status).
PIP_NOISE_FILTER := { grep -v "is ignored: it is neither a file nor a directory" || true; }

# Prints the path of a usable CPython 3.13 interpreter, or fails with a message.
define FIND_PYTHON
find_python() { \
  local cand; \
  for cand in "$(PYTHON)" python3.13 \
      "$$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3.13" \
      "$$HOME/.pyenv/versions/3.13.0/bin/python3.13"; do \
    [ -n "$$cand" ] || continue; \
    if "$$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then \
      "$$cand" -c 'import sys; print(sys.executable)'; return 0; \
    fi; \
  done; \
  echo "error: no CPython 3.13 interpreter found. Tried: PYTHON=$(PYTHON), python3.13," \
       "\$$(pyenv root)/versions/3.13.0/bin/python3.13. Install it (pyenv install 3.13.0)" \
       "or run: make PYTHON=/path/to/python3.13 ..." >&2; \
  return 1; \
}
endef

# Creates virtual environment $1 with Python 3.13 unless a working one exists.
define MAKE_VENV
$(FIND_PYTHON); \
if ! "$(1)/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then \
  py="$$(find_python)"; \
  echo ">>> creating $(1) with $$py"; \
  rm -rf "$(1)"; \
  "$$py" -m venv "$(1)"; \
fi
endef

.PHONY: test test-newest e2e lint format demo bench bench-lists soak clean venv ffmpeg
.PHONY: demo-newest soak-newest bench-newest check-release newest-env e2e-newest release-env

## ---------------------------------------------------------------- environments

venv: $(VENV)/.requirements.stamp

# Reinstalls only when requirements_test.txt is newer than the stamp and its
# content differs from what was installed last (a fresh checkout only bumps mtimes).
$(VENV)/.requirements.stamp: $(REQUIREMENTS)
	@$(call MAKE_VENV,$(VENV))
	@if cmp -s "$(REQUIREMENTS)" "$@"; then \
	  touch "$@"; \
	else \
	  echo ">>> installing $(REQUIREMENTS) into $(VENV)"; \
	  "$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check \
	    -r "$(REQUIREMENTS)" 2>&1 | $(PIP_NOISE_FILTER); \
	  cp "$(REQUIREMENTS)" "$@"; \
	fi

# ffprobe/ffmpeg are used by the tests; install them when missing and possible.
ffmpeg:
	@if ! command -v ffprobe >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo ">>> installing ffmpeg (apt-get)"; \
	    apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null; \
	  else \
	    echo "warning: ffprobe not found and cannot apt-get install ffmpeg (not root?); tests that need it will fail" >&2; \
	  fi; \
	fi

## ----------------------------------------------------------------------- tests

# coverage's fail_under only judges the total; script/check_coverage.py fails the
# run when any single module is below its minimum (95 %, config_flow.py 100 %).
COVERAGE_JSON := .coverage.json

# The suite mostly waits on streams paced at real time (it keeps under one core
# busy), so two workers halve its time on two cores; PYTEST_WORKERS=0 runs it in
# one process. Coverage is combined from the workers.
PYTEST_WORKERS ?= 2

test: venv ffmpeg
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --cov-report=json:$(COVERAGE_JSON)
	$(VENV)/bin/python script/check_coverage.py $(COVERAGE_JSON)

# The newest release is resolved at run time (script/newest.sh ensure asks PyPI);
# nothing about it is pinned here. Its coverage data goes to its own file so it
# never mixes with `make test`'s in the same checkout.
NEWEST_COVERAGE_JSON := .coverage-newest.json

test-newest:
	script/newest.sh ensure
	@script/newest.sh versions
	COVERAGE_FILE=.coverage.newest script/newest.sh run pytest -n $(PYTEST_WORKERS) \
		--cov-report=json:$(NEWEST_COVERAGE_JSON)
	script/newest.sh run python script/check_coverage.py $(NEWEST_COVERAGE_JSON)

## ---------------------------------------------------------------- other tools

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: venv
	$(VENV)/bin/python script/demo.py $(ARGS)

bench: venv
	$(VENV)/bin/python script/bench.py $(ARGS)
	$(VENV)/bin/python script/bench_lists.py

# A 2,000-channel playlist: parse, diff, serve; subscribe and refresh in Home Assistant.
bench-lists: venv
	$(VENV)/bin/python script/bench_lists.py

soak: venv
	$(VENV)/bin/python script/soak.py $(ARGS)

# The same scripts on the newest release. They install what Home Assistant's
# default integrations need into that venv on first use (HA runs with --skip-pip).
NEWEST := script/newest.sh

demo-newest soak-newest bench-newest: newest-env
check-release: release-env

newest-env:
	$(NEWEST) ensure
	@$(NEWEST) versions

release-env:
	$(NEWEST) --release ensure
	@$(NEWEST) --release versions

demo-newest:
	$(NEWEST) run python script/demo.py $(ARGS)

soak-newest:
	$(NEWEST) run python script/soak.py $(ARGS)

bench-newest:
	$(NEWEST) run python script/bench.py $(ARGS)

check-release:
	$(NEWEST) --release run python script/check_release.py $(ARGS)

# A real browser (headless Chromium + hls.js) and VLC play the HLS stream through
# Home Assistant, and VLC reads our M3U. script/e2e_setup.sh installs Chromium and
# VLC (apt) and hls.js (npm) if missing.
e2e: venv ffmpeg
	bash script/e2e_setup.sh
	$(VENV)/bin/pytest -o addopts="" -p no:cacheprovider tests/e2e -s

# hls.js is fetched on this side into the project, which the root sees at its own path.
e2e-newest:
	bash script/e2e_setup.sh hls.js
	$(NEWEST) ensure e2e
	@$(NEWEST) versions
	$(NEWEST) run pytest -o addopts="" -p no:cacheprovider tests/e2e -s

clean:
	rm -rf $(VENV) .demo \
	  .mypy_cache .ruff_cache .pytest_cache htmlcov .coverage .coverage.* .coverage-newest.json
	find . -name __pycache__ -type d -not -path './.git/*' -prune -exec rm -rf {} +
