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
)

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
