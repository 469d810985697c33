#!/usr/bin/env bash
# Builds (release) and runs the demo: the caching lesson against a real SQLite
# database (examples/demo/). Arguments go to larder-demo (try --help); the
# charts go to build-release/demo-charts unless --plot is given.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
dir="$root/build-release"
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$dir" -j "${LARDER_JOBS:-2}" --target larder-demo
args=("$@")
plot_given=0
for a in "${args[@]}"; do [[ "$a" == --plot ]] && plot_given=1; done
if ((plot_given == 0)); then args+=(--plot "$dir/demo-charts"); fi
exec "$dir/larder-demo" "${args[@]}"
