"""larder.TieredCache: the Redis second tier (issue 16) from Python.

Each test module run starts its own redis-server on 127.0.0.1 at a free
port (no data on disk) and stops it at the end. Two TieredCache instances in
this process stand in for two processes: each has its own L1, its own Redis
connections and its own invalidation subscription.
"""
import itertools
import os
import shutil
import socket
import subprocess
import time

import pytest

import larder

REDIS_SERVER = os.environ.get("LARDER_REDIS_SERVER") or shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (apt-get install redis-server; Redis 6 or later)")

_keys = itertools.count()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private redis-server: no persistence, 127.0.0.1 only."""

    def __init__(self):
        self.port = _free_port()
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not _answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def redis():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def key():
    """A key no other test uses (they share the server)."""
    return f"test:{next(_keys)}:{os.getpid()}"


@pytest.fixture
def tiers(redis):
    """A factory of TieredCache on the module's server, all closed at the end."""
    made = []

    def make(**options):
        options.setdefault("port", redis.port)
        tier = larder.TieredCache(1 << 20, **options)
        made.append(tier)
        return tier
    yield make
    for tier in made:
        tier.close()


class Counting:
    """A loader that counts its calls."""

    def __init__(self, value=b"loaded"):
        self.value = value
        self.calls = []

    def __call__(self, key):
        self.calls.append(key)
        return self.value


def _eventually(check, within=2.0):
    deadline = time.monotonic() + within
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def test_a_miss_runs_the_loader_and_fills_redis_then_l1_answers(tiers, key):
    a = tiers()
    load = Counting(b"row")
    assert a.fetch(key, load) == larder.Fetched(b"row", "loaded", False)
    assert load.calls == [key]
    assert a.get(key, load) == b"row"  # from L1
    assert load.calls == [key]
    s = a.stats()
    assert (s.loads, s.fills, s.l2_misses) == (1, 1, 1)
    assert s.l1.hits == 1


def test_another_instance_reads_the_value_from_redis_without_loading(tiers, key):
    a, b = tiers(), tiers()
    a.get(key, Counting(b"from a"))
    load_b = Counting(b"from b")
    assert b.fetch(key, load_b) == larder.Fetched(b"from a", "hit", False)
    assert load_b.calls == []
    assert b.stats().l2_hits == 1
    assert b.get(key) == b"from a"  # no loader needed: now in b's L1


def test_set_in_one_instance_replaces_the_others_l1_copy_within_the_bound(tiers, key):
    a, b = tiers(), tiers()
    a.set(key, b"v1")
    assert b.get(key) == b"v1"  # b's L1 holds it, and Redis tracks it for b
    assert b.get(key) == b"v1"
    a.set(key, b"v2")
    assert _eventually(lambda: b.get(key) == b"v2"), "b kept serving v1 for over 2 s"
    assert b.stats().invalidated_keys >= 1


def test_delete_and_invalidate_in_one_instance_reach_the_other(tiers, key):
    a, b = tiers(), tiers()
    a.set(key, b"v")
    assert b.get(key) == b"v"
    a.delete(key)
    assert _eventually(lambda: b.get(key, default=None) is None)
    load = Counting(b"reloaded")
    assert b.get(key, load) == b"reloaded" and load.calls == [key]
    assert a.get(key) == b"reloaded"
    b.invalidate(key)
    assert _eventually(lambda: a.get(key, default="gone") == "gone")
    del a[key]
    with pytest.raises(KeyError):
        a[key]


def test_loader_not_found_returns_the_default_and_stores_nothing(tiers, key):
    a, b = tiers(), tiers()
    assert a.get(key, lambda k: None, default="none") == "none"
    load = Counting(b"later")
    assert b.get(key, load) == b"later" and load.calls == [key]


def test_a_loaders_exception_propagates_and_nothing_is_stored(tiers, key):
    a = tiers()
    boom = LookupError("no such row")

    def failing(k):
        raise boom
    with pytest.raises(LookupError) as raised:
        a.get(key, failing)
    assert raised.value is boom
    assert a.get(key, default="absent") == "absent"


def test_the_tiers_own_loader_serializer_and_ttl(tiers, key):
    a = tiers(serializer="pickle", loader=lambda k: {"key": k}, ttl=30)
    b = tiers(serializer="pickle")
    assert a.get(key) == {"key": key}
    assert b.get(key) == {"key": key}
    a.set(key, [1, 2, 3], ttl=10)
    assert _eventually(lambda: b.get(key) == [1, 2, 3])
    assert a.get(key, lambda k: larder.Loaded("x", ttl=5)) == [1, 2, 3]


def test_broadcast_prefixes(tiers, key):
    a = tiers(prefixes=["test:", "other:"])
    b = tiers(prefixes=["test:"])
    a.set(key, b"v")
    assert b.get(key) == b"v"
    a.set(key, b"w")
    assert _eventually(lambda: b.get(key) == b"w")
    with pytest.raises(larder.InvalidArgument, match="(?i)overlap"):
        tiers(prefixes=["test:", "test:a"])
    with pytest.raises(TypeError):
        tiers(prefixes="test:")


def test_stats_fields(tiers, key):
    a = tiers()
    s = a.stats()
    assert isinstance(s, larder.TierStats)
    assert s.tracking_up is True
    assert s.breaker_state == "closed"
    assert s.breaker_opens == 0 and s.l2_errors == 0
    assert isinstance(s.l1, larder.Stats) and s.l1.capacity_bytes == 1 << 20
    a.set(key, b"v")
    assert a.stats().writes == 1


def test_an_unreachable_redis_is_refused_with_the_reason(redis):
    port = _free_port()  # nothing listens there
    with pytest.raises(larder.Unavailable) as raised:
        larder.TieredCache(1 << 20, port=port, connect_timeout=0.5)
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message and "connect" in message, message
    assert isinstance(raised.value, ConnectionError)
    assert raised.value.code == 17


def test_a_refusing_redis_and_bad_options_are_invalid_arguments(redis):
    with pytest.raises(larder.InvalidArgument) as raised:
        larder.TieredCache(1 << 20, port=redis.port, password="wrong")
    assert str(raised.value) != raised.value.name  # the server's reason is in it
    with pytest.raises(ValueError):
        larder.TieredCache(1 << 20, port=0)
    with pytest.raises(ValueError):
        larder.TieredCache(0, port=redis.port)
    with pytest.raises(TypeError):
        larder.TieredCache(1 << 20, port=redis.port, loader=42)


def test_close_and_the_context_manager(redis, key):
    with larder.TieredCache(1 << 20, port=redis.port) as a:
        a.set(key, b"v")
        assert a.get(key) == b"v"
        assert "open" in repr(a)
    assert a.closed and "closed" in repr(a)
    for operation in (lambda: a.get(key), lambda: a.set(key, b"x"), lambda: a.delete(key),
                      lambda: a.invalidate(key), lambda: a.stats()):
        with pytest.raises(larder.Closed):
            operation()
    a.close()  # idempotent


def test_redis_going_away_opens_the_breaker_and_reads_fall_back_to_the_loader(key):
    server = RedisServer()
    try:
        a = larder.TieredCache(1 << 20, port=server.port, breaker_failures=2,
                               breaker_open=60, command_timeout=0.1, connect_timeout=0.1)
        assert a.get(key, Counting(b"v")) == b"v"
        server.stop()
        load = Counting(b"from the store")
        for _ in range(4):
            assert a.get(key, load) == b"from the store"
        s = a.stats()
        assert s.breaker_state == "open" and s.breaker_opens >= 1, s
        assert s.l2_errors >= 1 and s.l2_skipped >= 1, s
        with pytest.raises(larder.Unavailable, match="not written"):
            a.set(key, b"x")
        a.close()
    finally:
        server.stop()


def test_a_parents_tier_is_refused_in_the_child(tiers, key, redis):
    a = tiers()
    a_port = redis.port
    a.set(key, b"v")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            try:
                a.get(key)
                code = 1
            except larder.Forked as e:
                code = 0 if "create a new larder.TieredCache" in str(e) else 2
            a.close()  # frees nothing of the parent's
            if code == 0:  # a tier of the child's own works, from any thread
                import threading
                results = []
                with larder.TieredCache(1 << 20, port=a_port) as c:
                    t = threading.Thread(target=lambda: results.append(c.get(key)))
                    t.start()
                    t.join(5)
                code = 0 if results == [b"v"] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert a.get(key) == b"v"  # the parent's tier still works


def test_write_through_writes_the_store_first_and_raises_its_exception(tiers, key):
    store = {}

    def write(k, value):
        if value == "refused":
            raise PermissionError("read-only row")
        store[k] = value

    def remove(k):
        store.pop(k, None)

    a = tiers(serializer="pickle", writer=write, deleter=remove)
    b = tiers(serializer="pickle", loader=lambda k: store.get(k))
    a.set(key, "v1")
    assert store == {key: "v1"} and b.get(key) == "v1"
    with pytest.raises(PermissionError, match="read-only row"):
        a.set(key, "refused")
    assert store == {key: "v1"} and b.get(key) == "v1"  # nothing changed
    a.delete(key)
    assert store == {}
    assert _eventually(lambda: b.get(key, default="gone") == "gone")
    with pytest.raises(TypeError, match="both"):
        tiers(writer=write)


def _together(*calls):
    """Runs the calls on threads at once; returns their results in order."""
    import threading
    results = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i):
        start.wait()
        results[i] = calls[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_threads_missing_one_key_load_it_once(tiers, key):
    # Each thread's first liblarder call is this get: see _tier._warm_up_thread
    # (without it, every one failed with InvalidArgument, "no loader").
    a = tiers()
    calls = []

    def slow(k):
        calls.append(k)
        time.sleep(0.1)
        return b"v"
    assert _together(*[lambda: a.get(key, slow)] * 6) == [b"v"] * 6
    assert calls == [key]


def test_the_stampede_lock_loads_once_across_instances(tiers, key):
    a, b = tiers(stampede_lock=True), tiers(stampede_lock=True)
    calls = []

    def slow(k):
        calls.append(k)
        # Hold the lock until the other instance has found it taken. (A fixed
        # sleep loses the race on a loaded machine: an instance that starts
        # late finds the value in Redis and never waits.) Well inside the 5 s
        # lease, after which the other may take the lock.
        give_up = time.monotonic() + 3
        while a.stats().lock_waits + b.stats().lock_waits < 1 and time.monotonic() < give_up:
            time.sleep(0.001)
        return b"v"
    assert _together(lambda: a.get(key, slow), lambda: b.get(key, slow)) == [b"v", b"v"]
    assert calls == [key]
    s_a, s_b = a.stats(), b.stats()
    # A waiter whose poll found nothing just before the holder filled and let
    # go may take the lock next; it then finds the value and loads nothing.
    assert s_a.lock_acquired + s_b.lock_acquired >= 1
    assert s_a.lock_waits + s_b.lock_waits == 1
    assert s_a.lock_wait_hits + s_b.lock_wait_hits == 1
