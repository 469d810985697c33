"""larder.TieredCache: a local cache (L1) in front of a Redis every process
shares (L2), over larder_tier_* (capi/include/larder.h; issue 16)."""
import ctypes
import os
import weakref

from . import _cache, _codec, _errors, _native as n, _stats
from ._errors import failures

_lib = _cache._lib
_ns = _cache._ns
_MISSING = object()
_ERROR_SIZE = 512
_BREAKER_STATES = {n.BREAKER_CLOSED: "closed", n.BREAKER_OPEN: "open",
                   n.BREAKER_HALF_OPEN: "half_open"}

FORKED_MESSAGE = ("this larder.TieredCache was created by the parent process before "
                  "os.fork(): create a new larder.TieredCache in the child (the inherited one "
                  "may only be closed or dropped)")

# Every live tier, so a child process can tell them apart after fork().
_live = weakref.WeakSet()

def _text(value, what):
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL")
    return value.encode("utf-8")


def _duration(config, field, seconds, what):
    """Sets a nanosecond field unless seconds is None (the library's default)."""
    if seconds is not None:
        setattr(config, field, _ns(seconds, what))


def _destroy(handle_box):
    handle = handle_box[0]
    handle_box[0] = None
    if handle is not None:
        _lib.larder_tier_destroy(handle)


class _TierWriter:
    """Write-through's writer and deleter, for the store trampoline."""

    __slots__ = ("writer", "deleter", "decode_key", "loads")

    def __init__(self, writer, deleter, decode_key, loads):
        self.writer = writer
        self.deleter = deleter
        self.decode_key = decode_key
        self.loads = loads


def _tier_store_trampoline(call, key_ptr, key_size, value_ptr, value_size, is_delete, error,
                           error_size):
    # Runs on the thread of set() or delete(). The exception goes back to
    # that caller through a token in the error text (see _errors.Failures).
    try:
        key = call.decode_key(ctypes.string_at(key_ptr, key_size))
        if is_delete:
            call.deleter(key)
        else:
            value = ctypes.string_at(value_ptr, value_size)
            call.writer(key, value if call.loads is None else call.loads(value))
        return 0
    except BaseException as exc:
        text = failures.remember(exc)[:max(error_size - 1, 0)]
        if error and error_size:
            ctypes.memmove(error, text + b"\0", len(text) + 1)
        return 1


_TIER_STORE_TRAMPOLINE = n.STORE_WRITE_FN(_tier_store_trampoline)


class TieredCache:
    """A local cache (L1) in front of a Redis all processes share (L2).

    get() looks in L1 (no network), then in Redis, then calls the loader and
    stores its value in Redis and L1. Redis tells this process which keys
    the others changed (client-side caching), so after a write no process
    serves the old value from its L1 for longer than max_staleness (1 s by
    default; usually well under a millisecond). Redis errors and timeouts
    count as misses, behind a circuit breaker. See README.md ("Many
    processes: Redis as the shared L2") and docs/design.md.

    max_bytes, max_entries: the L1's capacity (as Cache's).
    host, port, username, password, db: the Redis server (creation raises
        Unavailable if it cannot be reached within connect_timeout, or
        InvalidArgument if it refuses: wrong password, Redis before 6).
    ttl: seconds a value lives in Redis when the loader (Loaded) or set()
        gives none (None: the library's 5 min).
    l1_max_ttl: L1 keeps no value longer than this (None: 60 s); never
        longer than its remaining Redis TTL either.
    prefixes: a list of key prefixes (str or bytes, not overlapping): Redis
        then reports every change under them (BCAST tracking) and keys outside
        them are never kept in L1. None: Redis reports the keys this process
        read.
    max_staleness, health_interval, connect_timeout, command_timeout:
        seconds (None: the library's defaults 1 s, 100 ms, 1 s, 250 ms).
    max_connections: data connections to Redis (None: 8).
    stampede_lock: with True, one caller across all processes loads a missing
        key while the others poll Redis for its value; lock_prefix (None:
        "lock:") and lock_lease (seconds, None: 5 s) tune it.
    breaker_failures, breaker_open: consecutive Redis failures that open the
        circuit breaker, and for how many seconds (None: 5 and 1 s).
    loader: the default loader of get() (key -> value | None | Loaded).
    serializer, key_type: as Cache's (the bytes in Redis are the serialized
        value).
    writer, deleter: write-through (both or neither): set() calls
        writer(key, value) and delete() deleter(key) first (say, the database
        write); if it raises, Redis and the caches are left as they were and
        the exception is raised. Without them, set() and delete() write Redis
        only (cache-aside: the store is yours, then invalidate()).

    Thread-safe, except close(), which no other thread may race. A
    TieredCache created before os.fork() raises Forked in the child.
    """

    def __init__(self, max_bytes=64 << 20, max_entries=0, *, host="127.0.0.1", port=6379,
                 username=None, password=None, db=0, ttl=None, l1_max_ttl=None, prefixes=None,
                 max_staleness=None, health_interval=None, connect_timeout=None,
                 command_timeout=None, max_connections=None, stampede_lock=False,
                 lock_prefix=None, lock_lease=None, breaker_failures=None, breaker_open=None,
                 loader=None, serializer=None, key_type=str, writer=None, deleter=None):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
            raise ValueError("max_bytes must be a positive int")
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 0:
            raise ValueError("max_entries must be a non-negative int")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError("port must be an int from 1 to 65535")
        if not isinstance(db, int) or isinstance(db, bool) or db < 0:
            raise ValueError("db must be a non-negative int")
        if loader is not None and not callable(loader):
            raise TypeError("loader must be callable")
        if (writer is None) != (deleter is None):
            raise TypeError("write-through needs both writer and deleter")
        if writer is not None and not (callable(writer) and callable(deleter)):
            raise TypeError("writer and deleter must be callable")
        self._serializer = _codec.serializer(serializer)
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        self._decode_key = _codec.key_decoder(key_type)
        self._loader = loader
        self._address = f"{host}:{port}"
        self._forked = False
        self._closed = False
        self._box = [None]  # the handle, shared with the finalizer
        self._keep = []     # what C holds pointers to while the tier lives

        config = n.TierConfig()
        _errors.check(_lib.larder_tier_config_init(ctypes.byref(config)))
        if config.struct_size != ctypes.sizeof(config):  # the declaration must match larder.h
            raise _errors.LarderError(n.INTERNAL, "larder_tier_config: size mismatch "
                                      f"({config.struct_size} != {ctypes.sizeof(config)})")
        config.host = _text(host, "host")
        config.port = port
        config.username = _text(username, "username")
        config.password = _text(password, "password")
        config.database = db
        _duration(config, "connect_timeout_ns", connect_timeout, "connect_timeout")
        _duration(config, "command_timeout_ns", command_timeout, "command_timeout")
        if max_connections is not None:
            config.max_connections = max_connections
        if prefixes is not None:
            if isinstance(prefixes, (str, bytes)):
                raise TypeError("prefixes must be a list of str or bytes, not one string")
            encoded = [_codec.key_bytes(p) for p in prefixes]
            array = (ctypes.c_char_p * max(len(encoded), 1))(*encoded)
            self._keep.append((encoded, array))
            config.tracking = n.TRACKING_BCAST
            config.broadcast_prefixes = ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))
            config.broadcast_prefix_count = len(encoded)
        _duration(config, "l1_max_ttl_ns", l1_max_ttl, "l1_max_ttl")
        _duration(config, "l2_ttl_ns", ttl, "ttl")
        _duration(config, "max_staleness_ns", max_staleness, "max_staleness")
        _duration(config, "health_interval_ns", health_interval, "health_interval")
        config.stampede_lock = 1 if stampede_lock else 0
        config.lock_prefix = _text(lock_prefix, "lock_prefix") or config.lock_prefix
        _duration(config, "lock_lease_ns", lock_lease, "lock_lease")
        if breaker_failures is not None:
            config.breaker_failures = breaker_failures
        _duration(config, "breaker_open_ns", breaker_open, "breaker_open")
        config.write_mode = n.TIER_CACHE_ASIDE
        if writer is not None:
            store = _TierWriter(writer, deleter, self._decode_key, self._loads)
            self._keep.append(store)
            config.write_mode = n.TIER_WRITE_THROUGH
            config.store_writer = _TIER_STORE_TRAMPOLINE
            config.store_writer_data = store

        options = _lib.larder_options_new()
        if not options:
            raise MemoryError("larder_options_new")
        handle = ctypes.c_void_p()
        why = ctypes.create_string_buffer(_ERROR_SIZE)
        try:
            _errors.check(_lib.larder_options_set_capacity_bytes(options, max_bytes))
            _errors.check(_lib.larder_options_set_capacity_entries(options, max_entries))
            if loader is not None:
                call = _cache._LoadCall(loader, self._decode_key, self._dumps)
                self._keep.append(call)
                _errors.check(_lib.larder_options_set_loader(options, _cache._LOAD_TRAMPOLINE,
                                                             call))
            rc = _lib.larder_tier_create(options, ctypes.byref(config), ctypes.byref(handle),
                                         why, _ERROR_SIZE)
        finally:
            _lib.larder_options_free(options)
        if rc != n.OK:
            detail = why.value.decode("utf-8", "replace") or _errors.error(rc).name
            raise _errors.error(rc, f"larder.TieredCache({self._address}): {detail}")
        self._box[0] = self._h = handle
        # Freed when collected, not at interpreter exit (daemon threads may
        # still be using it then; the process's end closes the connections).
        self._finalizer = weakref.finalize(self, _destroy, self._box)
        self._finalizer.atexit = False
        _live.add(self)

    # ---- reads ----

    def fetch(self, key, loader=None, *, timeout=None, default=None):
        """get(), telling where the value came from: a Fetched(value,
        source, stale); source "hit" for an L1 or a Redis hit, "loaded" when
        this caller's loader ran, "joined" when it waited for another
        caller's load in this process."""
        h = self._handle()
        call = None
        if loader is not None:
            if not callable(loader):
                raise TypeError("loader must be callable")
            call = _cache._LoadCall(loader, self._decode_key, self._dumps)
        k = _codec.key_bytes(key)
        value, info = _cache._new_value(), _cache._new_info()
        # With no loader of the call's own, the L1's (the tier's loader=), or
        # none: then a Redis miss is "not found".
        rc = _lib.larder_tier_get(h, k, len(k),
                                  _cache._NO_LOADER if call is None else _cache._LOAD_TRAMPOLINE,
                                  call, _ns(timeout, "timeout"), ctypes.byref(value),
                                  ctypes.byref(info))
        if rc == n.OK:
            data = _cache._take_value(value)
            result = data if self._loads is None else self._loads(data)
        elif rc == n.NOT_FOUND:
            result = default
        elif rc == n.LOAD_FAILED:
            raise failures.exception(info.error)
        else:
            raise self._error(rc)
        return _cache.Fetched(result, _cache._SOURCES.get(info.source, "none"), bool(info.stale))

    def get(self, key, loader=None, default=None, *, timeout=None):
        """The value of key: from L1, else Redis, else loader(key) (default:
        the tier's loader=), whose value is then stored in Redis and L1.
        loader returns the value, None for "not found" (`default` is then
        returned and nothing stored), or Loaded(value, ttl) (ttl: the Redis
        TTL). An exception it raises propagates to this caller and to every
        caller of this process that waited for that load. With no loader at
        all, a Redis miss returns `default`. timeout: how long to wait for
        another caller's load (LoadTimeout)."""
        return self.fetch(key, loader, timeout=timeout, default=default).value

    def __getitem__(self, key):
        value = self.get(key, default=_MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    # ---- writes ----

    def set(self, key, value, ttl=None):
        """Stores value in Redis (ttl in seconds; None: the tier's ttl),
        after writer(key, value) with write-through; every other process
        drops its L1 copy. Raises Unavailable when Redis
        was not written (other processes may then serve the old value until
        its Redis TTL)."""
        h = self._handle()
        k = _codec.key_bytes(key)
        v = self._dumps(value)
        why = ctypes.create_string_buffer(_ERROR_SIZE)
        rc = _lib.larder_tier_set(h, k, len(k), v, len(v), _ns(ttl, "ttl"), why, _ERROR_SIZE)
        self._raise_write(rc, why)

    def __setitem__(self, key, value):
        self.set(key, value)

    def delete(self, key):
        """Deletes key from Redis and this L1, after deleter(key) with
        write-through; every other process drops its L1 copy (cache-aside:
        the same as invalidate)."""
        h = self._handle()
        k = _codec.key_bytes(key)
        why = ctypes.create_string_buffer(_ERROR_SIZE)
        rc = _lib.larder_tier_delete(h, k, len(k), why, _ERROR_SIZE)
        self._raise_write(rc, why)

    def __delitem__(self, key):
        self.delete(key)

    def invalidate(self, key):
        """Cache-aside, after you wrote the store: deletes key (and its
        stampede lock) in Redis and drops it from this L1; Redis tells the
        other processes. Raises Unavailable when the delete did not reach
        Redis."""
        h = self._handle()
        k = _codec.key_bytes(key)
        rc = _lib.larder_tier_invalidate(h, k, len(k))
        if rc != n.OK:
            raise self._error(rc)

    def _raise_write(self, rc, why):
        if rc == n.OK:
            return
        if rc == n.WRITE_FAILED:
            raise failures.exception(why.value, n.WRITE_FAILED)  # the writer's own exception
        detail = why.value.decode("utf-8", "replace")
        if rc == n.UNAVAILABLE:
            raise _errors.error(rc, f"Redis at {self._address} was not written"
                                + (f": {detail}" if detail else ""))
        raise self._error(rc, detail or None)

    # ---- stats and lifetime ----

    def stats(self):
        """A larder.TierStats snapshot: Redis hits, misses and errors, loads,
        invalidations, tracking_up, breaker_state ("closed", "open",
        "half_open"), ..., and l1, the local cache's larder.Stats."""
        h = self._handle()
        s = n.TierStats()
        s.struct_size = ctypes.sizeof(s)
        self._check(_lib.larder_tier_stats_get(h, ctypes.byref(s)))
        l1 = n.Stats()
        l1.struct_size = ctypes.sizeof(l1)
        self._check(_lib.larder_tier_l1_stats(h, ctypes.byref(l1)))
        fields = {name: getattr(s, name) for name, _ in n.TIER_STATS_FIELDS}
        fields["tracking_up"] = bool(fields["tracking_up"])
        fields["breaker_state"] = _BREAKER_STATES.get(fields["breaker_state"], "unknown")
        fields["l1"] = _stats.Stats(**{name: getattr(l1, name) for name in n.STATS_FIELDS})
        return _stats.TierStats(**fields)

    @property
    def serializer(self):
        return self._serializer

    @property
    def closed(self):
        return self._closed

    def close(self):
        """Stops the tier's background thread, closes its Redis connections
        and frees its L1; later calls raise Closed. Idempotent. No other
        thread may be using the tier meanwhile. (In a child process after
        fork(), only forgets the parent's tier.)"""
        if self._closed:
            return
        self._closed = True
        if self._forked:
            self._box[0] = None  # the parent's: never freed here
            self._finalizer.detach()
            return
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "forked" if self._forked else "closed" if self._closed else "open"
        return (f"<larder.TieredCache {state}, redis={self._address}, "
                f"serializer={self._serializer.name}>")

    def _handle(self):
        if self._forked:
            raise _errors.Forked(n.FORKED, FORKED_MESSAGE)
        if self._closed:
            raise _errors.Closed(n.CLOSED, "this larder.TieredCache was closed")
        return self._h

    def _check(self, rc):
        if rc != n.OK:
            raise self._error(rc)

    def _error(self, rc, message=None):
        if rc == n.FORKED:
            self._forked = True
            return _errors.Forked(rc, FORKED_MESSAGE)
        if rc == n.UNAVAILABLE and message is None:
            message = f"Redis at {self._address} is unavailable"
        return _errors.error(rc, message)


def _after_fork_in_child():
    for tier in list(_live):
        tier._forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)
