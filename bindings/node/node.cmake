# The Node.js addon (included by the top-level CMakeLists.txt).
# Built with CMake against Node-API headers found locally (never
# downloaded): Node's own (next to the node binary, or /usr/include/node),
# or the node-api-headers package that `npm ci` in bindings/node installs
# (scripts/bootstrap.sh does that when Node came without headers). The
# package is assembled in <build>/node, ready for `npm install <build>/node`.
#   LARDER_BUILD_NODE=AUTO (default): built when node is installed; a node
#     without usable headers stops the configure, naming the fix.
#   ON: node and headers are required. OFF: never built.
set(LARDER_BUILD_NODE AUTO CACHE STRING "Build the Node.js addon: AUTO, ON or OFF")
set_property(CACHE LARDER_BUILD_NODE PROPERTY STRINGS AUTO ON OFF)
set(larder_node_try OFF)       # look for node
set(larder_node_required OFF)  # fail without it
if(NOT LARDER_SANITIZER STREQUAL "" OR LARDER_BUILD_FUZZ)
  # Sanitized builds: the addon would need the sanitizer runtime preloaded
  # into node.
  if(LARDER_BUILD_NODE STREQUAL "ON")
    message(FATAL_ERROR "LARDER_BUILD_NODE=ON cannot be combined with a sanitizer or fuzz build")
  endif()
elseif(LARDER_BUILD_NODE STREQUAL "ON")
  set(larder_node_try ON)
  set(larder_node_required ON)
elseif(LARDER_BUILD_NODE STREQUAL "AUTO")
  set(larder_node_try ON)
elseif(NOT LARDER_BUILD_NODE STREQUAL "OFF")
  message(FATAL_ERROR "LARDER_BUILD_NODE must be AUTO, ON or OFF")
endif()
if(larder_node_try)
  find_program(NODE_EXECUTABLE node)
  find_program(NPM_EXECUTABLE npm)
  if(NOT NODE_EXECUTABLE)
    if(larder_node_required)
      message(FATAL_ERROR "LARDER_BUILD_NODE=ON but no node found: run scripts/bootstrap.sh")
    endif()
    message(STATUS "larder: node not found, the Node.js addon is not built")
    set(larder_node_try OFF)
  endif()
endif()
if(larder_node_try)
  execute_process(COMMAND ${NODE_EXECUTABLE} -p "process.versions.node + ';' + process.versions.napi"
                  OUTPUT_VARIABLE node_versions OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE node_rc)
  if(NOT node_rc EQUAL 0)
    message(FATAL_ERROR "${NODE_EXECUTABLE} does not run (${node_rc}); fix it, or -DLARDER_BUILD_NODE=OFF")
  endif()
  list(GET node_versions 0 node_version)
  list(GET node_versions 1 node_napi)
  get_filename_component(node_bin_dir "${NODE_EXECUTABLE}" DIRECTORY)
  get_filename_component(node_prefix "${node_bin_dir}" DIRECTORY)
  # Node's own headers (next to its binary: /usr/bin/node has /usr/include/
  # node), else the node-api-headers package. Node-API is ABI-stable, so
  # either serves any Node that has Node-API 8.
  find_path(NODE_API_INCLUDE_DIR node_api.h NO_DEFAULT_PATH
    PATHS "${node_prefix}/include/node"
          "${CMAKE_CURRENT_SOURCE_DIR}/bindings/node/node_modules/node-api-headers/include")
  if(NOT NODE_API_INCLUDE_DIR)
    message(FATAL_ERROR
      "node ${node_version} (Node-API ${node_napi}) is installed at ${NODE_EXECUTABLE} but "
      "node_api.h was not found (looked in ${node_prefix}/include/node and "
      "bindings/node/node_modules/node-api-headers/include). Run scripts/bootstrap.sh (it "
      "installs the node-api-headers package with `npm ci` in bindings/node), or pass "
      "-DNODE_API_INCLUDE_DIR=<a directory holding node_api.h>, or -DLARDER_BUILD_NODE=OFF to "
      "build without the Node.js addon.")
  endif()
  if(node_napi LESS 8)
    message(FATAL_ERROR "node ${node_version} has Node-API ${node_napi}; the addon needs 8 "
                        "(Node 18 or later), or -DLARDER_BUILD_NODE=OFF")
  endif()
  message(STATUS "larder: Node.js addon for node ${node_version} (Node-API ${node_napi}), "
                 "headers in ${NODE_API_INCLUDE_DIR}")
  add_library(larder_node MODULE bindings/node/src/addon.cc)
  set_target_properties(larder_node PROPERTIES PREFIX "" SUFFIX ".node" OUTPUT_NAME larder
                        CXX_VISIBILITY_PRESET hidden
                        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/node)
  target_include_directories(larder_node PRIVATE ${NODE_API_INCLUDE_DIR})
  target_compile_definitions(larder_node PRIVATE NAPI_VERSION=8)
  target_link_libraries(larder_node PRIVATE larder_static)
  # -z nodelete: Node may unload an addon when the worker that loaded it
  # ends, while other threads that used its caches run its exit hooks
  # later (see capi/capi.cmake).
  target_link_options(larder_node PRIVATE
    "LINKER:--version-script=${CMAKE_CURRENT_SOURCE_DIR}/bindings/node/addon.map"
    "LINKER:-z,nodelete")
  # The package's other files, copied on every build of the addon (not only
  # when it relinks), so the package never mixes old and new files.
  set(larder_node_files index.js index.d.ts package.json bench.js README.md)
  list(TRANSFORM larder_node_files PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/bindings/node/)
  add_custom_target(larder_node_files
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/node
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${larder_node_files} ${CMAKE_BINARY_DIR}/node
    COMMENT "Assembling the Node.js package in ${CMAKE_BINARY_DIR}/node")
  add_dependencies(larder_node larder_node_files)
endif()
