# The C ABI: liblarder.so (SONAME liblarder.so.<ABI major>) and liblarder.a,
# installed with larder.h, a CMake package and larder.pc.
set(LARDER_ABI_MAJOR 1)
set(LARDER_CAPI_SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/capi/larder.cc
                        ${CMAKE_CURRENT_SOURCE_DIR}/capi/tier.cc)
set(LARDER_CAPI_OBJECTS $<TARGET_OBJECTS:larder_core_objects>)
if(LARDER_REDIS)
  list(APPEND LARDER_CAPI_OBJECTS $<TARGET_OBJECTS:larder_redis_objects>)
endif()

function(larder_capi_target target kind)
  add_library(${target} ${kind} ${LARDER_CAPI_SOURCES} ${LARDER_CAPI_OBJECTS}
              ${LARDER_JEMALLOC_OBJECTS})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME larder CXX_VISIBILITY_PRESET hidden
                                             VISIBILITY_INLINES_HIDDEN ON)
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/capi/include>
           $<INSTALL_INTERFACE:include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/core/include ${CMAKE_CURRENT_SOURCE_DIR}/core/src)
  target_link_libraries(${target} PRIVATE Threads::Threads m)
  if(LARDER_REDIS)
    target_compile_definitions(${target} PRIVATE LARDER_HAVE_REDIS=1)
    target_link_libraries(${target} PRIVATE ${HIREDIS_LIBRARY})
  endif()
endfunction()

larder_capi_target(larder_shared SHARED)
set_target_properties(larder_shared PROPERTIES VERSION ${PROJECT_VERSION}
                                               SOVERSION ${LARDER_ABI_MAJOR})
# The version script makes the export list exact: -fvisibility=hidden alone
# still exports weak std:: template instantiations.
target_link_options(larder_shared PRIVATE
  "LINKER:--version-script=${CMAKE_CURRENT_SOURCE_DIR}/capi/larder.map")
if(NOT LARDER_SANITIZED)
  # Every symbol resolved at link time (a sanitizer build leaves its runtime's
  # symbols to the executable, so it cannot use this).
  target_link_options(larder_shared PRIVATE "LINKER:--no-undefined")
endif()
# Never unloaded: the thread-exit hooks of the epoch records (a pthread key
# destructor) and of the private jemalloc (its TSD key, thread caches) point
# into this library, and threads that used it may outlive a dlclose. glibc
# already keeps a library loaded while threads with its thread_local
# destructors live; -z nodelete makes that hold for every thread, and keeps
# a load/unload cycle from leaking pthread keys.
target_link_options(larder_shared PRIVATE "LINKER:-z,nodelete")
set_target_properties(larder_shared PROPERTIES LINK_DEPENDS
                      ${CMAKE_CURRENT_SOURCE_DIR}/capi/larder.map)
add_library(larder::larder ALIAS larder_shared)

larder_capi_target(larder_static STATIC)
# A C program linking the static library needs the C++ runtime (and hiredis).
target_link_libraries(larder_static INTERFACE
  $<$<NOT:$<LINK_LANGUAGE:CXX>>:stdc++> m Threads::Threads)
if(LARDER_REDIS)
  target_link_libraries(larder_static INTERFACE ${HIREDIS_LIBRARY})
  set(LARDER_PC_REDIS_LIBS " -lhiredis")
endif()
add_library(larder::larder_static ALIAS larder_static)

# ---- install: headers, libraries, CMake package, pkg-config ----
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS larder_shared larder_static EXPORT larderTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/capi/include/larder.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT larderTargets NAMESPACE larder:: FILE larderTargets.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/capi/larderConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/larderConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/larderConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/larderConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/larderConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)
file(RELATIVE_PATH LARDER_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig"
     "${CMAKE_INSTALL_PREFIX}")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/capi/larder.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/larder.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/larder.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
