# A short load-generator run against Larder and two baselines: it must exit 0
# and end with one JSON object carrying the promised fields.
include(${CMAKE_CURRENT_LIST_DIR}/bench_json.cmake)
bench_json(last run --keys 20000 --threads 2 --seconds 0.4 --rounds 1 --read-ratio 0.9
           --capacity-entries 2000 --baselines mutex,sharded)
foreach(path "larder;ops_per_s" "larder;p99_ns" "larder;hit_ratio" "baselines;mutex;ops_per_s"
             "baselines;sharded;hit_ratio" "ratios;mutex" "ratios;sharded")
  string(JSON value ERROR_VARIABLE err GET "${last}" ${path})
  if(err)
    message(FATAL_ERROR "last line lacks ${path}: ${last}\n${err}")
  endif()
endforeach()
string(JSON ops GET "${last}" larder ops_per_s)
string(JSON hit GET "${last}" larder hit_ratio)
if(ops LESS_EQUAL 0 OR hit STREQUAL "0.000000")
  message(FATAL_ERROR "implausible result: ${last}")
endif()
message(STATUS "larder-bench run: ${last}")

# Equal work, equal hit ratios: with --ops, one thread and one stripe, Larder
# and the single-mutex LRU (both exact LRU) see the same operations. And the
# warm-up leaves the most popular keys cached: a short run hits no less than
# a long one (warmed least popular last, it started from the cold end: 62%
# against 72%).
function(hit_ratios ops out_larder out_mutex)
  bench_json(last run --keys 100000 --threads 1 --ops ${ops} --rounds 1 --read-ratio 0.9
             --capacity-entries 10000 --stripes 1 --baselines mutex)
  string(JSON larder GET "${last}" larder hit_ratio)
  string(JSON mutex GET "${last}" baselines mutex hit_ratio)
  set(${out_larder} ${larder} PARENT_SCOPE)
  set(${out_mutex} ${mutex} PARENT_SCOPE)
endfunction()
hit_ratios(20000 short_larder short_mutex)
hit_ratios(400000 long_larder long_mutex)
if(NOT short_larder STREQUAL short_mutex OR NOT long_larder STREQUAL long_mutex)
  message(FATAL_ERROR "equal work, different hit ratios: larder ${short_larder} / ${long_larder}, "
                      "mutex ${short_mutex} / ${long_mutex}")
endif()
string(REGEX REPLACE "^0\\.([0-9][0-9][0-9]).*" "\\1" short_permille "${short_larder}")
string(REGEX REPLACE "^0\\.([0-9][0-9][0-9]).*" "\\1" long_permille "${long_larder}")
math(EXPR floor "${long_permille} - 20")
if(short_permille LESS floor)
  message(FATAL_ERROR "a short run hits ${short_larder}, a long one ${long_larder}: "
                      "the warm-up left the cache cold")
endif()
message(STATUS "hit ratios, 20 k / 400 k ops: ${short_larder} / ${long_larder}")
