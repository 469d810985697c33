#!/usr/bin/env bash
# Installs every Debian package the build and the tests need, and nothing that
# is already there. Safe to run repeatedly; runs `apt-get update` at most once.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang libclang-rt-dev          # clang 14: -Wthread-safety, TSan/ASan runtimes
  libabsl-dev libxxhash-dev libgtest-dev zlib1g-dev
  abigail-tools                  # abidiff: the C ABI against its committed baseline
  dpkg-dev                       # apt-get source (the private jemalloc build)
  libhiredis-dev redis-server    # the Redis second tier (larder_redis), its tests, larder-bench
  gnuplot-nox                    # larder-bench run --plot, larder-demo --plot
  libsqlite3-dev                 # larder-demo: the database behind the cache
  python3-pytest                 # the Python binding's tests (run with /usr/bin/python3)
  python3-venv python3-pip       # the Python wheel installed into a fresh venv, offline
  python3-setuptools python3-wheel  # build the wheel offline (pip wheel --no-build-isolation)
  python3-cachetools             # the Python benchmark's baseline (python -m larder.bench)
)

# Node.js, for the addon and its tests: Debian's nodejs and npm, unless a
# node is installed already (any version from 18 on; its Node-API headers
# are used when it has them, see below).
if ! command -v node > /dev/null 2>&1; then
  packages+=(nodejs npm)
elif ! command -v npm > /dev/null 2>&1; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# jemalloc for the engine, built privately from Debian's source package.
"$(dirname "${BASH_SOURCE[0]}")/jemalloc.sh"

# The Node package's devDependencies, pinned by its package-lock.json:
# node-api-headers (the headers CMake falls back to when node came without
# its own, as Debian's nodejs does) and what the tests compare with
# (lru-cache, typescript). Only when missing or older than the lock file.
node_pkg="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bindings/node"
if [[ ! -f "$node_pkg/node_modules/.package-lock.json" ||
      "$node_pkg/package-lock.json" -nt "$node_pkg/node_modules/.package-lock.json" ]]; then
  echo "bootstrap: npm ci in bindings/node"
  (cd "$node_pkg" && npm ci --no-audit --no-fund --loglevel=error)
fi
