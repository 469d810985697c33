#!/usr/bin/env bash
# Builds and runs every test, three ways:
#   release: g++, RelWithDebInfo, all suites
#   asan:    clang, AddressSanitizer + UndefinedBehaviorSanitizer, all suites
#   tsan:    clang, ThreadSanitizer, all suites (the stress tests are the point)
#   fuzz:    clang libFuzzer targets (fuzz/), each run for LARDER_FUZZ_SECONDS (60):
#            five targets, about six minutes with the build
# Usage: scripts/test.sh [release|asan|tsan|fuzz ...]   (default: all four)
# Exits non-zero on the first failing build or test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"

jobs="${LARDER_JOBS:-2}"
configs=("$@")
if ((${#configs[@]} == 0)); then configs=(release asan tsan fuzz); fi

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

run_fuzz() {
  local dir="$root/build-fuzz"
  local seconds="${LARDER_FUZZ_SECONDS:-60}"
  echo "=== [fuzz] configure"
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLARDER_BUILD_FUZZ=ON \
    -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_BENCH=OFF -DLARDER_BUILD_EXAMPLES=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ > "$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log"; return 1; }
  echo "=== [fuzz] build"
  local targets=(operations capi journal write_behind prefix_loads)
  cmake --build "$dir" -j "$jobs" --target "${targets[@]/#/fuzz_}"
  # Longest input per target (libFuzzer's default is 4,096 bytes). An input's
  # cost is its steps; these lengths reach the same engine edges in the same
  # time at several times the rate (fuzz/README.md, "Speed").
  local -A max_len=([operations]=48 [journal]=1024)
  local passed=0 failed=0
  for target in "${targets[@]}"; do
    # New inputs go to a scratch corpus; the committed seeds are read only.
    local work="$dir/corpus-$target"
    rm -rf "$work" && mkdir -p "$work"
    echo "=== [fuzz] fuzz_$target for ${seconds}s"
    if (cd "$dir" && ./fuzz_$target -max_total_time="$seconds" -print_final_stats=1 \
          -max_len="${max_len[$target]:-4096}" \
          -artifact_prefix="$dir/artifact-$target-" "$work" "$root/fuzz/corpus/$target" \
          > "$dir/fuzz_$target.log" 2>&1); then
      grep -E "stat::(number_of_executed_units|average_exec_per_sec)" "$dir/fuzz_$target.log" || true
      passed=$((passed + 1))
    else
      tail -60 "$dir/fuzz_$target.log"
      echo "fuzz_$target found a problem; the input is in $dir/artifact-$target-*" >&2
      failed=$((failed + 1))
    fi
  done
  echo "fuzz: $passed passed, $failed failed"
  ((failed == 0))
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
    fuzz)    run_fuzz ;;
    *) echo "unknown configuration: $c" >&2; exit 2 ;;
  esac
done
echo "=== all requested configurations passed: ${configs[*]}"
