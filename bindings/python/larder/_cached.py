"""@larder.cached: functools.lru_cache's interface over a Larder cache."""
import collections
import ctypes
import functools
import inspect
import itertools
import os
import threading
import weakref

from . import _codec, _errors, _native as n
from ._cache import Cache, _lib, _new_info, _new_value, _ns, _take_value
from ._errors import failures

CacheInfo = collections.namedtuple("CacheInfo", ["hits", "misses", "maxsize", "currsize"])

_KEYWORDS = object()  # separates positional from keyword arguments in a key
_serials = itertools.count(1)
_instances = weakref.WeakSet()  # every decorated function's state, for fork()


def _make_key(args, kwargs, typed):
    """A hashable key for a call, from its arguments, as lru_cache builds
    one: equal arguments give equal keys (with typed=False, 7 and 7.0 are one
    key); keyword arguments count whatever their order."""
    key = args
    if kwargs:
        items = sorted(kwargs.items())
        key = args + (_KEYWORDS,) + tuple(items)
        if typed:
            key += tuple(type(v) for v in args) + tuple(type(v) for _, v in items)
    elif typed:
        key = args + tuple(type(v) for v in args)
    return key


def cached(cache=None, *, max_bytes=64 << 20, max_entries=0, ttl=None, typed=False,
           serializer="pickle", maxsize=None):
    """Memoizes a function in a Larder cache, like functools.lru_cache:

        @larder.cached                      # or @larder.cached(ttl=60, ...)
        def report(day): ...
        report.cache_info(); report.cache_clear(); report.cache_parameters()

    Keys are built from the arguments as lru_cache builds them: arguments
    must be hashable (else TypeError), and equal arguments are one call (with
    typed=False, f(7) and f(7.0) share a result; typed=True separates them).
    Results are stored serialized (pickle by default) within max_bytes, for
    `ttl` seconds, so a hit returns an equal copy, not the same object.
    Concurrent callers of one missing call compute it once (single-flight);
    recursion works (fib(300)). A function calling itself with the same
    arguments raises larder.RecursiveLoad.

    cache: a larder.Cache to share (several functions may share one; each
    has its own keys), else a new one of max_bytes / max_entries / ttl;
    maxsize, lru_cache's name, is max_entries.
    cache_info() counts this function's calls only: a hit, or a miss
    (computed here or waited for). Note that the underlying cache's own
    stats() sees each miss twice: a lookup, then the load.
    """
    if callable(cache) and not isinstance(cache, Cache):  # @cached without parentheses
        return cached()(cache)
    if cache is not None and not isinstance(cache, Cache):
        raise TypeError("cache must be a larder.Cache")
    if maxsize is not None:
        max_entries = maxsize
    codec = _codec.serializer(serializer)

    def decorator(fn):
        if inspect.iscoroutinefunction(fn):
            raise TypeError("larder.cached does not wrap coroutine functions; use "
                            "Cache.aget_or_load inside the coroutine instead")
        return _CachedFunction(fn, cache, max_bytes, max_entries, ttl, typed, codec).wrapper

    return decorator


class _CachedFunction:
    """The state behind one decorated function."""

    def __init__(self, fn, cache, max_bytes, max_entries, ttl, typed, codec):
        self.own = cache is None
        self.store = Cache(max_bytes, max_entries, ttl=ttl) if self.own else cache
        self.rebind = None
        self.fn = fn
        self.ttl = ttl
        self.typed = typed
        self.max_entries = max_entries if self.own else cache.max_entries
        self.max_bytes = max_bytes if self.own else cache.max_bytes
        # Engine keys are short ids: the call's key -> prefix + a number.
        self.prefix = f"{fn.__qualname__}#{next(_serials)}:".encode()
        self.ids = {}
        self.numbers = itertools.count(1)
        self.prune_at = 1024
        self.inflight = set()  # ids being computed now (never pruned)
        self.local = threading.local()  # ids this thread is computing
        self.hits = 0
        self.misses = 0
        self.wrapper = self._make_wrapper(codec)
        _instances.add(self)

    def _make_wrapper(self, codec):
        state = self
        fn = self.fn
        typed = self.typed
        ids = self.ids
        ids_get = ids.get
        make_key = _make_key
        get = self.store._make_get(loads=None)  # the bytes as stored
        loads = codec.loads or (lambda data: data)
        dumps = codec.dumps
        handle = self.store._h
        ttl_ns = _ns(self.ttl, "ttl")

        def rebind():
            nonlocal get, handle
            get = state.store._make_get(loads=None)
            handle = state.store._h

        self.rebind = rebind

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            key = make_key(args, kwargs, typed) if kwargs or typed else args
            eid = ids_get(key)
            if eid is not None:
                data = get(eid)
                if data is not None:
                    state.hits += 1
                    return loads(data)
            # A miss. Written out here, not in a helper, so that recursion
            # costs two frames per level (this and fn), as with lru_cache.
            if eid is None:
                eid = ids.setdefault(key, state.prefix + str(next(state.numbers)).encode())
                if len(ids) > state.prune_at:
                    state.prune()
            kind = ctypes.c_int()
            value, info = _new_value(), _new_info()
            lease, ticket = ctypes.c_void_p(), ctypes.c_void_p()
            rc = _lib.larder_fetch_begin(handle, eid, len(eid), ctypes.byref(kind),
                                         ctypes.byref(value), ctypes.byref(info),
                                         ctypes.byref(lease), ctypes.byref(ticket))
            if kind.value == n.FETCH_LEAD:
                state.misses += 1
                leading = state.leading()
                leading.add(eid)
                state.inflight.add(eid)
                try:
                    result = fn(*args, **kwargs)
                    data = dumps(result)
                except BaseException as exc:
                    _lib.larder_lease_complete_error(lease, failures.remember(exc))
                    raise
                finally:
                    leading.discard(eid)
                    state.inflight.discard(eid)
                # VALUE_TOO_LARGE: not cached, still the answer.
                _lib.larder_lease_complete_value(lease, data, len(data), ttl_ns, None)
                return result
            if kind.value == n.FETCH_WAIT:
                state.misses += 1
                try:
                    if eid in state.leading():
                        raise _errors.RecursiveLoad(
                            n.RECURSIVE_LOAD, f"{fn.__qualname__} called itself with the "
                            "arguments it is computing")
                    rc = _lib.larder_ticket_wait(ticket, 0, ctypes.byref(value),
                                                 ctypes.byref(info))
                finally:
                    _lib.larder_ticket_free(ticket)
            elif rc == n.OK:
                state.hits += 1  # stored by another caller since our lookup
            if rc == n.OK:
                return loads(_take_value(value))
            if rc == n.LOAD_FAILED:
                raise failures.exception(info.error)
            raise state.store._error(rc)

        wrapper.cache_info = self.cache_info
        wrapper.cache_clear = self.cache_clear
        wrapper.cache_parameters = self.cache_parameters
        wrapper.cache = self.store
        return wrapper

    def after_fork(self):
        """In a child process: a function with a cache of its own starts
        again with a new, empty one (the parent's may not be used); one
        sharing a cache the caller gave keeps it (and raises Forked until
        given a new one)."""
        if not self.own:
            return
        old = self.store
        self.store = Cache(old.max_bytes, old.max_entries, ttl=self.ttl)
        self.ids.clear()
        self.inflight = set()
        self.local = threading.local()
        self.hits = self.misses = 0
        self.rebind()
        self.wrapper.cache = self.store

    def leading(self):
        try:
            return self.local.ids
        except AttributeError:
            self.local.ids = ids = set()
            return ids

    def prune(self):
        """Forgets the ids of calls the cache no longer holds (evicted,
        expired, invalidated), so the key map stays about the cache's size:
        run when it doubled since the last pruning, amortized O(1) a miss."""
        contains = self.store.__contains__
        for key, eid in list(self.ids.items()):
            if eid not in self.inflight and not contains(eid):
                if self.ids.get(key) == eid:
                    self.ids.pop(key, None)
        self.prune_at = max(1024, 2 * len(self.ids))

    def cache_info(self):
        """CacheInfo(hits, misses, maxsize, currsize) of this function: its
        own hits and misses, max_entries (None: bounded by bytes only), and
        how many of its results the cache holds now."""
        return CacheInfo(self.hits, self.misses, self.max_entries or None,
                         self.store.count(self.prefix))

    def cache_clear(self):
        """Removes this function's results and resets its counters."""
        if self.own:
            self.store.clear()
        else:
            self.store.invalidate_prefix(self.prefix)
        self.ids.clear()
        self.hits = self.misses = 0

    def cache_parameters(self):
        """The settings, as lru_cache's cache_parameters() gives them, plus
        Larder's own."""
        return {"maxsize": self.max_entries or None, "typed": self.typed,
                "max_bytes": self.max_bytes, "ttl": self.ttl}


def _after_fork_in_child():
    for state in list(_instances):
        state.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
