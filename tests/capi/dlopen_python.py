"""Loads liblarder.so (with its private jemalloc) into Debian's Python with
ctypes.CDLL, a host whose malloc is glibc's, and does puts and gets.
Usage: /usr/bin/python3 dlopen_python.py path/to/liblarder.so"""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.larder_options_new.restype = ctypes.c_void_p
lib.larder_options_set_capacity_bytes.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
lib.larder_options_free.argtypes = [ctypes.c_void_p]
lib.larder_cache_create.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.larder_put.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                           ctypes.c_size_t, ctypes.c_int64]
lib.larder_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                           ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
lib.larder_cache_destroy.argtypes = [ctypes.c_void_p]
lib.larder_version.restype = ctypes.c_char_p

options = lib.larder_options_new()
assert lib.larder_options_set_capacity_bytes(options, 64 << 20) == 0
cache = ctypes.c_void_p()
assert lib.larder_cache_create(options, ctypes.byref(cache)) == 0
lib.larder_options_free(options)
for i in range(20000):
    key = b"key:%d" % i
    value = bytes([65 + i % 26]) * (i % 200)
    assert lib.larder_put(cache, key, len(key), value, len(value), 0) == 0
buf = ctypes.create_string_buffer(256)
size = ctypes.c_size_t()
for i in range(0, 20000, 7):
    key = b"key:%d" % i
    assert lib.larder_get(cache, key, len(key), buf, len(buf), ctypes.byref(size)) == 0
    assert buf.raw[: size.value] == bytes([65 + i % 26]) * (i % 200)
lib.larder_cache_destroy(cache)
print("python ctypes: liblarder %s loaded with dlopen, 20000 puts and 2858 gets ok"
      % lib.larder_version().decode())
