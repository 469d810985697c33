# Runs a small `larder-bench memory` and checks its JSON: every figure
# present and plausible (each entry costs at least its 128 payload bytes,
# a 20-byte key and a --value-size of 108;
# resident memory under churn is at least the live bytes), Redis's included
# when REDIS is set (the bench starts its own).
include(${CMAKE_CURRENT_LIST_DIR}/bench_json.cmake)
bench_json(last memory --entries 50000 --value-size 108 --churn-puts 200000 --churn-capacity 16777216)
set(checks "rss_per_entry larder_jemalloc" "rss_per_entry larder_jemalloc_ttl"
           "rss_per_entry larder_glibc"
           "rss_per_entry mutex_glibc" "churn_rss_per_live_byte jemalloc"
           "churn_rss_per_live_byte glibc")
if(REDIS)
  list(APPEND checks "rss_per_entry redis" "churn_rss_per_live_byte redis")
endif()
# The fill measured the asked value size (its child process reports it).
string(JSON value_size GET "${last}" value_size)
if(NOT value_size EQUAL 108)
  message(FATAL_ERROR "value_size = ${value_size}, asked for 108:\n${last}")
endif()
foreach(check IN LISTS checks)
  separate_arguments(path UNIX_COMMAND "${check}")
  string(JSON value ERROR_VARIABLE json_err GET "${last}" ${path})
  if(json_err)
    message(FATAL_ERROR "last line lacks ${check}: ${last}\n${json_err}")
  endif()
  list(GET path 0 kind)
  if(kind STREQUAL "rss_per_entry")
    set(low 128)
    set(high 2000)
  else()
    set(low 0.9)
    set(high 3)
  endif()
  if(value LESS low OR value GREATER high)
    message(FATAL_ERROR "${check} = ${value}, outside [${low}, ${high}]:\n${last}")
  endif()
endforeach()
message(STATUS "larder-bench memory: ${last}")
