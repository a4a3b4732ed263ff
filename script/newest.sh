#!/usr/bin/env bash
# The newest Home Assistant that pytest-homeassistant-custom-component (phacc)
# pairs with, on Python 3.14, for `make test-newest` and for running the demo,
# soak or bench on the release users install today; and, with --release, the
# newest `homeassistant` on PyPI itself (phacc pairs with a release only weeks
# after it is out), for `make check-release`.
#
#   script/newest.sh [--release] ensure
#                                  build or refresh the environment (idempotent):
#                                  a Debian sid root with Python 3.14 and ffmpeg,
#                                  and in it a venv with the newest phacc (asked
#                                  of PyPI on every call; a venv is rebuilt only
#                                  when a newer phacc appears), the extra test
#                                  packages of requirements_test.txt and the
#                                  packages of the HA components the tests load.
#                                  With --release, in the same root: a venv with
#                                  the newest homeassistant for this Python (asked
#                                  of PyPI on every call, rebuilt only when a newer
#                                  one appears) under its own constraints file, and
#                                  the packages of the integrations a real `hass`
#                                  sets up by default
#   script/newest.sh ensure e2e    the same, and Chromium, VLC (cvlc) and a user
#                                  for VLC added to the root for `make e2e-newest`
#   script/newest.sh [--release] run CMD...
#                                  run CMD inside the root: the project directory is
#                                  bound at its own path, the working directory is
#                                  kept when it lies in the project (else the project
#                                  root), the venv's bin comes first on PATH, and the
#                                  exit status is CMD's. The environment is clean
#                                  (HOME, PATH, LANG, TERM, plus CI, NO_COLOR,
#                                  COLUMNS, COVERAGE_FILE, PYTEST_ADDOPTS and
#                                  PYTHONWARNINGS when set); add more with
#                                  `run env NAME=value CMD...`. Needs `ensure` first.
#   script/newest.sh [--release] versions
#                                  print the Python, Home Assistant (and phacc)
#                                  versions
#
# Needs root (debootstrap, chroot, a private mount namespace) and network for
# `ensure`. Everything is cached outside the clone, under $ACESTREAM_PROXY_CACHE
# (default /var/cache/acestream-proxy/newest): the root is keyed by its recipe
# below (edit ROOT_PACKAGES or PYTHON and a new root is built), each venv by the
# phacc version and the extra packages' names, each release venv by the Home
# Assistant version. No Home Assistant version is pinned here: phacc pins the
# newest release it pairs with, and --release asks PyPI.
#
# Any number of runs and ensures may go at once, from any clone or branch:
# ensures take turns, and a root or venv is removed only when no run uses it
# (roots of another recipe only after three days unused, so branches that
# differ in ROOT_PACKAGES do not rebuild each other's).
#
# Environment: NEWEST_OFFLINE=1 skips the PyPI question and keeps the current venv.
set -euo pipefail

PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
CACHE=${ACESTREAM_PROXY_CACHE:-/var/cache/acestream-proxy/newest}

PYTHON=python3.14
SUITE=sid
MIRROR=http://deb.debian.org/debian
# gcc: script/bench.py compiles its C client; g++: default integrations that a real
# `hass` loads (demo, check-release) need pymicro-vad and pyspeex-noise, which have
# no wheels for this Python; ffmpeg: the tests run ffprobe/ffmpeg; libturbojpeg0:
# the camera component loads it (PyTurboJPEG), as in HA's images.
ROOT_PACKAGES=$PYTHON,$PYTHON-venv,$PYTHON-dev,ca-certificates,ffmpeg,gcc,g++,libturbojpeg0
PHACC=pytest-homeassistant-custom-component
# Packages of requirements_test.txt not installed here: phacc is installed at its
# newest, the linters only run on the oldest leg (`make test`).
SKIP_REQUIREMENTS='pytest-homeassistant-custom-component|ruff|mypy'

ROOT_KEY=$(printf '%s\n' "$SUITE" "$MIRROR" "$ROOT_PACKAGES" | sha256sum | cut -c1-12)
ROOT=$CACHE/root-$ROOT_KEY
# Roots of other recipes (another branch may still use one) are removed once
# unused for this long, so branches that differ do not rebuild each other's.
KEEP_UNUSED_MINUTES=$((3 * 24 * 60))
# Inside the root: one venv per key, /opt/venv links to the current one. Release
# venvs live apart (/opt/releases, /opt/release links to the current one), so
# pruning either kind never touches the other.
VENVS=/opt/venvs
CURRENT=/opt/venv
RELEASES=/opt/releases
RELEASE=/opt/release
HA=homeassistant

log() { echo ">>> newest: $*" >&2; }
die() {
    echo "newest: error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount namespaces)"
}

# Every user of a root or a venv holds a shared lock on DIR.lock (a file next
# to it) for as long as it runs, and nothing is removed while one is held:
# removing a directory detaches the bind mounts other runs' mount namespaces
# have in it, so a run's project would vanish under it. The lock file's mtime
# says when the root was last used.
use_root() {
    exec 8>>"$ROOT.lock"
    flock -s 8
    touch "$ROOT.lock"
}

# Sets VENV to the current venv, locked for this process and its children.
use_current_venv() {
    use_root
    [ -f "$ROOT/.complete" ] && [ -L "$ROOT$CURRENT" ] ||
        die "the newest-release environment is not built; run: script/newest.sh ensure"
    local tries
    for tries in 1 2 3; do
        VENV=$(readlink "$ROOT$CURRENT")
        exec 7>>"$ROOT$VENV.lock"
        flock -s 7
        # An ensure may have replaced it, and removed it, before the lock was taken.
        if [ -f "$ROOT$VENV/.complete" ]; then return; fi
        exec 7>&-
    done
    die "the newest-release venv keeps changing; run again"
}

# Removes DIR (a root or a venv) unless a run holds its lock.
remove_unused() {
    local dir=$1
    (
        exec 6>>"$dir.lock"
        if ! flock -n -x 6; then
            log "keeping $dir: in use"
            exit 0
        fi
        log "removing $dir"
        rm -rf "$dir" "$dir.lock"
    )
}

# Runs "$@" inside $ROOT with only the mounts it needs, in a private mount
# namespace so nothing stays mounted when it ends (even if killed). PATH is
# root's, sbin included (apt, useradd, and runuser for the e2e tests' VLC).
in_root() {
    local cwd=$PWD venv_bin=$1
    shift
    case "$cwd/" in "$PROJECT"/*) ;; *) cwd=$PROJECT ;; esac
    local -a pass=()
    local name
    for name in TERM CI NO_COLOR COLUMNS COVERAGE_FILE PYTEST_ADDOPTS PYTHONWARNINGS; do
        if [ -n "${!name:-}" ]; then pass+=("$name=${!name}"); fi
    done
    unshare --mount --propagation private /bin/bash -c '
        set -e
        root=$1 project=$2 cwd=$3 venv_bin=$4
        shift 4
        mkdir -p "$root/proc" "$root/dev" "$root/tmp"
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs tmpfs "$root/dev/shm"
        mount -t tmpfs tmpfs "$root/tmp"
        # After the tmpfs mounts: a project under /tmp needs its mount point on them.
        mkdir -p "$root$project"
        mount --bind "$project" "$root$project"
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH="$venv_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            PIP_DISABLE_PIP_VERSION_CHECK=1 \
            SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
            /bin/bash -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
    ' _ "$ROOT" "$PROJECT" "$cwd" "$venv_bin" env "${pass[@]}" "$@"
}

# Host files the root must track: the CA bundle (pip and the tests need the
# host's, which may hold a local proxy's CA), name resolution and /etc/hosts.
sync_host_files() {
    local f
    for f in /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf /etc/hosts; do
        if [ -f "$f" ]; then install -D -m 0644 "$(readlink -f "$f")" "$ROOT$f"; fi
    done
}

ensure_root() {
    if [ -x "$ROOT/usr/bin/$PYTHON" ] && [ -f "$ROOT/.complete" ]; then
        return
    fi
    command -v debootstrap >/dev/null 2>&1 || {
        log "installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    }
    local tmp=$ROOT.tmp start=$SECONDS
    rm -rf "$tmp"
    log "building a Debian $SUITE root with $ROOT_PACKAGES at $ROOT (a few minutes)"
    debootstrap --variant=minbase --include="$ROOT_PACKAGES" "$SUITE" "$tmp" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $CACHE/debootstrap.log"
    rm -rf "$tmp/var/cache/apt/archives/"*.deb
    touch "$tmp/.complete"
    mv -T "$tmp" "$ROOT"
    log "root built in $((SECONDS - start)) s"
}

prune_roots() {
    local old
    for old in "$CACHE"/root-*; do
        [ -d "$old" ] && [ "$old" != "$ROOT" ] || continue
        case "$old" in
        *.tmp) ;; # an interrupted build (builds are serialised by the cache lock)
        *)
            if [ -n "$(find "$old.lock" "$old" -maxdepth 0 -mmin "-$KEEP_UNUSED_MINUTES" 2>/dev/null)" ]; then
                continue
            fi
            ;;
        esac
        remove_unused "$old"
    done
}

# The extra test packages of requirements_test.txt, by name (unpinned: pip
# picks versions that agree with phacc's pins).
extra_requirements() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PROJECT/requirements_test.txt" |
        grep -v '^$' | sed -E 's/[=<>!~;[].*//' | grep -viE "^($SKIP_REQUIREMENTS)$" || true
}

# A venv only for asking pip (the Debian python has no pip of its own).
BOOTSTRAP=$VENVS/bootstrap

ensure_bootstrap() {
    if [ ! -x "$ROOT$BOOTSTRAP/bin/python" ]; then
        in_root /usr/bin "$PYTHON" -m venv "$BOOTSTRAP"
    fi
}

# Prints the newest version of package $1 that pip would install for the root's
# Python, or nothing (offline, or PyPI not reachable).
newest_on_pypi() {
    [ "${NEWEST_OFFLINE:-0}" != 1 ] || return 0
    # pip filters releases by Requires-Python, so the question must be asked from
    # inside the root.
    in_root "$BOOTSTRAP/bin" /bin/sh -c "
        python -m pip install --quiet --dry-run --no-deps --ignore-installed \
            --report /tmp/report.json $1 >/dev/null 2>&1 &&
        python -c 'import json; print(json.load(open(\"/tmp/report.json\"))[\"install\"][0][\"metadata\"][\"version\"])'
    " || true
}

ensure_venv() {
    ensure_bootstrap
    local newest="" current="" key
    if [ -L "$ROOT$CURRENT" ]; then current=$(basename "$(readlink "$ROOT$CURRENT")"); fi
    newest=$(newest_on_pypi "$PHACC")
    if [ -z "$newest" ]; then
        [ -n "$current" ] || die "cannot ask PyPI for the newest $PHACC and no venv is installed yet"
        log "PyPI not asked or not reachable; keeping $current"
        return
    fi
    local extras
    extras=$(extra_requirements | tr '\n' ' ')
    key=$newest-$(printf '%s' "$extras" | sha256sum | cut -c1-8)
    if [ "$key" != "$current" ] || [ ! -f "$ROOT$VENVS/$key/.complete" ]; then
        local start=$SECONDS venv=$VENVS/$key
        log "installing $PHACC==$newest and $extras into $venv"
        rm -rf "$ROOT$venv"
        in_root /usr/bin "$PYTHON" -m venv "$venv"
        # shellcheck disable=SC2086  # extras is a list of names
        in_root "$venv/bin" python -m pip install --quiet "$PHACC==$newest" $extras
        # Keep the venv just replaced (a run may be about to use it).
        publish_venv "$CURRENT" "$venv" bootstrap "$key" "$current"
        log "venv ready in $((SECONDS - start)) s"
    fi
    ensure_component_requirements
}

# publish_venv LINK VENV KEEP...: mark VENV complete, point LINK at it in one rename
# (a run starting now sees the old venv or the new one, never none), then drop the
# venvs beside VENV whose names are not in KEEP and that no run uses.
publish_venv() {
    local link=$1 venv=$2 old name keep
    shift 2
    touch "$ROOT$venv/.complete"
    ln -sfn "$venv" "$ROOT$link.new"
    mv -T "$ROOT$link.new" "$ROOT$link"
    for old in "$ROOT$(dirname "$venv")"/*/; do
        old=${old%/}
        name=$(basename "$old")
        for keep in "$@"; do
            [ "$name" != "$keep" ] || continue 2
        done
        remove_unused "$old"
    done
}

# pip is skipped under phacc, so the packages of the HA components the tests set
# up must be installed beforehand (script/component_requirements.py finds them). The
# list depends on the HA release and on the tests, so it is checked every time.
ensure_component_requirements() {
    local venv stamp wanted
    venv=$(readlink "$ROOT$CURRENT")
    stamp=$ROOT$venv/.component-requirements
    wanted=$(in_root "$venv/bin" python "$PROJECT/script/component_requirements.py" \
        --components "$(in_root "$venv/bin" python -c \
            'import homeassistant, os; print(os.path.dirname(homeassistant.__file__))')/components")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return
    fi
    log "installing the tests' component requirements: $(echo "$wanted" | tr '\n' ' ')"
    # shellcheck disable=SC2046  # one requirement per line
    in_root "$venv/bin" python -m pip install --quiet $(echo "$wanted")
    printf '%s' "$wanted" >"$stamp"
}

# The browser end-to-end tests (make e2e-newest) need Chromium, VLC and a user
# of their own for VLC, which refuses to run as root. They are added to the root
# with apt on first use rather than listed in ROOT_PACKAGES, so that the suite's
# runs need not carry a browser and the root's key stays the same for branches
# that never run them. A stamp in the root says what was added.
E2E_PACKAGES="chromium vlc-bin vlc-plugin-base"
E2E_USER=acestream-e2e

ensure_e2e() {
    local stamp=$ROOT/.e2e-packages wanted="$E2E_PACKAGES user:$E2E_USER"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return
    fi
    local start=$SECONDS log=$CACHE/e2e-apt.log
    log "adding $E2E_PACKAGES to the root (apt-get; a minute or two)"
    # Valid-Until is not checked, as debootstrap did not when it built the root
    # from the same mirror: a mirror that serves a snapshot would be refused.
    in_root /usr/bin apt-get update -qq -o Acquire::Check-Valid-Until=false >"$log" 2>&1 ||
        die "apt-get update failed; see $log"
    # sid moves on: once these need newer versions of packages the root holds,
    # files would be replaced under the runs using it, so wait for them to end
    # (ensures already take turns on the cache lock).
    local plan
    # shellcheck disable=SC2086  # a list of names
    plan=$(in_root /usr/bin apt-get install -s --no-install-recommends $E2E_PACKAGES)
    if grep -qE '^Inst [^ ]+ \[' <<<"$plan"; then
        log "this upgrades packages of the root: waiting for the runs using it to end"
        flock -x 8
    fi
    # shellcheck disable=SC2086
    in_root /usr/bin env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $E2E_PACKAGES >>"$log" 2>&1 ||
        die "apt-get install $E2E_PACKAGES failed; see $log"
    flock -s 8
    in_root /usr/bin apt-get clean
    in_root /usr/bin /bin/sh -c "getent passwd $E2E_USER >/dev/null ||
        useradd --system --no-create-home --shell /usr/sbin/nologin $E2E_USER"
    printf '%s' "$wanted" >"$stamp"
    log "Chromium and VLC added in $((SECONDS - start)) s"
}

# The newest homeassistant on PyPI for the root's Python, installed under the
# constraints file it ships (as Home Assistant's own images are built), then the
# packages of what a real `hass` sets up whatever its configuration says (the
# frontend, the default and onboarding integrations: script/harness.py knows
# them), so a run on a warm venv installs nothing.
ensure_release() {
    ensure_bootstrap
    local newest current="" venv start
    if [ -L "$ROOT$RELEASE" ]; then current=$(basename "$(readlink "$ROOT$RELEASE")"); fi
    newest=$(newest_on_pypi "$HA")
    if [ -z "$newest" ]; then
        [ -n "$current" ] || die "cannot ask PyPI for the newest $HA and no release venv is installed yet"
        log "PyPI not asked or not reachable; keeping $HA $current"
        newest=$current
    fi
    venv=$RELEASES/$newest
    if [ ! -f "$ROOT$venv/.complete" ]; then
        start=$SECONDS
        log "installing $HA==$newest into $venv"
        rm -rf "$ROOT$venv"
        in_root /usr/bin "$PYTHON" -m venv "$venv"
        in_root "$venv/bin" python -m pip install --quiet --no-deps "$HA==$newest"
        in_root "$venv/bin" /bin/sh -c "python -m pip install --quiet '$HA==$newest' \
            --constraint \"\$(python -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec(\"homeassistant\").origin))')/package_constraints.txt\""
        publish_venv "$RELEASE" "$venv" "$newest" "$current"
        log "release venv ready in $((SECONDS - start)) s"
    fi
    in_root "$venv/bin" python -c '
import sys
sys.path.insert(0, sys.argv[1])
sys.argv[0] = "newest.sh"
import harness
harness.ensure_requirements(())' "$PROJECT/script"
}

release=0
if [ "${1:-}" = --release ]; then
    release=1
    shift
fi
if [ "$release" = 1 ]; then
    CURRENT=$RELEASE
fi
cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
ensure)
    need_root
    mkdir -p "$CACHE"
    exec 9>"$CACHE/lock"
    flock 9
    use_root
    ensure_root
    prune_roots
    sync_host_files
    if [ "$release" = 1 ]; then ensure_release; else ensure_venv; fi
    if [ "${1:-}" = e2e ]; then ensure_e2e; fi
    ;;
run)
    need_root
    [ $# -gt 0 ] || die "usage: script/newest.sh run CMD..."
    use_current_venv
    in_root "$VENV/bin" "$@"
    ;;
versions)
    need_root
    use_current_venv
    in_root "$VENV/bin" python -c '
import sys
from importlib.metadata import version
from importlib.metadata import PackageNotFoundError
from homeassistant.const import __version__
line = f"Python {sys.version.split()[0]}, Home Assistant {__version__}"
try:
    line += f", '"$PHACC"' {version("'"$PHACC"'")}"
except PackageNotFoundError:  # the release venv has none
    pass
print(line)'
    ;;
*)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
