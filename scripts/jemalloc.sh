#!/usr/bin/env bash
# Builds a private, dlopen-safe jemalloc for Larder from Debian's source
# package (Debian's own libjemalloc.so.2 uses initial-exec TLS, so it cannot
# be loaded by dlopen into Python or Node, and its unprefixed symbols would
# replace the host's malloc). The result, build-deps/jemalloc/lib/
# libjemalloc_pic.a, has every public symbol prefixed je_larder_ and every
# internal one namespaced larder_je_; liblarder's version script hides them.
# Idempotent: does nothing when the archive exists.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/build-deps"
out="$deps/jemalloc"
if [[ -f "$out/lib/libjemalloc_pic.a" && -f "$out/include/jemalloc/jemalloc.h" ]]; then exit 0; fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# A deb-src entry for bookworm main, next to the system's deb entries.
src_list=/etc/apt/sources.list.d/larder-deb-src.sources
if ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ && ! grep -qs "^deb-src" /etc/apt/sources.list; then
  $SUDO tee "$src_list" > /dev/null <<'LIST'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
  $SUDO apt-get update -qq
fi
mkdir -p "$deps"
cd "$deps"
if ! ls -d jemalloc-5.* > /dev/null 2>&1; then
  apt-get source -qq jemalloc > "$deps/jemalloc-source.log" 2>&1 || {
    cat "$deps/jemalloc-source.log"; exit 1; }
fi
src="$(ls -d "$deps"/jemalloc-5.* | head -1)"
cd "$src"
echo "jemalloc: configuring a private build in $src"
./configure --with-jemalloc-prefix=je_larder_ --with-private-namespace=larder_je_ \
  --disable-initial-exec-tls --disable-cxx --without-export --disable-shared \
  --disable-libdl --enable-stats > "$deps/jemalloc-configure.log" 2>&1 || {
  tail -30 "$deps/jemalloc-configure.log"; exit 1; }
make -j"${LARDER_JOBS:-2}" build_lib_static > "$deps/jemalloc-make.log" 2>&1 || {
  tail -30 "$deps/jemalloc-make.log"; exit 1; }
rm -rf "$out"
mkdir -p "$out/lib" "$out/include/jemalloc"
cp lib/libjemalloc_pic.a "$out/lib/"
cp include/jemalloc/jemalloc.h "$out/include/jemalloc/"
echo "jemalloc: $out/lib/libjemalloc_pic.a"
