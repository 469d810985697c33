#!/usr/bin/env bash
# Builds (release) and runs the demo program.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
dir="$root/build-release"
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$dir" -j "${LARDER_JOBS:-2}" --target cache_aside_example
"$dir/cache_aside_example"
