"""The Python binding, end to end (run with /usr/bin/python3 -m pytest)."""
import asyncio
import os
import threading
import time

import pytest

import larder


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_set_get_and_mapping_protocol():
    c = larder.Cache(max_bytes=1 << 20)
    c["k"] = b"v"
    c.set("s", "text", ttl=60)
    assert c["k"] == b"v" and c.get("s") == b"text"
    assert "k" in c and "absent" not in c
    assert c.get("absent") is None and c.get("absent", b"d") == b"d"
    with pytest.raises(KeyError):
        c["absent"]
    assert c.pop("k") == b"v" and c.pop("k", b"gone") == b"gone"
    with pytest.raises(KeyError):
        c.pop("k")
    del c["s"]
    with pytest.raises(KeyError):
        del c["s"]
    assert len(c) == 0


def test_binary_keys_and_large_values():
    c = larder.Cache(max_bytes=16 << 20)
    big = os.urandom(100_000)
    c[b"\x00\xffkey"] = big
    assert c[b"\x00\xffkey"] == big  # larger than the reusable buffer
    c["empty"] = b""
    assert c["empty"] == b""


def test_ttl_with_a_fake_clock_and_eviction():
    clock = FakeClock()
    c = larder.Cache(max_bytes=1 << 20, max_entries=2, stripes=1, ttl=10, clock=clock)
    c["a"] = "1"
    clock.now += 11
    assert c.get("a") is None
    c["a"], c["b"], c["c"] = "1", "2", "3"
    assert "a" not in c and len(c) == 2
    s = c.stats()
    assert s.evictions == 1 and s.puts == 4


def test_removal_listener_sees_causes():
    seen = []
    c = larder.Cache(max_bytes=1 << 20, max_entries=1, stripes=1,
                     on_removal=lambda k, v, cause: seen.append((k, v, cause)))
    c["a"] = "1"
    c["a"] = "2"
    c["b"] = "3"
    c.invalidate("b")
    assert seen == [("a", b"1", "replaced"), ("a", b"2", "evicted"), ("b", b"3", "explicit")]
    assert seen[0][2] is larder.RemovalCause.REPLACED


def test_get_or_load_single_flight_across_threads(eventually):
    c = larder.Cache(max_bytes=1 << 20)
    calls = []
    release = threading.Event()

    def loader(key):
        calls.append(key)
        release.wait(30)
        return "loaded " + key

    results = []
    threads = [threading.Thread(target=lambda: results.append(c.get_or_load("hot", loader)))
               for _ in range(16)]
    for t in threads:
        t.start()
    joined = eventually(lambda: c.stats().coalesced_waits == 15)
    release.set()
    for t in threads:
        t.join()
    assert joined and calls == ["hot"]
    assert results == [b"loaded hot"] * 16
    assert c.stats().coalesced_waits == 15


def test_a_loader_exception_surfaces_as_itself_and_is_not_cached():
    c = larder.Cache(max_bytes=1 << 20)

    class Boom(Exception):
        pass

    def failing(key):
        raise Boom("database down")

    with pytest.raises(Boom, match="database down"):
        c.get_or_load("k", failing)
    assert c.get_or_load("k", lambda key: b"ok") == b"ok"


def test_not_found_and_a_ttl_of_its_own_from_a_loader():
    clock = FakeClock()
    c = larder.Cache(max_bytes=1 << 20, negative_ttl=5, clock=clock)
    assert c.get_or_load("ghost", lambda key: None) is None
    assert c.get_or_load("ghost", lambda key: b"never", default=b"d") == b"d"  # negative entry
    assert c.get_or_load("t", lambda key: larder.Loaded(b"v", ttl=1)) == b"v"
    clock.now += 2
    assert "t" not in c


def test_a_loader_asking_for_its_own_key_gets_recursive_load():
    c = larder.Cache(max_bytes=1 << 20)

    def loader(key):
        with pytest.raises(larder.RecursiveLoad):
            c.get_or_load(key, lambda k: b"inner")
        return b"outer"

    assert c.get_or_load("k", loader) == b"outer"


def test_cached_decorator_basics():
    calls = []

    @larder.cached(ttl=60)
    def square(x, scale=1):
        calls.append(x)
        return {"value": x * x * scale}

    assert square(3) == {"value": 9}
    assert square(3) == {"value": 9}
    assert square(3, scale=2) == {"value": 18}
    assert calls == [3, 3]
    info = square.cache_info()
    assert info.hits == 1 and info.misses == 2 and info.currsize == 2
    square.cache_clear()
    square(3)
    assert calls == [3, 3, 3]


def test_asyncio_get_or_load_leads_and_waits_without_blocking():
    c = larder.Cache(max_bytes=1 << 20)
    calls = []

    async def loader(key):
        calls.append(key)
        await asyncio.sleep(0.05)
        return b"async " + key.encode()

    async def main():
        return await asyncio.gather(*(c.aget_or_load("k", loader) for _ in range(10)))

    assert asyncio.run(main()) == [b"async k"] * 10
    assert calls == ["k"]


def test_hostile_inputs_raise_clear_errors():
    c = larder.Cache(max_bytes=1 << 20)
    with pytest.raises(larder.KeyTooLong):
        c["k" * 70000] = b"v"
    with pytest.raises(larder.EmptyKey):
        c[""] = b"v"
    with pytest.raises(TypeError):
        c[42] = b"v"
    with pytest.raises(TypeError, match="serializer"):
        c["k"] = 3.5
    with pytest.raises(ValueError):
        c.set("k", b"v", ttl=-1)
    with pytest.raises(larder.ValueTooLarge):
        larder.Cache(max_bytes=4096, stripes=1).set("k", b"x" * 10000)
    with pytest.raises(ValueError):
        larder.Cache(max_bytes=0)
    with pytest.raises(larder.InvalidArgument):
        larder.Cache(max_bytes=1 << 20, refresh_beta=-1)
    with pytest.raises(larder.InvalidArgument):
        c.get_or_load("k")  # no loader anywhere


def test_use_after_close_raises_closed():
    with larder.Cache(max_bytes=1 << 20) as c:
        c["k"] = b"v"
    with pytest.raises(larder.Closed):
        c.get("k")
    with pytest.raises(larder.Closed):
        c["k"] = b"v"
    c.close()  # idempotent


def test_use_after_fork_is_refused_in_the_child():
    c = larder.Cache(max_bytes=1 << 20)
    c["k"] = b"v"
    pid = os.fork()
    if pid == 0:
        try:
            c.get("k")
            os._exit(1)
        except larder.Forked as e:
            if "fork" not in str(e) or "new larder.Cache" not in str(e):
                os._exit(2)
        # The child's own caches work, and dropping the inherited one returns.
        own = larder.Cache(max_bytes=1 << 20)
        own["mine"] = b"v"
        c.close()
        os._exit(0 if own["mine"] == b"v" else 3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert c["k"] == b"v"  # the parent is unaffected


def test_version_is_the_loaded_library():
    assert larder.version() == "0.2.0" == larder.__version__
