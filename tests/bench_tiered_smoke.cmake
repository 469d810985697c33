# A short `larder-bench tiered` run (2 processes, a small key space): it must
# start its own redis-server, exit 0 and end with one JSON object carrying
# the promised fields. Performance is never asserted.
include(${CMAKE_CURRENT_LIST_DIR}/bench_json.cmake)
bench_json(last tiered --procs 2 --keys 2000 --seconds 0.3 --warmup 0.1 --rounds 1)
foreach(path "tiered;reads_per_s" "tiered;p99_ns" "tiered;l1_hit_ratio" "tiered;probe_p99_us"
             "redis;reads_per_s" "redis_pipelined;reads_per_s" "ratios;redis"
             "ratios;redis_pipelined")
  string(JSON value ERROR_VARIABLE json_err GET "${last}" ${path})
  if(json_err)
    message(FATAL_ERROR "last line lacks ${path}: ${last}\n${json_err}")
  endif()
endforeach()
string(JSON reads GET "${last}" tiered reads_per_s)
string(JSON hit GET "${last}" tiered l1_hit_ratio)
if(reads LESS_EQUAL 0 OR hit STREQUAL "0.000000")
  message(FATAL_ERROR "implausible result: ${last}")
endif()
message(STATUS "larder-bench tiered: ${last}")
