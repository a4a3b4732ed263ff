#!/usr/bin/env bash
# Install what the browser end-to-end test (tests/e2e) needs, idempotently:
#   - Chromium (Debian's package; the test drives /usr/bin/chromium headless through
#     its DevTools protocol, with aiohttp's websocket client: no Python packages)
#   - hls.js, pinned, from the npm registry, into tests/e2e/node_modules (ignored by git)
#   - VLC's command-line player (Debian's vlc-bin + vlc-plugin-base: cvlc, which the
#     test runs as a user of its own, since VLC refuses to run as root)
#
# Run: bash script/e2e_setup.sh      (as root for apt-get; then `make e2e` or
#      .venv/bin/python -m pytest tests/e2e -p no:cacheprovider --no-cov -s)
#      bash script/e2e_setup.sh hls.js   hls.js only (`make e2e-newest`: the newest
#      leg's root has Chromium and VLC of its own and reads hls.js from the project)
set -euo pipefail

only=${1:-}
case "$only" in "" | hls.js) ;; *) echo "usage: $0 [hls.js]" >&2; exit 2 ;; esac

HLS_JS_VERSION="1.6.15"

cd "$(dirname "$0")/.."
e2e_dir="tests/e2e"
hls_js="$e2e_dir/node_modules/hls.js/dist/hls.min.js"
hls_pkg="$e2e_dir/node_modules/hls.js/package.json"

# Installs packages from apt for something missing ($1 names it), as root only.
apt_need() {
  local what=$1
  shift
  if [ "$(id -u)" != 0 ]; then
    echo "error: $what is missing; run as root (or: sudo apt-get install -y $*)" >&2
    exit 1
  fi
  echo ">>> installing $* (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Chromium and cvlc from apt (the newest leg brings its own: see the usage above).
install_players() {
  [ -x /usr/bin/chromium ] || apt_need /usr/bin/chromium chromium
  echo ">>> $(/usr/bin/chromium --version 2>/dev/null)"
  command -v cvlc >/dev/null 2>&1 || apt_need cvlc vlc-bin vlc-plugin-base
  echo ">>> $(cvlc --version 2>/dev/null | head -n 1)"
}

# hls.js, pinned, from npm into tests/e2e/node_modules.
install_hls_js() {
  local installed=""
  if [ -f "$hls_pkg" ] && [ -f "$hls_js" ]; then
    installed=$(node -p "require('./$hls_pkg').version" 2>/dev/null || true)
  fi
  if [ "$installed" != "$HLS_JS_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "error: npm is missing (apt-get install -y npm)" >&2
      exit 1
    fi
    echo ">>> installing hls.js@$HLS_JS_VERSION into $e2e_dir/node_modules"
    # No package.json / package-lock.json is written next to node_modules: the
    # version pin lives here.
    npm install --prefix "$e2e_dir" --no-save --no-package-lock --no-audit --no-fund \
      --ignore-scripts --loglevel=error "hls.js@$HLS_JS_VERSION"
  fi
  test -f "$hls_js"
  echo ">>> hls.js $HLS_JS_VERSION: $hls_js"
}

if [ "$only" != hls.js ]; then install_players; fi
install_hls_js
