# Runs a short trace replay and checks that the last line is JSON with the
# promised fields and a hit ratio that matches exact LRU (one stripe).
execute_process(COMMAND ${BENCH} replay --trace ${TRACE} --capacity-entries 1024 --stripes 1
                        --compare-exact
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "larder-bench exited with ${rc}:\n${out}")
endif()
string(STRIP "${out}" out)
string(REGEX MATCH "[^\n]*$" last "${out}")
foreach(field requests hits hit_ratio capacity stripes exact_hits)
  string(JSON value ERROR_VARIABLE err GET "${last}" ${field})
  if(err)
    message(FATAL_ERROR "last line is not JSON with '${field}': ${last}\n${err}")
  endif()
  set(json_${field} "${value}")
endforeach()
if(NOT json_hits EQUAL json_exact_hits)
  message(FATAL_ERROR "one-stripe replay hits ${json_hits} != exact LRU ${json_exact_hits}")
endif()
if(NOT json_requests EQUAL 76118)
  message(FATAL_ERROR "expected 76118 requests, got ${json_requests}")
endif()
message(STATUS "larder-bench replay: ${last}")
