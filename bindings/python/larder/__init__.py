"""Larder for Python: an in-process cache with TTLs, LRU eviction and
single-flight loading, over the C ABI (ctypes; the GIL is released inside
every call).

    import larder
    cache = larder.Cache(max_bytes=64 << 20, ttl=30)
    cache["user:42"] = b"Ada"
    cache.get("user:42")                      # b"Ada"
    row = cache.get_or_load("user:43", lambda key: db.fetch(key))   # one load per key

    @larder.cached(ttl=60)
    def expensive(x, y): ...
    expensive.cache_info(); expensive.cache_clear()

Keys are str (UTF-8) or bytes; values are stored as bytes (str values are
UTF-8 encoded) and returned as bytes. Durations are seconds (float).
"""
import asyncio
import collections
import ctypes
import functools
import inspect
import itertools
import os
import pickle
import threading

from . import _native

__all__ = ["Cache", "cached", "CacheInfo", "LarderError", "InvalidArgument", "KeyTooLong",
           "EmptyKey", "ValueTooLarge", "LoadError", "LoadTimeout", "RecursiveLoad", "Closed",
           "Forked", "version"]

_lib = _native.load()


def version():
    """The version of the liblarder actually loaded."""
    return _lib.larder_version().decode()


# ---- errors: one class per status code (docs/errors.md) ----

class LarderError(Exception):
    """A status code from liblarder; `code` is the number, `name` the text."""

    def __init__(self, code, message=None):
        self.code = code
        self.name = _lib.larder_strerror(code).decode()
        super().__init__(message or self.name)


class InvalidArgument(LarderError, ValueError):
    pass


class EmptyKey(LarderError, ValueError):
    pass


class KeyTooLong(LarderError, ValueError):
    pass


class ValueTooLarge(LarderError, ValueError):
    pass


class LoadError(LarderError):
    """The loader failed (in another caller's load, or a cached error)."""


class LoadTimeout(LarderError, TimeoutError):
    pass


class RecursiveLoad(LarderError, RuntimeError):
    pass


class Closed(LarderError, RuntimeError):
    pass


class Forked(LarderError, RuntimeError):
    """A cache created before os.fork() was used in the child."""


_ERRORS = {2: InvalidArgument, 3: EmptyKey, 4: KeyTooLong, 5: ValueTooLarge, 8: LoadError,
           9: LoadTimeout, 10: RecursiveLoad, 12: Closed, 16: Forked}


def _raise(code, message=None):
    if code == 7:
        raise MemoryError(_lib.larder_strerror(code).decode())
    raise _ERRORS.get(code, LarderError)(code, message)


def _bytes(x, what):
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode("utf-8")
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be str or bytes, not {type(x).__name__}")


def _ns(seconds, what):
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    return int(seconds * 1e9)


# ---- the loader trampoline: one C function for every Python loader ----

_loaders = {}               # token -> (callable, key_type)
_tokens = itertools.count(1)
_tls = threading.local()    # the exception a loader raised on this thread


def _load_trampoline(user_data, key_ptr, key_size, result):
    try:
        loader, as_str = _loaders[user_data]
        key = ctypes.string_at(key_ptr, key_size)
        out = loader(key.decode("utf-8", "surrogateescape") if as_str else key)
        ttl = 0
        if isinstance(out, tuple):
            out, ttl = out[0], _ns(out[1], "ttl")
        if out is None:
            return _lib.larder_load_result_set_not_found(result)
        data = _bytes(out, "a loaded value")
        return _lib.larder_load_result_set_value(result, data, len(data), ttl)
    except BaseException as exc:  # surfaces as itself in the calling thread
        _tls.exception = exc
        _lib.larder_load_result_set_error(result, repr(exc).encode("utf-8", "replace")[:250])
        return 1


_LOAD_TRAMPOLINE = _native.LOADER_FN(_load_trampoline)


class _Registered:
    """A loader registered for the duration of a `with` block."""

    def __init__(self, loader, as_str):
        self.token = next(_tokens)
        _loaders[self.token] = (loader, as_str)

    def __enter__(self):
        return self.token

    def __exit__(self, *exc):
        _loaders.pop(self.token, None)


# ---- the cache ----

class Cache:
    """A bounded, thread-safe cache (see the module docstring).

    max_bytes: capacity in bytes (key + value + per-entry overhead); required.
    max_entries: optional bound on the number of entries.
    ttl: default time to live in seconds (None: no expiry).
    loader: the cache's own loader, key -> value | None | (value, ttl); used by
        get_or_load without a loader and by background refreshes.
    negative_ttl, stale_while_revalidate, stale_if_error, refresh_beta: see
        larder.h. on_removal(key, value, cause) is called after each removal.
    clock: a function returning monotonic seconds, for tests.
    """

    def __init__(self, max_bytes, max_entries=0, *, ttl=None, stripes=0, loader=None,
                 negative_ttl=None, stale_while_revalidate=None, stale_if_error=None,
                 refresh_beta=1.0, on_removal=None, clock=None):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
            raise ValueError("max_bytes must be a positive int")
        if not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError("max_entries must be a non-negative int")
        self._handle = None
        self._pid = os.getpid()
        self._keep = []  # C callbacks must outlive the cache
        options = _lib.larder_options_new()
        if not options:
            raise MemoryError("larder_options_new")
        try:
            self._check(_lib.larder_options_set_capacity_bytes(options, max_bytes))
            self._check(_lib.larder_options_set_capacity_entries(options, max_entries))
            self._check(_lib.larder_options_set_stripes(options, stripes))
            self._check(_lib.larder_options_set_default_ttl(options, _ns(ttl, "ttl")))
            self._check(_lib.larder_options_set_negative_ttl(
                options, _ns(negative_ttl, "negative_ttl")))
            self._check(_lib.larder_options_set_stale_while_revalidate(
                options, _ns(stale_while_revalidate, "stale_while_revalidate")))
            self._check(_lib.larder_options_set_stale_if_error(
                options, _ns(stale_if_error, "stale_if_error")))
            self._check(_lib.larder_options_set_refresh_beta(options, float(refresh_beta)))
            if loader is not None:
                registered = _Registered(loader, as_str=True)
                self._keep.append(registered)
                self._check(_lib.larder_options_set_loader(options, _LOAD_TRAMPOLINE,
                                                           registered.token))
            if on_removal is not None:
                causes = ("explicit", "replaced", "expired", "evicted")

                def removal(_, k, kn, v, vn, cause):
                    try:
                        on_removal(ctypes.string_at(k, kn), ctypes.string_at(v, vn),
                                   causes[cause])
                    except Exception:  # a listener's failure must not reach C
                        pass

                fn = _native.REMOVAL_FN(removal)
                self._keep.append(fn)
                self._check(_lib.larder_options_set_removal_listener(options, fn, None))
            if clock is not None:
                fn = _native.CLOCK_FN(lambda _: int(clock() * 1e9))
                self._keep.append(fn)
                self._check(_lib.larder_options_set_clock(options, fn, None))
            handle = ctypes.c_void_p()
            self._check(_lib.larder_cache_create(options, ctypes.byref(handle)))
            self._handle = handle
        finally:
            _lib.larder_options_free(options)
        self._buffers = threading.local()
        self._has_loader = loader is not None

    # -- plumbing --

    @staticmethod
    def _check(code):
        if code != 0:
            _raise(code)

    def _h(self):
        if self._pid != os.getpid():
            raise Forked(16, "this cache was created by the parent process before fork(): "
                             "create a new larder.Cache in the child (the inherited one may only "
                             "be closed or dropped)")
        if self._handle is None:
            raise Closed(12)
        return self._handle

    def _buffer(self, size):
        buf = getattr(self._buffers, "buf", None)
        if buf is None or len(buf) < size:
            buf = ctypes.create_string_buffer(max(size, 4096))
            self._buffers.buf = buf
        return buf

    # -- mapping-like interface --

    def get(self, key, default=None):
        """The value (bytes), or `default` on a miss."""
        k = _bytes(key, "key")
        handle = self._h()
        size = ctypes.c_size_t()
        buf = self._buffer(4096)
        code = _lib.larder_get(handle, k, len(k), buf, len(buf), ctypes.byref(size))
        if code == 6:  # the value is larger than the buffer: grow and retry
            buf = self._buffer(size.value)
            code = _lib.larder_get(handle, k, len(k), buf, len(buf), ctypes.byref(size))
        if code == 1:
            return default
        self._check(code)
        return buf.raw[: size.value]

    def set(self, key, value, ttl=None):
        """Inserts or replaces; ttl in seconds (None: the cache's default)."""
        k = _bytes(key, "key")
        v = _bytes(value, "value")
        self._check(_lib.larder_put(self._h(), k, len(k), v, len(v), _ns(ttl, "ttl")))

    def __getitem__(self, key):
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        k = _bytes(key, "key")
        code = _lib.larder_invalidate(self._h(), k, len(k))
        if code == 1:
            raise KeyError(key)
        self._check(code)

    def __contains__(self, key):
        k = _bytes(key, "key")
        code = _lib.larder_contains(self._h(), k, len(k))
        if code in (0, 1):
            return code == 0
        self._check(code)

    def pop(self, key, default=None):
        """Removes the key and returns its value (or `default`)."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            return default
        k = _bytes(key, "key")
        _lib.larder_invalidate(self._h(), k, len(k))
        return value

    def invalidate(self, key):
        """Removes the key; True if it was there."""
        k = _bytes(key, "key")
        code = _lib.larder_invalidate(self._h(), k, len(k))
        if code not in (0, 1):
            self._check(code)
        return code == 0

    def invalidate_prefix(self, prefix):
        """Removes every key starting with prefix; returns how many."""
        p = _bytes(prefix, "prefix")
        removed = ctypes.c_uint64()
        self._check(_lib.larder_invalidate_prefix(self._h(), p, len(p), ctypes.byref(removed)))
        return removed.value

    def clear(self):
        self._check(_lib.larder_clear(self._h()))

    def __len__(self):
        return self.stats()["entries"]

    def stats(self):
        """Counters and sizes, as a dict (hit_ratio included)."""
        s = _native.Stats()
        s.struct_size = ctypes.sizeof(s)
        self._check(_lib.larder_cache_stats(self._h(), ctypes.byref(s)))
        out = {name: getattr(s, name) for name, _ in _native.Stats._fields_[1:]}
        total = out["hits"] + out["misses"]
        out["hit_ratio"] = out["hits"] / total if total else 0.0
        return out

    # -- loading --

    def get_or_load(self, key, loader=None, *, timeout=None):
        """The cached value, or loader(key)'s, loading each key once however
        many threads miss it at once. loader returns bytes/str, None (not
        found: returns None) or (value, ttl_seconds); an exception it raises
        is raised here (other waiting threads get LoadError)."""
        k = _bytes(key, "key")
        handle = self._h()
        if loader is None and not self._has_loader:
            raise InvalidArgument(2, "no loader: pass one or give the cache one")
        value = _native.Value(ctypes.sizeof(_native.Value), None, 0, None)
        info = _native.FetchInfo()
        info.struct_size = ctypes.sizeof(info)
        _tls.exception = None
        if loader is None:
            code = _lib.larder_get_or_load(handle, k, len(k), _native.LOADER_FN(), None,
                                           _ns(timeout, "timeout"), ctypes.byref(value),
                                           ctypes.byref(info))
        else:
            with _Registered(loader, isinstance(key, str)) as token:
                code = _lib.larder_get_or_load(handle, k, len(k), _LOAD_TRAMPOLINE, token,
                                               _ns(timeout, "timeout"), ctypes.byref(value),
                                               ctypes.byref(info))
        raised, _tls.exception = _tls.exception, None
        try:
            if code == 0:
                return ctypes.string_at(value.data, value.size)
            if code == 1:
                return None
            if raised is not None and info.source == 4:  # this thread's loader raised
                raise raised
            _raise(code, info.error.decode("utf-8", "replace") or None)
        finally:
            _lib.larder_value_release(ctypes.byref(value))

    async def aget_or_load(self, key, loader=None):
        """get_or_load for asyncio: never blocks the event loop on another
        caller's load. loader may be a coroutine function."""
        k = _bytes(key, "key")
        handle = self._h()
        kind = ctypes.c_int()
        value = _native.Value(ctypes.sizeof(_native.Value), None, 0, None)
        info = _native.FetchInfo()
        info.struct_size = ctypes.sizeof(info)
        lease, ticket = ctypes.c_void_p(), ctypes.c_void_p()
        code = _lib.larder_fetch_begin(handle, k, len(k), ctypes.byref(kind), ctypes.byref(value),
                                       ctypes.byref(info), ctypes.byref(lease),
                                       ctypes.byref(ticket))
        if kind.value == _native.FETCH_DONE:
            try:
                if code == 0:
                    return ctypes.string_at(value.data, value.size)
                if code == 1:
                    return None
                _raise(code, info.error.decode("utf-8", "replace") or None)
            finally:
                _lib.larder_value_release(ctypes.byref(value))
        if kind.value == _native.FETCH_LEAD:
            if loader is None:
                _lib.larder_lease_complete_error(lease, b"no loader given to aget_or_load")
                raise InvalidArgument(2, "no loader: pass one to aget_or_load")
            try:
                out = loader(key)
                if inspect.isawaitable(out):
                    out = await out
                ttl = 0
                if isinstance(out, tuple):
                    out, ttl = out[0], _ns(out[1], "ttl")
            except BaseException as exc:
                _lib.larder_lease_complete_error(lease, repr(exc).encode("utf-8", "replace")[:250])
                raise
            if out is None:
                _lib.larder_lease_complete_not_found(lease)
                return None
            data = _bytes(out, "a loaded value")
            self._check(_lib.larder_lease_complete_value(lease, data, len(data), ttl, None))
            return data
        # FETCH_WAIT: a callback resolves a future on this loop.
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        token = next(_tokens)

        def ready(_, status, value_ptr, info_ptr):
            result = (status, ctypes.string_at(value_ptr.contents.data, value_ptr.contents.size)
                      if status == 0 else None,
                      info_ptr.contents.error.decode("utf-8", "replace"))
            _lib.larder_value_release(value_ptr)
            _waiting.pop(token, None)
            loop.call_soon_threadsafe(
                lambda: None if future.done() else future.set_result(result))

        callback = _native.READY_FN(ready)
        _waiting[token] = callback
        try:
            self._check(_lib.larder_ticket_on_ready(ticket, callback, None))
            status, data, error = await future
        finally:
            _lib.larder_ticket_free(ticket)
        if status == 0:
            return data
        if status == 1:
            return None
        _raise(status, error or None)

    # -- lifetime --

    def close(self):
        """Drops every entry; later calls raise Closed. Idempotent."""
        if self._handle is not None and self._pid == os.getpid():
            handle, self._handle = self._handle, None
            _lib.larder_cache_close(handle)
            _lib.larder_cache_destroy(handle)
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


_MISSING = object()
_waiting = {}  # ticket callbacks not yet called: kept alive until they are

CacheInfo = collections.namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])


def cached(cache=None, *, max_bytes=64 << 20, max_entries=0, ttl=None, typed=False):
    """Memoises a function in a Larder cache, like functools.lru_cache: one
    computation per argument tuple however many threads call at once.
    Arguments must be hashable and picklable; results must be picklable."""

    def decorator(fn):
        store = cache if cache is not None else Cache(max_bytes, max_entries, ttl=ttl)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            key = (args, tuple(sorted(kwargs.items())))
            if typed:
                key += (tuple(type(a) for a in args),)
            pickled = pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL)
            blob = store.get_or_load(pickled, lambda _: pickle.dumps(fn(*args, **kwargs)))
            return pickle.loads(blob)

        def cache_info():
            s = store.stats()
            return CacheInfo(s["hits"], s["misses"], max_entries or None, s["entries"])

        wrapper.cache_info = cache_info
        wrapper.cache_clear = store.clear
        wrapper.cache = store
        return wrapper

    return decorator
