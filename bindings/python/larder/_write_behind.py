"""larder.WriteBehind: writes that reach the cache at once and a store later."""
import collections
import ctypes

from . import _codec, _errors, _native as n, _stats
from ._cache import _L, _ns, _report
from ._errors import failures

_lib = _L.lib

QueuedWrite = collections.namedtuple(
    "QueuedWrite", ["key", "value", "is_delete", "sequence", "attempt", "replayed"])
QueuedWrite.__doc__ = """One write as the writer sees it. value is None for a delete.
sequence grows with every write ever queued (across restarts, with a journal), so
the writer can skip writes not newer than what it stored: delivery is at least
once. attempt is 1 on the first delivery; replayed is True for a write recovered
from the journal at open."""

_SYNC = {"every_write": n.JOURNAL_SYNC_EVERY_WRITE, "interval": n.JOURNAL_SYNC_INTERVAL,
         "never": n.JOURNAL_SYNC_NEVER}


class _Handle:
    """The C queue; destroyed once, before its cache (see _cache._Resources)."""

    __slots__ = ("ptr", "keep")

    def __init__(self):
        self.ptr = None
        self.keep = []

    def close(self, timeout_ns):
        """larder_write_behind_close's status (0 when already destroyed)."""
        if self.ptr is None:
            return 0
        return _L.lib.larder_write_behind_close(self.ptr, timeout_ns)

    def destroy(self):
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            _L.lib.larder_write_behind_destroy(ptr)


class WriteBehind:
    """Write-behind for a cache (Cache.write_behind(writer, ...) makes one).

    put() and delete() change the cache at once and queue the store write; a
    flusher thread calls writer(writes), a list of QueuedWrite, after
    max_delay or when max_batch writes are ready. Writes of one key coalesce
    (the newest wins) and keep their order; until a key's write is delivered,
    reads of the key see it and never load it from the store. If writer
    raises, the whole batch is retried with exponential backoff and jitter
    (retry_base to retry_max seconds); a write that failed max_attempts times
    goes to dead_letter(write, exception), never dropped silently.

    Options (None keeps the library's default): max_batch, max_delay
    (seconds), max_queue_entries, max_queue_bytes, enqueue_timeout (seconds
    a put waits for room in a full queue before raising Busy; 0 fails at
    once), max_attempts, retry_base, retry_max, journal_dir (a directory for
    a durable journal: writes not yet delivered are replayed to writer at the
    next open, before new ones), journal_sync ("every_write": a put returns
    once its write is on disk; "interval"; "never"), journal_sync_interval,
    journal_segment_bytes.

    The writer and dead_letter run on the flusher thread. close() (or `with`)
    drains the queue; without a journal, writes still undelivered at close
    go to dead_letter.
    """

    def __init__(self, cache, writer, *, dead_letter=None, max_batch=None, max_delay=None,
                 max_queue_entries=None, max_queue_bytes=None, enqueue_timeout=None,
                 max_attempts=None, retry_base=None, retry_max=None, journal_dir=None,
                 journal_sync=None, journal_sync_interval=None, journal_segment_bytes=None):
        if not callable(writer):
            raise TypeError("writer must be callable")
        if dead_letter is not None and not callable(dead_letter):
            raise TypeError("dead_letter must be callable")
        self._cache = cache
        self._decode_key = cache._decode_key
        self._dumps = cache._dumps
        self._loads = cache._loads
        self._handle = handle = _Handle()
        config = n.WriteBehindConfig()
        config.struct_size = ctypes.sizeof(config)
        _errors.check(_lib.larder_write_behind_config_init(ctypes.byref(config)))
        write_fn = n.BATCH_WRITE_FN(self._writer_trampoline(writer))
        config.writer = write_fn
        handle.keep.append(write_fn)
        if dead_letter is not None:
            dead_fn = n.DEAD_LETTER_FN(self._dead_letter_trampoline(dead_letter))
            config.dead_letter = dead_fn
            handle.keep.append(dead_fn)
        for field, value in (("max_batch", max_batch), ("max_queue_entries", max_queue_entries),
                             ("max_queue_bytes", max_queue_bytes),
                             ("max_attempts", max_attempts),
                             ("journal_segment_bytes", journal_segment_bytes)):
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{field} must be a non-negative int")
                setattr(config, field, value)
        for field, value in (("max_delay_ns", max_delay), ("enqueue_timeout_ns", enqueue_timeout),
                             ("retry_base_ns", retry_base), ("retry_max_ns", retry_max),
                             ("journal_sync_interval_ns", journal_sync_interval)):
            if value is not None:
                setattr(config, field, _ns(value, field[:-3]))
        if journal_dir is not None:
            path = journal_dir if isinstance(journal_dir, bytes) else str(journal_dir).encode()
            config.journal_dir = path
            handle.keep.append(path)
        if journal_sync is not None:
            if journal_sync not in _SYNC:
                raise ValueError(f"journal_sync must be one of {sorted(_SYNC)}")
            config.journal_sync = _SYNC[journal_sync]
        ptr = ctypes.c_void_p()
        rc = _lib.larder_write_behind_open(cache._h, ctypes.byref(config), ctypes.byref(ptr))
        if rc != 0:
            raise cache._error(rc)
        handle.ptr = ptr
        cache._resources.write_behinds.append(handle)
        self._closed = False

    def _converter(self):
        # Closures over the codec only, not self: the C queue keeps them (via
        # the cache), and a reference back to self would make a cycle.
        decode_key, loads = self._decode_key, self._loads

        def convert(write):
            key = decode_key(ctypes.string_at(write.key, write.key_size))
            if write.is_delete:
                value = None
            else:
                value = ctypes.string_at(write.value, write.value_size)
                if loads is not None:
                    value = loads(value)
            return QueuedWrite(key, value, bool(write.is_delete), write.sequence, write.attempt,
                               bool(write.replayed))
        return convert

    def _writer_trampoline(self, writer):
        convert = self._converter()

        def call(_, writes, count, error, error_size):
            try:
                writer([convert(writes[i]) for i in range(count)])
                return 0
            except BaseException as exc:
                message = failures.remember(exc)[:max(error_size - 1, 0)]
                if error and error_size:
                    ctypes.memmove(error, message + b"\0", len(message) + 1)
                return 1
        return call

    def _dead_letter_trampoline(self, dead_letter):
        convert = self._converter()

        def call(_, write, error):
            try:
                dead_letter(convert(write.contents),
                            failures.exception(error or b"", n.WRITE_FAILED))
            except BaseException as exc:
                _report(exc, f"the larder dead-letter callback {dead_letter!r}")
        return call

    def _ptr(self):
        ptr = self._handle.ptr
        if ptr is None:
            raise _errors.Closed(n.CLOSED)
        return ptr

    def put(self, key, value, ttl=None):
        """Stores value in the cache now and queues its write to the store.
        Raises Busy when the queue stayed full, JournalError when the journal
        could not record it (then nothing changed)."""
        k = _codec.key_bytes(key)
        v = self._dumps(value)
        rc = _lib.larder_write_behind_put(self._ptr(), k, len(k), v, len(v), _ns(ttl, "ttl"))
        if rc != 0:
            raise self._cache._error(rc)

    def delete(self, key):
        """Removes key from the cache now and queues its delete."""
        k = _codec.key_bytes(key)
        rc = _lib.larder_write_behind_delete(self._ptr(), k, len(k))
        if rc != 0:
            raise self._cache._error(rc)

    def flush(self, timeout=None):
        """Waits until every write queued before the call is delivered or
        dead-lettered; FlushTimeout after `timeout` seconds."""
        self._wait(_lib.larder_write_behind_flush, timeout)

    def close(self, timeout=None):
        """Stops accepting writes and drains the queue (as flush; on
        FlushTimeout the queue is closed all the same: with a journal, what
        was not delivered is replayed at the next open, without one it goes
        to dead_letter). Idempotent."""
        if self._cache._forked:
            return
        self._closed = True
        self._raise_for(self._handle.close(_ns(timeout, "timeout")))

    def _wait(self, fn, timeout):
        self._raise_for(fn(self._ptr(), _ns(timeout, "timeout")))

    def _raise_for(self, rc):
        if rc == n.TIMEOUT:
            raise _errors.FlushTimeout(rc)
        if rc != 0:
            raise self._cache._error(rc)

    def stats(self):
        """A larder.WriteBehindStats snapshot."""
        s = n.WriteBehindStats()
        s.struct_size = ctypes.sizeof(s)
        rc = _lib.larder_write_behind_stats_get(self._ptr(), ctypes.byref(s))
        if rc != 0:
            raise self._cache._error(rc)
        return _stats.WriteBehindStats(
            **{name: getattr(s, name) for name, _ in n.WRITE_BEHIND_STATS_FIELDS})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
