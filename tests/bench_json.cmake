# Shared by the larder-bench smoke tests (cmake -P scripts): runs ${BENCH}
# with the given arguments, fails the test unless it exits 0, and sets
# out_var to the last line of its output, the JSON object every command ends
# with.
function(bench_json out_var)
  execute_process(COMMAND ${BENCH} ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(JOIN " " command ${ARGN})
    message(FATAL_ERROR "larder-bench ${command} exited with ${rc}:\n${out}\n${err}")
  endif()
  string(STRIP "${out}" out)
  string(REGEX MATCH "[^\n]*$" last "${out}")
  set(${out_var} "${last}" PARENT_SCOPE)
endfunction()
