"""ctypes declarations for liblarder (capi/include/larder.h). Internal.

Every function gets its argtypes and restype once, here. The library is
opened with ctypes.CDLL, which releases the GIL for the duration of each call
(a loader, a flush or a full write-behind queue may block for long).

Two more handles have no prototypes, for the hottest call (Cache.get): an
unprototyped call skips the per-argument from_param conversions, which cost
about as much as the lookup itself. Their caller passes ctypes objects and
bytes, and a key length as a plain int only where libffi widens it to a full
register (see _cache._WIDENS_INT_REGISTERS). `raw` is a CDLL; `raw_keep_gil`
a PyDLL, which keeps the GIL during the call (see Cache._make_get for when).
"""
import ctypes
import os

c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_int32 = ctypes.c_int32
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_uint32 = ctypes.c_uint32
c_char_p = ctypes.c_char_p
c_double = ctypes.c_double
py_object = ctypes.py_object
POINTER = ctypes.POINTER

# Status codes (larder.h), stable and never renumbered.
OK, NOT_FOUND, INVALID_ARGUMENT, EMPTY_KEY, KEY_TOO_LONG = 0, 1, 2, 3, 4
VALUE_TOO_LARGE, BUFFER_TOO_SMALL, NO_MEMORY, LOAD_FAILED, TIMEOUT = 5, 6, 7, 8, 9
RECURSIVE_LOAD, BUSY, CLOSED, INTERNAL, WRITE_FAILED, IO_ERROR, FORKED = (
    10, 11, 12, 13, 14, 15, 16)
UNAVAILABLE = 17

SOURCE_NONE, SOURCE_HIT, SOURCE_STALE, SOURCE_NEGATIVE, SOURCE_LOADED, SOURCE_JOINED = range(6)
FETCH_DONE, FETCH_LEAD, FETCH_WAIT = 0, 1, 2
SNAPSHOT_VALUES = 1
JOURNAL_SYNC_EVERY_WRITE, JOURNAL_SYNC_INTERVAL, JOURNAL_SYNC_NEVER = 0, 1, 2
TRACKING_DEFAULT, TRACKING_BCAST = 0, 1
TIER_CACHE_ASIDE, TIER_WRITE_THROUGH, TIER_WRITE_BEHIND = 0, 1, 2
BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN = 0, 1, 2


class Value(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("data", c_void_p), ("size", c_size_t),
                ("internal_", c_void_p)]


class FetchInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("source", c_int), ("stale", c_int),
                ("error", ctypes.c_char * 256)]


STATS_FIELDS = (
    "hits", "misses", "puts", "evictions", "expirations", "invalidations", "entries",
    "bytes", "capacity_bytes", "capacity_entries", "dropped_promotions", "loads",
    "load_failures", "load_time_ns", "coalesced_waits", "refreshes_started",
    "refreshes_discarded", "loads_discarded", "stale_hits", "negative_hits",
    "load_timeouts")


class Stats(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t)] + [(name, c_uint64) for name in STATS_FIELDS]


class QueuedWrite(ctypes.Structure):
    _fields_ = [("key", c_void_p), ("key_size", c_size_t), ("value", c_void_p),
                ("value_size", c_size_t), ("is_delete", c_int), ("attempt", c_int),
                ("replayed", c_int), ("sequence", c_uint64)]


WRITE_BEHIND_STATS_FIELDS = (
    ("queue_depth", c_uint64), ("queue_bytes", c_uint64), ("oldest_pending_ns", c_int64),
    ("writes", c_uint64), ("coalesced", c_uint64), ("delivered", c_uint64),
    ("batches", c_uint64), ("retries", c_uint64), ("dead_letters", c_uint64),
    ("rejected", c_uint64), ("journal_bytes", c_uint64), ("replayed_writes", c_uint64),
    ("journal_truncated_bytes", c_uint64))


class WriteBehindStats(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t)] + list(WRITE_BEHIND_STATS_FIELDS)


# Callbacks. user_data is declared as a Python object where the binding passes
# one (py_object), so no registry of tokens is needed: the caller keeps the
# object alive for as long as C may call back with it.
LOADER_FN = ctypes.CFUNCTYPE(c_int, py_object, c_void_p, c_size_t, c_void_p)
REMOVAL_FN = ctypes.CFUNCTYPE(None, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t, c_int)
CLOCK_FN = ctypes.CFUNCTYPE(c_int64, c_void_p)
READY_FN = ctypes.CFUNCTYPE(None, py_object, c_int, POINTER(Value), POINTER(FetchInfo))
STORE_WRITE_FN = ctypes.CFUNCTYPE(c_int, py_object, c_void_p, c_size_t, c_void_p, c_size_t,
                                  c_int, c_void_p, c_size_t)
BATCH_WRITE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(QueuedWrite), c_size_t, c_void_p,
                                  c_size_t)
DEAD_LETTER_FN = ctypes.CFUNCTYPE(None, c_void_p, POINTER(QueuedWrite), c_char_p)


class WriteBehindConfig(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t), ("writer", BATCH_WRITE_FN), ("writer_data", c_void_p),
                ("dead_letter", DEAD_LETTER_FN), ("dead_letter_data", c_void_p),
                ("max_batch", c_uint64), ("max_delay_ns", c_int64),
                ("max_queue_entries", c_uint64), ("max_queue_bytes", c_uint64),
                ("enqueue_timeout_ns", c_int64), ("max_attempts", c_int32),
                ("retry_base_ns", c_int64), ("retry_max_ns", c_int64),
                ("journal_dir", c_char_p), ("journal_sync", c_int32),
                ("journal_sync_interval_ns", c_int64), ("journal_segment_bytes", c_uint64)]


class TierConfig(ctypes.Structure):
    """larder_tier_config, field for field (larder.h)."""
    _fields_ = [("struct_size", c_size_t), ("host", c_char_p), ("port", c_int32),
                ("username", c_char_p), ("password", c_char_p), ("database", c_int32),
                ("connect_timeout_ns", c_int64), ("command_timeout_ns", c_int64),
                ("max_connections", c_uint32), ("tracking", c_int32),
                ("broadcast_prefixes", POINTER(c_char_p)), ("broadcast_prefix_count", c_size_t),
                ("l1_max_ttl_ns", c_int64), ("l2_ttl_ns", c_int64),
                ("max_staleness_ns", c_int64), ("health_interval_ns", c_int64),
                ("reconnect_min_ns", c_int64), ("reconnect_max_ns", c_int64),
                ("stampede_lock", c_int32), ("lock_prefix", c_char_p),
                ("lock_lease_ns", c_int64), ("lock_poll_min_ns", c_int64),
                ("lock_poll_max_ns", c_int64), ("breaker_failures", c_int32),
                ("breaker_open_ns", c_int64), ("write_mode", c_int32),
                ("store_writer", STORE_WRITE_FN), ("store_writer_data", py_object),
                ("write_behind", POINTER(WriteBehindConfig))]


TIER_STATS_FIELDS = (
    ("l2_hits", c_uint64), ("l2_misses", c_uint64), ("l2_errors", c_uint64),
    ("l2_skipped", c_uint64), ("loads", c_uint64), ("fills", c_uint64),
    ("fills_refused", c_uint64), ("bypassed_reads", c_uint64),
    ("invalidation_messages", c_uint64), ("invalidated_keys", c_uint64),
    ("flushes", c_uint64), ("tracking_losses", c_uint64), ("connection_losses", c_uint64),
    ("reconnects", c_uint64), ("tracking_up", c_int32), ("breaker_state", c_int32),
    ("breaker_opens", c_uint64), ("lock_acquired", c_uint64), ("lock_waits", c_uint64),
    ("lock_wait_hits", c_uint64), ("lock_fail_open", c_uint64), ("writes", c_uint64),
    ("write_failures", c_uint64))


class TierStats(ctypes.Structure):
    _fields_ = [("struct_size", c_size_t)] + list(TIER_STATS_FIELDS)


def library_path():
    """The liblarder the package loads: $LARDER_LIBRARY, else the copy
    shipped inside the package, else the system's loader path."""
    explicit = os.environ.get("LARDER_LIBRARY")
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("liblarder.so.1", "liblarder.so"):
        candidate = os.path.join(here, name)
        if os.path.exists(candidate):
            return candidate
    return "liblarder.so.1"


_SIGNATURES = {
    "larder_version": (c_char_p, []),
    "larder_version_number": (c_int, []),
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
    "larder_options_set_default_refresh_delta": (c_int, [c_void_p, c_int64]),
    "larder_options_set_stale_while_revalidate": (c_int, [c_void_p, c_int64]),
    "larder_options_set_stale_if_error": (c_int, [c_void_p, c_int64]),
    "larder_options_set_refresh_threads": (c_int, [c_void_p, c_uint32]),
    "larder_options_set_random_seed": (c_int, [c_void_p, c_uint64]),
    "larder_options_set_removal_listener": (c_int, [c_void_p, REMOVAL_FN, c_void_p]),
    "larder_options_set_loader": (c_int, [c_void_p, LOADER_FN, py_object]),
    "larder_options_set_clock": (c_int, [c_void_p, CLOCK_FN, c_void_p]),
    "larder_cache_create": (c_int, [c_void_p, POINTER(c_void_p)]),
    "larder_cache_close": (c_int, [c_void_p]),
    "larder_cache_destroy": (None, [c_void_p]),
    "larder_put": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64]),
    "larder_put_charged": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64,
                                   c_uint64]),
    "larder_get": (c_int, [c_void_p, c_char_p, c_size_t, c_void_p, c_size_t, POINTER(c_size_t)]),
    "larder_get_pinned": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(Value)]),
    "larder_value_release": (c_int, [POINTER(Value)]),
    "larder_free": (None, [c_void_p]),
    "larder_contains": (c_int, [c_void_p, c_char_p, c_size_t]),
    "larder_invalidate": (c_int, [c_void_p, c_char_p, c_size_t]),
    "larder_invalidate_prefix": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_uint64)]),
    "larder_count": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_uint64)]),
    "larder_copy_entries": (c_int, [c_void_p, c_char_p, c_size_t, c_int, POINTER(c_void_p),
                                POINTER(c_size_t), POINTER(c_uint64)]),
    "larder_clear": (c_int, [c_void_p]),
    "larder_cleanup": (c_int, [c_void_p]),
    "larder_cache_stats": (c_int, [c_void_p, POINTER(Stats)]),
    "larder_load_result_set_value": (c_int, [c_void_p, c_char_p, c_size_t, c_int64]),
    "larder_load_result_set_not_found": (c_int, [c_void_p]),
    "larder_load_result_set_error": (c_int, [c_void_p, c_char_p]),
    "larder_get_or_load": (c_int, [c_void_p, c_char_p, c_size_t, LOADER_FN, py_object,
                                   c_int64, POINTER(Value), POINTER(FetchInfo)]),
    "larder_get_or_load_copy": (c_int, [c_void_p, c_char_p, c_size_t, LOADER_FN, py_object,
                                        c_int64, c_void_p, c_size_t, POINTER(c_size_t),
                                        POINTER(Value), POINTER(FetchInfo)]),
    "larder_refresh": (c_int, [c_void_p, c_char_p, c_size_t]),
    "larder_fetch_begin": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(c_int),
                                   POINTER(Value), POINTER(FetchInfo), POINTER(c_void_p),
                                   POINTER(c_void_p)]),
    "larder_lease_complete_value": (c_int, [c_void_p, c_char_p, c_size_t, c_int64,
                                            POINTER(Value)]),
    "larder_lease_complete_not_found": (c_int, [c_void_p]),
    "larder_lease_complete_error": (c_int, [c_void_p, c_char_p]),
    "larder_lease_abandon": (None, [c_void_p]),
    "larder_ticket_wait": (c_int, [c_void_p, c_int64, POINTER(Value), POINTER(FetchInfo)]),
    "larder_ticket_on_ready": (c_int, [c_void_p, READY_FN, py_object]),
    "larder_ticket_free": (None, [c_void_p]),
    "larder_write_through": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64,
                                     STORE_WRITE_FN, py_object, c_void_p, c_size_t]),
    "larder_delete_through": (c_int, [c_void_p, c_char_p, c_size_t, STORE_WRITE_FN, py_object,
                                      c_void_p, c_size_t]),
    "larder_write_behind_config_init": (c_int, [POINTER(WriteBehindConfig)]),
    "larder_write_behind_open": (c_int, [c_void_p, POINTER(WriteBehindConfig),
                                         POINTER(c_void_p)]),
    "larder_write_behind_put": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t,
                                        c_int64]),
    "larder_write_behind_delete": (c_int, [c_void_p, c_char_p, c_size_t]),
    "larder_write_behind_flush": (c_int, [c_void_p, c_int64]),
    "larder_write_behind_close": (c_int, [c_void_p, c_int64]),
    "larder_write_behind_stats_get": (c_int, [c_void_p, POINTER(WriteBehindStats)]),
    "larder_write_behind_destroy": (None, [c_void_p]),
    "larder_tier_config_init": (c_int, [POINTER(TierConfig)]),
    "larder_tier_create": (c_int, [c_void_p, POINTER(TierConfig), POINTER(c_void_p),
                                   c_char_p, c_size_t]),
    "larder_tier_destroy": (None, [c_void_p]),
    "larder_tier_get": (c_int, [c_void_p, c_char_p, c_size_t, LOADER_FN, py_object, c_int64,
                                POINTER(Value), POINTER(FetchInfo)]),
    "larder_tier_set": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_int64,
                                c_char_p, c_size_t]),
    "larder_tier_delete": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t]),
    "larder_tier_invalidate": (c_int, [c_void_p, c_char_p, c_size_t]),
    "larder_tier_flush": (c_int, [c_void_p, c_int64]),
    "larder_tier_stats_get": (c_int, [c_void_p, POINTER(TierStats)]),
    "larder_tier_l1_stats": (c_int, [c_void_p, POINTER(Stats)]),
}


class Library:
    """The loaded library: `lib` (prototyped), `raw` and `raw_keep_gil` (no
    prototypes; CDLL and PyDLL)."""

    def __init__(self, path):
        self.path = path
        self.lib = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        self.raw = ctypes.CDLL(path)
        self.raw_keep_gil = ctypes.PyDLL(path)


def load():
    return Library(library_path())
