# The TSan build is only trustworthy if every lock and atomic the engine uses
# is instrumented. Debian's Abseil is not built with TSan, so the engine must
# not use Abseil's synchronization (absl::Mutex, absl::Notification, ...).
execute_process(COMMAND nm -C ${LIB} OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIB}")
endif()
string(REGEX MATCHALL "U absl::[^\n]*(Mutex|CondVar|Notification|Barrier|BlockingCounter|call_once|SpinLock)[^\n]*" found "${symbols}")
if(found)
  message(FATAL_ERROR "the engine references uninstrumented Abseil synchronization:\n${found}")
endif()
message(STATUS "no Abseil synchronization referenced by ${LIB}")
