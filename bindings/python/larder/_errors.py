"""Exceptions, one class per status code (docs/errors.md), and the registry
that gives every caller of a failed load the loader's own exception."""
import itertools
import threading

from . import _native as n

_lib = None  # set by the package once the library is loaded


def _status_text(code):
    return _lib.larder_strerror(code).decode() if _lib is not None else f"status {code}"


class LarderError(Exception):
    """A status code from liblarder: `code` is the number, `name` its text."""

    def __init__(self, code, message=None):
        self.code = code
        self.name = _status_text(code)
        super().__init__(message or self.name)

    def __reduce__(self):
        return (type(self), (self.code, str(self)))


class InvalidArgument(LarderError, ValueError):
    """An argument the library refused (a bad option value, no loader...)."""


class EmptyKey(LarderError, ValueError):
    """Keys are at least one byte."""


class KeyTooLong(LarderError, ValueError):
    """Keys are at most 65,535 bytes (UTF-8 bytes for a str)."""


class ValueTooLarge(LarderError, ValueError):
    """The value is larger than one stripe's share of max_bytes."""


class LoadError(LarderError):
    """A load failed and the loader's own exception is not available: the
    load was abandoned (a cancelled asyncio leader), or the failure is a
    cached error older than the last 1,024 failures the binding remembers."""


class LoadTimeout(LarderError, TimeoutError):
    """Waiting for another caller's load took longer than `timeout`."""


class FlushTimeout(LarderError, TimeoutError):
    """A write-behind flush or close did not finish within its timeout (the
    drain goes on)."""


class RecursiveLoad(LarderError, RuntimeError):
    """A loader asked the cache for the key it is loading."""


class Busy(LarderError, RuntimeError):
    """The write-behind queue stayed full for `enqueue_timeout`."""


class Closed(LarderError, RuntimeError):
    """The cache (or write-behind queue) was closed."""


class WriteError(LarderError):
    """A write-through's writer failed without a Python exception to show."""


class JournalError(LarderError, OSError):
    """The write-behind journal could not be read or written; the write was
    not acknowledged (it may still be replayed after a restart)."""


class Forked(LarderError, RuntimeError):
    """A cache created before os.fork() was used in the child."""


class Unavailable(LarderError, ConnectionError):
    """Redis (the TieredCache's second tier) could not be reached, or did not
    answer in time; the message says which server and why."""


FORKED_MESSAGE = ("this larder.Cache was created by the parent process before os.fork(): "
                  "create a new larder.Cache in the child (the inherited one may only be "
                  "closed or dropped)")

_CLASSES = {
    n.INVALID_ARGUMENT: InvalidArgument, n.EMPTY_KEY: EmptyKey, n.KEY_TOO_LONG: KeyTooLong,
    n.VALUE_TOO_LARGE: ValueTooLarge, n.LOAD_FAILED: LoadError, n.TIMEOUT: LoadTimeout,
    n.RECURSIVE_LOAD: RecursiveLoad, n.BUSY: Busy, n.CLOSED: Closed,
    n.WRITE_FAILED: WriteError, n.IO_ERROR: JournalError, n.FORKED: Forked,
    n.UNAVAILABLE: Unavailable,
}


def error(code, message=None):
    """The exception for a status code (not raised)."""
    if code == n.NO_MEMORY:
        return MemoryError(_status_text(code))
    if code == n.FORKED and message is None:
        message = FORKED_MESSAGE
    return _CLASSES.get(code, LarderError)(code, message)


def check(code):
    if code != 0:
        raise error(code)


class Failures:
    """The exceptions of recent failed loads and writes, by token.

    A failed load reaches every waiter through C as a message: the binding
    puts a token in that message and keeps the exception here, so each waiter
    raises the loader's own exception object, as concurrent.futures does. The
    last LIMIT failures are kept (a cached error, with error_ttl, may outlive
    its exception here; it then raises LoadError with the exception's text).
    """

    LIMIT = 1024
    TAG = b"python#"

    def __init__(self):
        self._lock = threading.Lock()
        self._by_token = {}
        self._tokens = itertools.count(1)

    def reset_after_fork(self):
        self._lock = threading.Lock()

    def remember(self, exc):
        """Keeps exc; returns the message for C (NUL-free, < 256 bytes)."""
        token = next(self._tokens)
        with self._lock:
            self._by_token[token] = exc
            while len(self._by_token) > self.LIMIT:
                del self._by_token[next(iter(self._by_token))]
        text = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace").replace(b"\0", b" ")
        return (self.TAG + str(token).encode() + b" " + text)[:255]

    def exception(self, message, code=n.LOAD_FAILED):
        """The exception a failure message stands for: the one remembered for
        its token, else a LarderError of `code` with the message."""
        if message.startswith(self.TAG):
            head, _, text = message.partition(b" ")
            try:
                exc = self._by_token.get(int(head[len(self.TAG):]))
            except ValueError:
                exc = None
            if exc is not None:
                return exc
            message = text
        return error(code, message.decode("utf-8", "replace") or None)


failures = Failures()
