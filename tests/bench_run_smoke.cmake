# A short load-generator run against Larder and two baselines: it must exit 0
# and end with one JSON object carrying the promised fields.
execute_process(COMMAND ${BENCH} run --keys 20000 --threads 2 --seconds 0.4 --rounds 1
                        --read-ratio 0.9 --capacity-entries 2000 --baselines mutex,sharded
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "larder-bench run exited with ${rc}:\n${out}")
endif()
string(STRIP "${out}" out)
string(REGEX MATCH "[^\n]*$" last "${out}")
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
