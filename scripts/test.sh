#!/usr/bin/env bash
# Builds and runs every test, three ways:
#   release: g++, RelWithDebInfo, all suites
#   asan:    clang, AddressSanitizer + UndefinedBehaviorSanitizer, all suites
#   tsan:    clang, ThreadSanitizer, all suites (the stress tests are the point)
# Usage: scripts/test.sh [release|asan|tsan ...]   (default: all three)
# Exits non-zero on the first failing build or test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"

jobs="${LARDER_JOBS:-2}"
configs=("$@")
if ((${#configs[@]} == 0)); then configs=(release asan tsan); fi

run_config() {
  local name="$1"; shift
  local dir="$root/build-$name"
  echo "=== [$name] configure"
  cmake -S "$root" -B "$dir" -G Ninja "$@" > "$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log"; return 1; }
  echo "=== [$name] build"
  cmake --build "$dir" -j "$jobs"
  echo "=== [$name] test"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 900)
}

for c in "${configs[@]}"; do
  case "$c" in
    release) run_config release -DCMAKE_BUILD_TYPE=RelWithDebInfo \
               -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ ;;
    asan)    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
             run_config asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLARDER_SANITIZER=address \
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ ;;
    tsan)    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
             run_config tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLARDER_SANITIZER=thread \
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ ;;
    *) echo "unknown configuration: $c" >&2; exit 2 ;;
  esac
done
echo "=== all requested configurations passed: ${configs[*]}"
