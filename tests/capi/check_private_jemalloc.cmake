# liblarder.so carries its own jemalloc (prefixed, hidden) and exports no
# allocator symbol that could replace the host's malloc.
execute_process(COMMAND nm ${LIB} OUTPUT_VARIABLE all RESULT_VARIABLE rc1)
execute_process(COMMAND nm -D --defined-only ${LIB} OUTPUT_VARIABLE exported RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "nm failed on ${LIB}")
endif()
if(NOT all MATCHES "je_larder_mallocx")
  message(FATAL_ERROR "${LIB} does not contain the private jemalloc (je_larder_mallocx)")
endif()
if(exported MATCHES " (malloc|free|calloc|realloc|mallocx|je_[a-z_]+)\n")
  message(FATAL_ERROR "${LIB} exports allocator symbols:\n${exported}")
endif()
message(STATUS "private jemalloc inside, no allocator symbol exported")
