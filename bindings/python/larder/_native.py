"""ctypes declarations for liblarder (capi/include/larder.h). Internal."""
import ctypes
import os

c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_uint32 = ctypes.c_uint32
c_char_p = ctypes.c_char_p
c_double = ctypes.c_double
POINTER = ctypes.POINTER


class Value(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("data", c_void_p), ("size", c_size_t),
                ("internal_", c_void_p)]


class FetchInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("source", c_int), ("stale", c_int),
                ("error", ctypes.c_char * 256)]


class Stats(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t)] + [(name, c_uint64) for name in (
        "hits", "misses", "puts", "evictions", "expirations", "invalidations", "entries",
        "bytes", "capacity_bytes", "capacity_entries", "dropped_promotions", "loads",
        "load_failures", "load_time_ns", "coalesced_waits", "refreshes_started",
        "refreshes_discarded", "loads_discarded", "stale_hits", "negative_hits",
        "load_timeouts")]


LOADER_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, c_void_p)
REMOVAL_FN = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t, c_int)
CLOCK_FN = ctypes.CFUNCTYPE(c_int64, c_void_p)
READY_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, POINTER(Value), POINTER(FetchInfo))

FETCH_DONE, FETCH_LEAD, FETCH_WAIT = 0, 1, 2


def _find_library():
    explicit = os.environ.get("LARDER_LIBRARY")
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("liblarder.so.1", "liblarder.so"):
        candidate = os.path.join(here, name)  # shipped inside the package
        if os.path.exists(candidate):
            return candidate
    return "liblarder.so.1"  # the system's loader path


def load():
    # CDLL (not PyDLL): the GIL is released for the duration of every call.
    lib = ctypes.CDLL(_find_library())
    sig = {
        "larder_version": (c_char_p, []),
        "larder_strerror": (c_char_p, [c_int]),
        "larder_options_new": (c_void_p, []),
        "larder_options_free": (None, [c_void_p]),
        "larder_options_set_capacity_bytes": (c_int, [c_void_p, c_uint64]),
        "larder_options_set_capacity_entries": (c_int, [c_void_p, c_uint64]),
        "larder_options_set_stripes": (c_int, [c_void_p, c_uint32]),
        "larder_options_set_default_ttl": (c_int, [c_void_p, c_int64]),
        "larder_options_set_negative_ttl": (c_int, [c_void_p, c_int64]),
        "larder_options_set_error_ttl": (c_int, [c_void_p, c_int64]),
        "larder_options_set_refresh_beta": (c_int, [c_void_p, c_double]),
        "larder_options_set_stale_while_revalidate": (c_int, [c_void_p, c_int64]),
        "larder_options_set_stale_if_error": (c_int, [c_void_p, c_int64]),
        "larder_options_set_removal_listener": (c_int, [c_void_p, REMOVAL_FN, c_void_p]),
        "larder_options_set_loader": (c_int, [c_void_p, LOADER_FN, c_void_p]),
        "larder_options_set_clock": (c_int, [c_void_p, CLOCK_FN, c_void_p]),
        "larder_cache_create": (c_int, [c_void_p, POINTER(c_void_p)]),
        "larder_cache_close": (c_int, [c_void_p]),
        "larder_cache_destroy": (None, [c_void_p]),
        "larder_put": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64]),
        "larder_get": (c_int, [c_void_p, c_char_p, c_size_t, c_void_p, c_size_t,
                               POINTER(c_size_t)]),
        "larder_contains": (c_int, [c_void_p, c_char_p, c_size_t]),
        "larder_invalidate": (c_int, [c_void_p, c_char_p, c_size_t]),
        "larder_invalidate_prefix": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_uint64)]),
        "larder_clear": (c_int, [c_void_p]),
        "larder_cache_stats": (c_int, [c_void_p, POINTER(Stats)]),
        "larder_load_result_set_value": (c_int, [c_void_p, c_char_p, c_size_t, c_int64]),
        "larder_load_result_set_not_found": (c_int, [c_void_p]),
        "larder_load_result_set_error": (c_int, [c_void_p, c_char_p]),
        "larder_get_or_load": (c_int, [c_void_p, c_char_p, c_size_t, LOADER_FN, c_void_p,
                                       c_int64, POINTER(Value), POINTER(FetchInfo)]),
        "larder_value_release": (c_int, [POINTER(Value)]),
        "larder_fetch_begin": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_int),
                                       POINTER(Value), POINTER(FetchInfo), POINTER(c_void_p),
                                       POINTER(c_void_p)]),
        "larder_lease_complete_value": (c_int, [c_void_p, c_char_p, c_size_t, c_int64,
                                                POINTER(Value)]),
        "larder_lease_complete_not_found": (c_int, [c_void_p]),
        "larder_lease_complete_error": (c_int, [c_void_p, c_char_p]),
        "larder_ticket_on_ready": (c_int, [c_void_p, READY_FN, c_void_p]),
        "larder_ticket_free": (None, [c_void_p]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib
