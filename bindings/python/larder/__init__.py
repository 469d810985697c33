"""Larder for Python: an in-process cache with TTLs, LRU eviction within a
byte budget, single-flight loading, refresh, and writing through or behind to
a store, over the C library (ctypes).

    import larder
    cache = larder.Cache(max_bytes=64 << 20, ttl=30)
    cache["user:42"] = b"Ada"
    cache.get("user:42")                       # b"Ada"
    row = cache.get_or_load("user:43", db.fetch)   # one load per key at a time

    @larder.cached(ttl=60)
    def expensive(x, y): ...
    expensive.cache_info(); expensive.cache_clear()

A Cache is a collections.abc.MutableMapping. Keys are str or bytes (a str
key is its UTF-8 bytes: "k" and b"k" are one key); values are bytes or str
unless the cache has a serializer (serializer="pickle" stores any picklable
object). Durations are seconds. larder.TieredCache puts a Redis that many
processes share behind the local cache. See bindings/python/README.md.
"""
from ._cache import Cache, Fetched, Loaded, RemovalCause, version
from ._cached import CacheInfo, cached
from ._codec import Serializer
from ._errors import (Busy, Closed, EmptyKey, FlushTimeout, Forked, InvalidArgument,
                      JournalError, KeyTooLong, LarderError, LoadError, LoadTimeout,
                      RecursiveLoad, Unavailable, ValueTooLarge, WriteError)
from ._stats import Stats, TierStats, WriteBehindStats
from ._tier import TieredCache
from ._write_behind import QueuedWrite, WriteBehind

__version__ = version()

__all__ = [
    "Cache", "Fetched", "Loaded", "RemovalCause", "version", "cached", "CacheInfo",
    "Serializer", "Stats", "WriteBehindStats", "WriteBehind", "QueuedWrite",
    "LarderError", "InvalidArgument", "EmptyKey", "KeyTooLong", "ValueTooLarge", "LoadError",
    "LoadTimeout", "RecursiveLoad", "Busy", "Closed", "WriteError", "JournalError",
    "FlushTimeout", "Forked", "TieredCache", "TierStats", "Unavailable",
]
