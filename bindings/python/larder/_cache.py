"""larder.Cache: the engine as a collections.abc.MutableMapping."""
import asyncio
import atexit
import collections
import collections.abc
import ctypes
import enum
import inspect
import os
import platform
import struct
import sys
import types
import weakref

from . import _codec, _errors, _native as n, _stats
from ._errors import failures

_L = n.load()
_lib = _L.lib
_errors._lib = _lib

_MISSING = object()
_BUFFER = 16384  # bytes of each reusable read buffer; a larger value gets its own

# Unprototyped ctypes calls pass a Python int as a C int. libffi widens an int
# argument passed in a register to the full register (sign-extending it) on
# x86-64 and AArch64, so there a key length (at most 65,535 for any key the
# library accepts) may be passed as a plain int to a size_t parameter in the
# first six (x86-64) or eight (AArch64) arguments, saving a c_size_t object
# per call. Elsewhere it is wrapped in c_size_t.
_WIDENS_INT_REGISTERS = platform.machine().lower() in ("x86_64", "amd64", "aarch64", "arm64")


def version():
    """The version of the liblarder actually loaded, e.g. "0.2.0"."""
    return _lib.larder_version().decode()


def _ns(seconds, what):
    """Seconds (int or float, None for "not set") as nanoseconds."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    return int(seconds * 1e9)


def _report(exc, where):
    """An exception C cannot receive (from a listener or a callback): shown
    through sys.unraisablehook, as Python shows exceptions in __del__."""
    hook_args = types.SimpleNamespace(exc_type=type(exc), exc_value=exc,
                                      exc_traceback=exc.__traceback__,
                                      err_msg=f"Exception ignored in {where}", object=None)
    try:
        sys.unraisablehook(hook_args)
    except Exception:
        pass


class RemovalCause(str, enum.Enum):
    """Why an entry left the cache (compares equal to its string)."""

    EXPLICIT = "explicit"  # invalidate, del, pop, invalidate_prefix, clear
    REPLACED = "replaced"  # a new value for the key
    EXPIRED = "expired"    # its TTL passed
    EVICTED = "evicted"    # removed to stay within capacity


_CAUSES = (RemovalCause.EXPLICIT, RemovalCause.REPLACED, RemovalCause.EXPIRED,
           RemovalCause.EVICTED)
_SOURCES = {n.SOURCE_NONE: "none", n.SOURCE_HIT: "hit", n.SOURCE_STALE: "stale",
            n.SOURCE_NEGATIVE: "negative", n.SOURCE_LOADED: "loaded",
            n.SOURCE_JOINED: "joined"}

Fetched = collections.namedtuple("Fetched", ["value", "source", "stale"])
Fetched.__doc__ = """What fetch() found: the value (or the default), where it came from
("hit", "stale", "negative", "loaded" by this caller, "joined" another caller's
load) and whether it is past its TTL (served within a grace period)."""


class Loaded:
    """A loader's result with its own TTL: return Loaded(value, ttl=seconds)."""

    __slots__ = ("value", "ttl")

    def __init__(self, value, ttl=None):
        self.value = value
        self.ttl = ttl

    def __repr__(self):
        return f"Loaded({self.value!r}, ttl={self.ttl!r})"


def _loaded(out, dumps):
    """A loader's return value as (bytes or None for "not found", ttl_ns)."""
    ttl = 0
    if type(out) is Loaded:
        out, ttl = out.value, _ns(out.ttl, "ttl")
    if out is None:
        return None, 0
    return dumps(out), ttl


class _LoadCall:
    """What the loader trampoline needs; passed to C as user_data."""

    __slots__ = ("loader", "decode_key", "dumps")

    def __init__(self, loader, decode_key, dumps):
        self.loader = loader
        self.decode_key = decode_key
        self.dumps = dumps


def _load_trampoline(call, key_ptr, key_size, result):
    # Runs on the thread that leads the load (or a refresh thread). Nothing
    # may escape: an exception becomes the load's error, with a token that
    # lets every waiter raise this very exception object.
    try:
        data, ttl = _loaded(call.loader(call.decode_key(ctypes.string_at(key_ptr, key_size))),
                            call.dumps)
        if data is None:
            return _lib.larder_load_result_set_not_found(result)
        return _lib.larder_load_result_set_value(result, data, len(data), ttl)
    except BaseException as exc:
        _lib.larder_load_result_set_error(result, failures.remember(exc))
        return 1


_LOAD_TRAMPOLINE = n.LOADER_FN(_load_trampoline)
_NO_LOADER = n.LOADER_FN()


class _StoreCall:
    """A write-through's writer, for the store trampoline."""

    __slots__ = ("fn", "key", "value", "exception")

    def __init__(self, fn, key, value):
        self.fn = fn
        self.key = key
        self.value = value
        self.exception = None


def _store_trampoline(call, key_ptr, key_size, value_ptr, value_size, is_delete, error,
                      error_size):
    try:
        if is_delete:
            call.fn(call.key)
        else:
            call.fn(call.key, call.value)
        return 0
    except BaseException as exc:
        call.exception = exc
        text = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:max(error_size - 1, 0)]
        if error and error_size:
            ctypes.memmove(error, text + b"\0", len(text) + 1)
        return 1


_STORE_TRAMPOLINE = n.STORE_WRITE_FN(_store_trampoline)


def _ready_trampoline(waiter, status, value_ptr, info_ptr):
    # A ticket's load finished: on the completing thread, or at once.
    try:
        value = value_ptr.contents
        data = ctypes.string_at(value.data, value.size) if status == n.OK else None
        _lib.larder_value_release(value_ptr)
        error = info_ptr.contents.error if status == n.LOAD_FAILED else b""
        waiter.resolve((status, data, error))
    except BaseException as exc:  # never into C
        _report(exc, "a larder ticket callback")


_READY_TRAMPOLINE = n.READY_FN(_ready_trampoline)


class _Waiter:
    """An asyncio future waiting for another caller's load."""

    __slots__ = ("loop", "future")
    pending = set()  # kept alive until C has called back

    def __init__(self, loop):
        self.loop = loop
        self.future = loop.create_future()
        _Waiter.pending.add(self)

    def resolve(self, result):
        _Waiter.pending.discard(self)
        try:
            self.loop.call_soon_threadsafe(self._set, result)
        except RuntimeError:  # the loop is closed: nobody is waiting
            pass

    def _set(self, result):
        if not self.future.done():
            self.future.set_result(result)


def _new_value():
    return n.Value(ctypes.sizeof(n.Value), None, 0, None)


def _new_info():
    info = n.FetchInfo()
    info.struct_size = ctypes.sizeof(info)
    return info


def _take_value(value):
    """The bytes of a pinned value, releasing the pin."""
    try:
        return ctypes.string_at(value.data, value.size)
    finally:
        _lib.larder_value_release(ctypes.byref(value))


class _Pin:
    """Owns one pinned reference; released when the last view of it goes."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __del__(self):
        lib = _L.lib if _L is not None else None
        if lib is not None:
            lib.larder_value_release(ctypes.byref(self.value))


def _parse_snapshot(data, size, count, with_values, decode_key, loads):
    """Records of larder_copy_entries: (key, value) pairs, or keys alone."""
    blob = ctypes.string_at(data, size)
    sizes = struct.Struct("=II").unpack_from  # two native uint32, unaligned
    out = []
    append = out.append
    offset = 0
    if not with_values:
        for _ in range(count):
            key_size = sizes(blob, offset)[0]
            offset += 8 + key_size
            append(decode_key(blob[offset - key_size:offset]))
        return out
    for _ in range(count):
        key_size, value_size = sizes(blob, offset)
        offset += 8
        key = decode_key(blob[offset:offset + key_size])
        offset += key_size
        value = blob[offset:offset + value_size]
        offset += value_size
        append((key, value if loads is None else loads(value)))
    return out


# Every live cache, so a child process can tell them apart after fork().
_live = weakref.WeakValueDictionary()
_live_ids = iter(range(1, 1 << 62))


class _Resources:
    """What C holds pointers to, released in order by the cache's finalizer:
    write-behind queues first, then the cache."""

    __slots__ = ("handle", "write_behinds", "keep")

    def __init__(self):
        self.handle = None
        self.write_behinds = []
        self.keep = []  # callbacks and their user_data: alive while C may call them

    def drain(self):
        for wb in self.write_behinds:
            wb.close(0)

    def release(self):
        lib = _L.lib
        for wb in self.write_behinds:
            wb.destroy()
        if self.handle is not None:
            lib.larder_cache_destroy(self.handle)
            self.handle = None


class Cache(collections.abc.MutableMapping):
    """A bounded, thread-safe, in-process cache with TTLs, LRU eviction and
    single-flight loading: a MutableMapping of keys (str or bytes) to values.

    max_bytes: capacity in bytes (key + value + 56 bytes per entry).
    max_entries: an optional bound on the number of entries (0: none).
    ttl: default time to live in seconds (None: no expiry).
    serializer: how values are stored. None (the default) stores bytes and
        str (UTF-8) as they are and returns bytes; "str" returns str;
        "pickle" stores any picklable object; or a (dumps, loads) pair, or an
        object with dumps and loads (e.g. json).
    key_type: str (the default) or bytes: the type of the keys that
        iteration, loaders and listeners see. Either type is accepted as a
        key: a str key is its UTF-8 bytes, so "k" and b"k" are one key.
    loader: the cache's own loader, key -> value | None (not found) |
        Loaded(value, ttl); used by get_or_load and aget_or_load without a
        loader, by refresh(), and by early and stale-while-revalidate
        refreshes. Must be a plain function (aget_or_load runs it in the
        event loop's executor).
    negative_ttl: how long a loader's "not found" is cached (None: not).
    error_ttl: how long a loader's failure is cached (None: not).
    stale_while_revalidate: grace in seconds after expiry during which
        get_or_load returns the old value at once and refreshes it.
    stale_if_error: grace in seconds after expiry during which a failed load
        returns the old value instead of the error.
    refresh_beta: early refresh (XFetch): 0 disables; 1 (default) refreshes
        a value a loader produced shortly before it expires, with a
        probability that grows as expiry nears.
    refresh_delta: load time in seconds assumed for values from set(), so
        they are refreshed early too (None: they are not).
    refresh_threads: threads of the background refresh pool (1 to 64).
    seed: seed of the early-refresh draws (reproducible tests).
    on_removal: a function (or a list of functions) called as
        fn(key, value, cause) after each removal, cause a RemovalCause.
    clock: a function returning monotonic seconds, for tests.
    stripes: lock stripes (0: the engine picks).
    """

    def __init__(self, max_bytes, max_entries=0, *, ttl=None, serializer=None, key_type=str,
                 loader=None, negative_ttl=None, error_ttl=None, stale_while_revalidate=None,
                 stale_if_error=None, refresh_beta=1.0, refresh_delta=None, refresh_threads=1,
                 seed=None, on_removal=None, clock=None, stripes=0):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
            raise ValueError("max_bytes must be a positive int")
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 0:
            raise ValueError("max_entries must be a non-negative int")
        if loader is not None and not callable(loader):
            raise TypeError("loader must be callable")
        if inspect.iscoroutinefunction(loader):
            raise TypeError("the cache's loader must be a plain function (background refreshes "
                            "run it on a refresh thread); pass a coroutine function to "
                            "aget_or_load instead")
        self._serializer = _codec.serializer(serializer)
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        self._decode_key = _codec.key_decoder(key_type)
        self._key_type = key_type
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._loader = loader
        self._forked = False
        self._closed = False
        self._resources = resources = _Resources()
        listeners = ([] if on_removal is None else
                     list(on_removal) if isinstance(on_removal, (list, tuple)) else [on_removal])
        if not all(callable(fn) for fn in listeners):
            raise TypeError("on_removal must be a function or a list of functions")

        options = _lib.larder_options_new()
        if not options:
            raise MemoryError("larder_options_new")
        check = _errors.check
        try:
            check(_lib.larder_options_set_capacity_bytes(options, max_bytes))
            check(_lib.larder_options_set_capacity_entries(options, max_entries))
            check(_lib.larder_options_set_stripes(options, stripes))
            check(_lib.larder_options_set_default_ttl(options, _ns(ttl, "ttl")))
            check(_lib.larder_options_set_negative_ttl(options, _ns(negative_ttl, "negative_ttl")))
            check(_lib.larder_options_set_error_ttl(options, _ns(error_ttl, "error_ttl")))
            check(_lib.larder_options_set_stale_while_revalidate(
                options, _ns(stale_while_revalidate, "stale_while_revalidate")))
            check(_lib.larder_options_set_stale_if_error(
                options, _ns(stale_if_error, "stale_if_error")))
            check(_lib.larder_options_set_refresh_beta(options, float(refresh_beta)))
            check(_lib.larder_options_set_default_refresh_delta(
                options, _ns(refresh_delta, "refresh_delta")))
            check(_lib.larder_options_set_refresh_threads(options, refresh_threads))
            if seed is not None:
                check(_lib.larder_options_set_random_seed(options, seed))
            if loader is not None:
                call = _LoadCall(loader, self._decode_key, self._dumps)
                resources.keep.append(call)
                check(_lib.larder_options_set_loader(options, _LOAD_TRAMPOLINE, call))
            if listeners:
                fn = n.REMOVAL_FN(self._removal_trampoline(listeners))
                resources.keep.append(fn)
                check(_lib.larder_options_set_removal_listener(options, fn, None))
            if clock is not None:
                def now_ns(_):
                    try:
                        return int(clock() * 1e9)
                    except BaseException as exc:  # C needs a number
                        _report(exc, "a larder clock")
                        return 0
                fn = n.CLOCK_FN(now_ns)
                resources.keep.append(fn)
                check(_lib.larder_options_set_clock(options, fn, None))
            handle = ctypes.c_void_p()
            check(_lib.larder_cache_create(options, ctypes.byref(handle)))
        finally:
            _lib.larder_options_free(options)
        resources.handle = self._h = handle
        # Freed when the cache is collected, but not at interpreter exit:
        # daemon threads may still be using it then (the process's end frees
        # it). Write-behind queues are drained at exit (_drain_at_exit).
        self._finalizer = weakref.finalize(self, resources.release)
        self._finalizer.atexit = False
        _live[next(_live_ids)] = self
        # A lookup (larder_get) never blocks: it reads the index without a
        # lock and copies the value, in about 250 ns. Releasing the GIL for
        # so short a call gains nothing and can cost much: another thread
        # takes the GIL, and this one may then wait a whole switch interval
        # (5 ms) to get it back. So lookups keep the GIL (PyDLL). That is safe
        # while nothing a lookup waits for can be held by a thread that needs
        # the GIL: a lookup takes no lock except, on a miss with write-behind,
        # the queue's, and when it starts an early refresh, a stripe's and the
        # refresh pool's; the library never runs Python code (a loader, a
        # writer, a listener) while holding those. A Python clock is the
        # exception (the library may call it inside locked sections): with
        # one, lookups release the GIL like every other call.
        self._lookups_keep_gil = clock is None
        self.get = self._make_get()
        self.get_or_load, self.fetch = self._make_fetch()

    def _removal_trampoline(self, listeners):
        decode_key, loads = self._decode_key, self._loads

        def removal(_, key_ptr, key_size, value_ptr, value_size, cause):
            try:
                key = decode_key(ctypes.string_at(key_ptr, key_size))
                value = ctypes.string_at(value_ptr, value_size)
                if loads is not None:
                    value = loads(value)
                cause = _CAUSES[cause]
            except BaseException as exc:
                _report(exc, "a larder removal listener (decoding the entry)")
                return
            for fn in listeners:
                try:
                    fn(key, value, cause)
                except BaseException as exc:
                    _report(exc, f"the larder removal listener {fn!r}")
        return removal

    # ---- reads: the hot path ----

    def _make_get(self, loads=_MISSING):
        """The get() of this cache: a closure over everything it needs, one
        C call per lookup into a reusable buffer. loads: the cache's
        serializer unless given (None: the bytes as stored).

        Buffers come from a free list (deque.pop and deque.append are atomic
        under the GIL, and unlike a list's never reallocate when it empties),
        so threads, and a signal handler that reads the cache in the middle
        of a read, never share one. A value larger than the buffer is read
        again into one of its size."""
        larder_get = (_L.raw_keep_gil if self._lookups_keep_gil else _L.raw).larder_get
        handle = self._h
        if loads is _MISSING:
            loads = self._loads
        key_bytes = _codec.key_bytes
        error = _errors.error
        size_t = ctypes.c_size_t
        byref = ctypes.byref
        length = len if _WIDENS_INT_REGISTERS else (lambda k: size_t(len(k)))
        capacity = _BUFFER if _WIDENS_INT_REGISTERS else size_t(_BUFFER)
        free = collections.deque()
        take, give = free.pop, free.append
        str_, bytes_ = str, bytes
        # The closure must not keep the cache alive (it is the cache's own
        # attribute: a cycle), but the cache must outlive every call, whose
        # handle its finalizer frees: each call holds it through this.
        me, closed = weakref.ref(self), n.CLOSED

        def new_slot():
            # The buffer is passed by a prepared reference (byref), which
            # ctypes passes as is, instead of converting the array each call.
            buf, size = ctypes.create_string_buffer(_BUFFER), size_t()
            return buf, byref(buf), size, byref(size)

        def larger(k, rc, needed, default):
            # BUFFER_TOO_SMALL (retried while the value keeps growing), or an error.
            while rc == n.BUFFER_TOO_SMALL:
                buf = ctypes.create_string_buffer(needed)
                size = size_t()
                rc = larder_get(handle, k, size_t(len(k)), buf, size_t(needed), byref(size))
                needed = size.value
            if rc == 0:
                value = buf[:needed]
                return value if loads is None else loads(value)
            if rc == 1:
                return default
            raise error(rc)

        # Two copies of get on purpose: whether values are deserialized is
        # decided once, when the cache is built, so a hit pays neither a
        # per-call test nor a call through an identity function (the hit path
        # is measured against cachetools' by larder.bench).
        if loads is None:
            def get(key, default=None):
                """The value stored for key, or `default` when there is none."""
                if key.__class__ is str_:
                    try:
                        k = key.encode()
                    except UnicodeEncodeError:  # lone surrogates: surrogateescape
                        k = key_bytes(key)
                elif key.__class__ is bytes_:
                    k = key
                else:
                    k = key_bytes(key)
                try:
                    slot = take()
                except IndexError:
                    slot = new_slot()
                buf, buf_ref, size, size_ref = slot
                alive = me()
                if alive is None:  # a get kept after its cache was collected
                    give(slot)
                    raise error(closed)
                rc = larder_get(handle, k, length(k), buf_ref, capacity, size_ref)
                if rc == 0:
                    value = buf[:size.value]
                    give(slot)
                    return value
                give(slot)
                if rc == 1:
                    return default
                return larger(k, rc, size.value, default)
        else:
            def get(key, default=None):
                """The value stored for key, or `default` when there is none."""
                if key.__class__ is str_:
                    try:
                        k = key.encode()
                    except UnicodeEncodeError:  # lone surrogates: surrogateescape
                        k = key_bytes(key)
                elif key.__class__ is bytes_:
                    k = key
                else:
                    k = key_bytes(key)
                try:
                    slot = take()
                except IndexError:
                    slot = new_slot()
                buf, buf_ref, size, size_ref = slot
                alive = me()
                if alive is None:  # a get kept after its cache was collected
                    give(slot)
                    raise error(closed)
                rc = larder_get(handle, k, length(k), buf_ref, capacity, size_ref)
                if rc == 0:
                    value = buf[:size.value]
                    give(slot)
                    return loads(value)
                give(slot)
                if rc == 1:
                    return default
                return larger(k, rc, size.value, default)

        return get

    def get(self, key, default=None):  # replaced per instance by _make_get's closure
        """The value stored for key, or `default` when there is none."""
        return self.__dict__["get"](key, default)

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        k = _codec.key_bytes(key)
        rc = _lib.larder_contains(self._h, k, len(k))
        if rc > 1:
            raise self._error(rc)
        return rc == 0

    def get_pinned(self, key, default=None):
        """The value as a read-only memoryview of the cache's own memory
        (zero-copy), or `default`. The memory stays valid, even after the
        entry is replaced or evicted, until the view and every view made from
        it are released (`with cache.get_pinned(k) as view:` or
        view.release()) or garbage-collected. The bytes as stored (no
        serializer)."""
        k = _codec.key_bytes(key)
        value = _new_value()
        rc = _lib.larder_get_pinned(self._h, k, len(k), ctypes.byref(value))
        if rc == n.NOT_FOUND:
            return default
        if rc != 0:
            raise self._error(rc)
        pin = _Pin(value)
        array = (ctypes.c_char * value.size).from_address(value.data or id(pin))
        array.pin = pin  # the pin lives as long as the memory is exported
        return memoryview(array).cast("B").toreadonly()

    # ---- writes ----

    def set(self, key, value, ttl=None, *, charge=None):
        """Stores value for key; ttl in seconds (None: the cache's default).
        charge: the entry's weight toward max_bytes instead of its size."""
        k = _codec.key_bytes(key)
        v = self._dumps(value)
        if charge is None:
            rc = _lib.larder_put(self._h, k, len(k), v, len(v), _ns(ttl, "ttl"))
        else:
            if not isinstance(charge, int) or charge <= 0:
                raise ValueError("charge must be a positive int")
            rc = _lib.larder_put_charged(self._h, k, len(k), v, len(v), _ns(ttl, "ttl"), charge)
        if rc != 0:
            raise self._error(rc)

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        if not self.invalidate(key):
            raise KeyError(key)

    def invalidate(self, key):
        """Removes key; True if it was there."""
        k = _codec.key_bytes(key)
        rc = _lib.larder_invalidate(self._h, k, len(k))
        if rc > 1:
            raise self._error(rc)
        return rc == 0

    def invalidate_prefix(self, prefix):
        """Removes every key that starts with prefix; returns how many."""
        p = _codec.key_bytes(prefix)
        removed = ctypes.c_uint64()
        self._check(_lib.larder_invalidate_prefix(self._h, p, len(p), ctypes.byref(removed)))
        return removed.value

    def clear(self):
        """Removes every entry."""
        self._check(_lib.larder_clear(self._h))

    def pop(self, key, default=_MISSING):
        """Removes key and returns its value; `default` (or KeyError) when
        there is none. Not atomic against another thread writing the key."""
        value = self.get(key, _MISSING)
        if value is _MISSING or not self.invalidate(key):
            if default is _MISSING:
                raise KeyError(key)
            return default
        return value

    def popitem(self):
        """Removes and returns some (key, value) pair, not necessarily the
        least recently used; KeyError when empty. O(entries): it takes a
        snapshot of the keys."""
        for key in self.keys():
            value = self.pop(key, _MISSING)
            if value is not _MISSING:
                return key, value
        raise KeyError("popitem(): the cache is empty")

    def setdefault(self, key, default=None):
        """The value of key; if there is none, stores `default` and returns
        it. Threads racing on a missing key all get the one value stored."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if default is None:  # a loader's None means "not found": store it plainly
            self.set(key, default)
            return default
        return self.get_or_load(key, lambda _: default)

    def update(self, other=(), /, **kwargs):
        """Stores every (key, value) of a mapping or iterable of pairs, and
        of keyword arguments."""
        super().update(other, **kwargs)

    # ---- enumeration: snapshots ----

    def __len__(self):
        """The live entries: expired ones and cached "not found"s are not
        counted. O(stripes) while nothing has expired, else O(entries)."""
        count = ctypes.c_uint64()
        self._check(_lib.larder_count(self._h, None, 0, ctypes.byref(count)))
        return count.value

    def count(self, prefix=""):
        """How many live keys start with prefix."""
        p = _codec.key_bytes(prefix) if prefix else b""
        count = ctypes.c_uint64()
        self._check(_lib.larder_count(self._h, p, len(p), ctypes.byref(count)))
        return count.value

    def _snapshot(self, prefix, with_values):
        p = _codec.key_bytes(prefix) if prefix else b""
        data, size, count = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_uint64()
        self._check(_lib.larder_copy_entries(self._h, p, len(p),
                                         n.SNAPSHOT_VALUES if with_values else 0,
                                         ctypes.byref(data), ctypes.byref(size),
                                         ctypes.byref(count)))
        try:
            return _parse_snapshot(data.value, size.value, count.value, with_values,
                                   self._decode_key, self._loads)
        finally:
            _lib.larder_free(data)

    def __iter__(self):
        """Iterates over a snapshot of the live keys (taken when iteration
        starts; the cache may change meanwhile without disturbing it)."""
        return iter(self.keys())

    def keys(self, prefix=""):
        """A list of the live keys (starting with prefix): a snapshot."""
        return self._snapshot(prefix, False)

    def items(self, prefix=""):
        """A list of the live (key, value) pairs: a snapshot, taken stripe by
        stripe (a write during the call may or may not be in it)."""
        return self._snapshot(prefix, True)

    def values(self, prefix=""):
        """A list of the live values: a snapshot, as items()."""
        return [value for _, value in self._snapshot(prefix, True)]

    def __repr__(self):
        state = ("forked" if self._forked else "closed" if self._closed else
                 f"{self.count()} entries")
        return (f"<larder.Cache {state}, max_bytes={self._max_bytes}, "
                f"serializer={self._serializer.name}>")

    __eq__ = object.__eq__  # identity: comparing whole caches is rarely meant
    __hash__ = object.__hash__

    # ---- loading ----

    def _deliver(self, rc, value, info, default):
        """A fetch's outcome as (value, source), or the exception raised."""
        if rc == n.OK:
            data = _take_value(value)
            return (data if self._loads is None else self._loads(data)), info.source
        if rc == n.NOT_FOUND:
            return default, info.source
        if rc == n.LOAD_FAILED:
            raise failures.exception(info.error)
        raise self._error(rc)

    def _make_fetch(self):
        """The get_or_load() and fetch() of this cache: one C call,
        larder_get_or_load_copy, into a reusable slot. A hit is copied into
        the slot's buffer without pinning the entry, so no second call
        releases a pin; a value larger than the buffer comes pinned and is
        copied out and released. Slots come from a free list, as get()'s
        buffers do. The call releases the GIL: it may wait for another
        thread's loader, which needs the GIL to run."""
        get_or_load_copy = _L.raw.larder_get_or_load_copy
        handle = self._h
        # Nothing here refers to the cache itself (it holds these closures):
        # a cycle would leave freeing the cache to the garbage collector.
        loads, dumps, decode_key = self._loads, self._dumps, self._decode_key
        has_loader = self._loader is not None
        me = weakref.ref(self)
        key_bytes = _codec.key_bytes
        byref, size_t, py_object = ctypes.byref, ctypes.c_size_t, ctypes.py_object
        length = len if _WIDENS_INT_REGISTERS else (lambda k: size_t(len(k)))
        capacity = size_t(_BUFFER)  # the 8th argument: passed on the stack, so typed
        no_limit = ctypes.c_int64(0)
        free = collections.deque()
        take, give = free.pop, free.append
        ok, not_found, load_failed = n.OK, n.NOT_FOUND, n.LOAD_FAILED

        def load_call(loader):
            if loader is None:
                if not has_loader:
                    raise _errors.InvalidArgument(
                        n.INVALID_ARGUMENT, "no loader: pass one, or give the cache a loader=")
                return None
            if not callable(loader):
                raise TypeError("loader must be callable")
            return _LoadCall(loader, decode_key, dumps)

        def error(rc):
            alive = me()
            return _errors.error(rc) if alive is None else alive._error(rc)

        def new_slot():
            buf, size, value, info = (ctypes.create_string_buffer(_BUFFER), size_t(),
                                      _new_value(), _new_info())
            return buf, byref(buf), size, byref(size), value, byref(value), info, byref(info)

        def run(key, loader, timeout):
            """(status, the value's bytes or None, source, stale, error text)."""
            k = key_bytes(key)
            call = load_call(loader)
            wait = no_limit if timeout is None else ctypes.c_int64(_ns(timeout, "timeout"))
            try:
                slot = take()
            except IndexError:
                slot = new_slot()
            buf, buf_ref, size, size_ref, value, value_ref, info, info_ref = slot
            alive = me()  # the cache outlives the call (its finalizer frees the handle)
            if alive is None:  # a get_or_load kept after its cache was collected
                give(slot)
                return n.CLOSED, None, 0, 0, b""
            if call is None:
                rc = get_or_load_copy(handle, k, length(k), _NO_LOADER, None, wait, buf_ref,
                                      capacity, size_ref, value_ref, info_ref)
            else:
                rc = get_or_load_copy(handle, k, length(k), _LOAD_TRAMPOLINE, py_object(call),
                                      wait, buf_ref, capacity, size_ref, value_ref, info_ref)
            data = None
            if rc == ok:
                data = buf[:size.value] if value.internal_ is None else _take_value(value)
            answer = rc, data, info.source, info.stale, (info.error if rc == load_failed else b"")
            give(slot)
            return answer

        def deliver(rc, data, error_text, default):
            if rc == ok:
                return data if loads is None else loads(data)
            if rc == not_found:
                return default
            if rc == load_failed:
                raise failures.exception(error_text)
            raise error(rc)

        def get_or_load(key, loader=None, *, timeout=None, default=None):
            """The cached value, or loader(key)'s: one load per key at a time
            however many threads miss it together. loader (default: the
            cache's) returns the value, None for "not found" (then `default`
            is returned), or Loaded(value, ttl). An exception it raises is
            raised in every caller that waited for that load: the same
            exception object. timeout: how long to wait for another caller's
            load (LoadTimeout)."""
            rc, data, _, _, error_text = run(key, loader, timeout)
            return deliver(rc, data, error_text, default)

        def fetch(key, loader=None, *, timeout=None, default=None):
            """get_or_load, telling where the value came from: a
            Fetched(value, source, stale)."""
            rc, data, source, stale, error_text = run(key, loader, timeout)
            return Fetched(deliver(rc, data, error_text, default),
                           _SOURCES.get(source, "none"), bool(stale))

        return get_or_load, fetch

    # Replaced per instance by _make_fetch's closures; these keep the methods
    # on the class (help(), and subclasses calling super()).
    def get_or_load(self, key, loader=None, *, timeout=None, default=None):
        """The cached value, or loader(key)'s: one load per key at a time
        however many threads miss it together. loader (default: the cache's)
        returns the value, None for "not found" (then `default` is returned),
        or Loaded(value, ttl). An exception it raises is raised in every
        caller that waited for that load: the same exception object. timeout:
        how long to wait for another caller's load (LoadTimeout)."""
        return self.__dict__["get_or_load"](key, loader, timeout=timeout, default=default)

    def fetch(self, key, loader=None, *, timeout=None, default=None):
        """get_or_load, telling where the value came from: a Fetched(value,
        source, stale)."""
        return self.__dict__["fetch"](key, loader, timeout=timeout, default=default)

    def refresh(self, key):
        """Starts a background reload of key with the cache's loader and
        returns at once (the current value stays until the new one arrives)."""
        k = _codec.key_bytes(key)
        self._check(_lib.larder_refresh(self._h, k, len(k)))

    async def aget_or_load(self, key, loader=None, *, timeout=None, default=None):
        """get_or_load for asyncio; never blocks the event loop. loader
        (default: the cache's) may be a coroutine function, awaited on this
        loop, or a plain function, run in the loop's default executor. Callers
        waiting for another's load (threads or tasks) wait without blocking."""
        if loader is None:
            loader = self._loader
            if loader is None:
                raise _errors.InvalidArgument(
                    n.INVALID_ARGUMENT, "no loader: pass one, or give the cache a loader=")
        elif not callable(loader):
            raise TypeError("loader must be callable")
        k = _codec.key_bytes(key)
        kind = ctypes.c_int()
        value, info = _new_value(), _new_info()
        lease, ticket = ctypes.c_void_p(), ctypes.c_void_p()
        rc = _lib.larder_fetch_begin(self._h, k, len(k), ctypes.byref(kind), ctypes.byref(value),
                                     ctypes.byref(info), ctypes.byref(lease),
                                     ctypes.byref(ticket))
        if kind.value == n.FETCH_DONE:
            return self._deliver(rc, value, info, default)[0]
        if kind.value == n.FETCH_LEAD:
            return await self._lead(lease, k, loader, default)
        waiter = _Waiter(asyncio.get_running_loop())
        try:
            rc = _lib.larder_ticket_on_ready(ticket, _READY_TRAMPOLINE, waiter)
            if rc != 0:
                _Waiter.pending.discard(waiter)
                raise self._error(rc)
            if timeout is None:
                status, data, error = await waiter.future
            else:
                try:
                    status, data, error = await asyncio.wait_for(waiter.future, timeout)
                except asyncio.TimeoutError:
                    raise _errors.LoadTimeout(n.TIMEOUT) from None
        finally:
            _lib.larder_ticket_free(ticket)
        if status == n.OK:
            return data if self._loads is None else self._loads(data)
        if status == n.NOT_FOUND:
            return default
        if status == n.LOAD_FAILED:
            raise failures.exception(error)
        raise self._error(status)

    async def _lead(self, lease, k, loader, default):
        key = self._decode_key(k)
        try:
            if inspect.iscoroutinefunction(loader):
                out = await loader(key)
            else:
                out = await asyncio.get_running_loop().run_in_executor(None, loader, key)
                if inspect.isawaitable(out):
                    out = await out
            data, ttl = _loaded(out, self._dumps)
        except asyncio.CancelledError:
            _lib.larder_lease_abandon(lease)  # waiters get LoadError("load abandoned")
            raise
        except BaseException as exc:
            _lib.larder_lease_complete_error(lease, failures.remember(exc))
            raise
        if data is None:
            self._check(_lib.larder_lease_complete_not_found(lease))
            return default
        self._check(_lib.larder_lease_complete_value(lease, data, len(data), ttl, None))
        return data if self._loads is None else self._loads(data)

    # ---- writing through to a store ----

    def write_through(self, key, value, writer, *, ttl=None):
        """Write-through: calls writer(key, value) (say, the database write)
        first, then stores the value; if writer raises, the cache is left as
        it was and the exception is raised. Writes of one key are serialised
        (the cache ends with the last completed write); other keys run in
        parallel."""
        k = _codec.key_bytes(key)
        v = self._dumps(value)
        call = _StoreCall(writer, key, value)
        rc = _lib.larder_write_through(self._h, k, len(k), v, len(v), _ns(ttl, "ttl"),
                                       _STORE_TRAMPOLINE, call, None, 0)
        self._after_store(rc, call)

    def delete_through(self, key, deleter):
        """Calls deleter(key) (the store's delete) first, then removes the
        key from the cache; if deleter raises, the cache is unchanged."""
        k = _codec.key_bytes(key)
        call = _StoreCall(deleter, key, None)
        rc = _lib.larder_delete_through(self._h, k, len(k), _STORE_TRAMPOLINE, call, None, 0)
        self._after_store(rc, call)

    def _after_store(self, rc, call):
        if rc == n.WRITE_FAILED and call.exception is not None:
            raise call.exception
        if rc != 0:
            raise self._error(rc)

    def write_behind(self, writer, **options):
        """Starts write-behind for this cache (one per cache): see
        larder.WriteBehind for writer and the options."""
        from ._write_behind import WriteBehind
        return WriteBehind(self, writer, **options)

    # ---- stats and housekeeping ----

    def stats(self):
        """A larder.Stats snapshot (a frozen dataclass; hit_ratio included)."""
        s = n.Stats()
        s.struct_size = ctypes.sizeof(s)
        self._check(_lib.larder_cache_stats(self._h, ctypes.byref(s)))
        return _stats.Stats(**{name: getattr(s, name) for name in n.STATS_FIELDS})

    def prometheus(self, prefix="larder", labels=None):
        """stats() in the Prometheus text format."""
        return self.stats().to_prometheus(prefix, labels)

    def cleanup(self):
        """Does now the housekeeping writes do as they go (expiry, freeing
        removed entries). Never needed for correctness."""
        self._check(_lib.larder_cleanup(self._h))

    @property
    def serializer(self):
        return self._serializer

    @property
    def max_bytes(self):
        return self._max_bytes

    @property
    def max_entries(self):
        return self._max_entries

    # ---- lifetime ----

    def close(self, timeout=None):
        """Closes this cache's write-behind queue, if any (draining it for
        up to `timeout` seconds, None: no limit; see WriteBehind.close), and
        drops every entry; later calls raise Closed. Idempotent. (In a child
        process after fork(), only forgets the parent's cache.)"""
        if self._forked or self._closed:
            self._closed = True
            return
        self._closed = True
        timeout_ns = _ns(timeout, "timeout")
        late = [wb.close(timeout_ns) for wb in self._resources.write_behinds]
        _lib.larder_cache_close(self._h)
        if n.TIMEOUT in late:
            raise _errors.FlushTimeout(n.TIMEOUT, "the write-behind queue was closed before "
                                       "it drained")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self, rc):
        if rc != 0:
            raise self._error(rc)

    def _error(self, rc):
        if rc == n.FORKED:
            self._forked = True
        return _errors.error(rc)


def _after_fork_in_child():
    # The C library refuses the parent's caches in the child (LARDER_FORKED);
    # marking them lets close() and repr() know without asking it. Locks the
    # parent's threads may have held at the fork are replaced.
    for cache in list(_live.values()):
        cache._forked = True
    failures.reset_after_fork()
    _Waiter.pending = set()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _drain_at_exit():
    # Writes acknowledged by a write-behind put reach the store before the
    # interpreter exits (or stay in the journal): each queue is closed, which
    # drains it; the caches themselves are left to the process's end.
    for cache in list(_live.values()):
        if not cache._forked:
            try:
                cache._resources.drain()
            except Exception as exc:
                _report(exc, "draining a larder write-behind queue at exit")
