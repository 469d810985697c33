#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds and runs a C-only
# consumer against it three ways: CMake package (shared and static) and
# pkg-config (shared and static). Usage: run.sh BUILD_DIR WORK_DIR
set -euo pipefail
build="$1"
work="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rm -rf "$work"
mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"

cmake -S "$here" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log"
cmake --build "$work/cmake" > "$work/build.log"
"$work/cmake/consumer_shared"
"$work/cmake/consumer_static"
# The static binary must not depend on liblarder.so.
if ldd "$work/cmake/consumer_static" | grep -q liblarder; then
  echo "consumer_static is linked against liblarder.so" >&2; exit 1
fi

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
cc -std=c99 -Wall -Werror "$here/main.c" $(pkg-config --cflags --libs larder) -o "$work/pc_shared"
LD_LIBRARY_PATH="$(pkg-config --variable=libdir larder)" "$work/pc_shared"
# Static: Libs.private brings the C++ runtime; -Bstatic picks liblarder.a.
cc -std=c99 -Wall -Werror "$here/main.c" $(pkg-config --cflags larder) \
   $(pkg-config --static --libs larder | sed 's/-llarder/-Wl,-Bstatic -llarder -Wl,-Bdynamic/') \
   -o "$work/pc_static"
"$work/pc_static"
echo "consumer: CMake shared/static and pkg-config shared/static all built and ran"
