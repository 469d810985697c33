"""Item 3 of the issue: loading behaves like the rest of Python."""
import asyncio
import threading
import time

import pytest

import larder


class Boom(Exception):
    def __init__(self, message, detail):
        super().__init__(message)
        self.detail = detail


def test_every_waiter_gets_the_loaders_own_exception(eventually):
    c = larder.Cache(max_bytes=1 << 20)
    release = threading.Event()
    calls = []

    def failing(key):
        calls.append(key)
        release.wait(30)
        raise Boom("database down", detail=42)

    caught = []

    def worker():
        try:
            c.get_or_load("k", failing)
        except BaseException as exc:  # noqa: B902 - recording whatever arrives
            caught.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    joined = eventually(lambda: c.stats().coalesced_waits == 7)
    release.set()
    for t in threads:
        t.join()
    assert joined and calls == ["k"]
    assert len(caught) == 8
    assert all(type(e) is Boom and e.detail == 42 for e in caught)
    assert all(e is caught[0] for e in caught)  # one exception object, like futures
    assert c.get_or_load("k", lambda key: b"ok") == b"ok"  # errors are not cached


def test_a_cached_error_raises_the_same_exception(clock):
    c = larder.Cache(max_bytes=1 << 20, error_ttl=10, clock=clock)
    with pytest.raises(Boom) as first:
        c.get_or_load("k", lambda key: (_ for _ in ()).throw(Boom("down", 1)))
    with pytest.raises(Boom) as second:
        c.get_or_load("k", lambda key: b"not called")
    assert second.value is first.value
    clock.now += 11
    assert c.get_or_load("k", lambda key: b"ok") == b"ok"


def test_the_cache_loader_runs_for_get_or_load_refresh_and_aget():
    loads = []

    def loader(key):
        loads.append(key)
        return f"v{len(loads)}:{key}"

    c = larder.Cache(max_bytes=1 << 20, loader=loader, serializer="str")
    assert c.get_or_load("a") == "v1:a"
    assert c.get_or_load("a") == "v1:a"  # cached
    assert asyncio.run(c.aget_or_load("b")) == "v2:b"
    c.refresh("a")
    deadline = time.monotonic() + 5
    while c["a"] == "v1:a" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c["a"] == "v3:a"
    with pytest.raises(larder.InvalidArgument, match="no loader"):
        asyncio.run(larder.Cache(max_bytes=1 << 20).aget_or_load("x"))


def test_a_plain_loader_in_aget_or_load_does_not_block_the_loop():
    c = larder.Cache(max_bytes=1 << 20)
    started, loop_ran = threading.Event(), threading.Event()
    loader_threads = []

    def slow(key):
        # Returns once the loop has run a task after this loader started. A
        # loader run on the loop's own thread would block it: the task could
        # not run, and the wait would run out.
        loader_threads.append(threading.get_ident())
        started.set()
        return b"slow " + key.encode() if loop_ran.wait(30) else b"the loop was blocked"

    async def main():
        async def other_task():
            while not started.is_set():
                await asyncio.sleep(0.001)
            loop_ran.set()

        value, _ = await asyncio.gather(c.aget_or_load("k", slow), other_task())
        return value, threading.get_ident()

    value, loop_thread = asyncio.run(main())
    assert value == b"slow k"
    assert loader_threads and loop_thread not in loader_threads


def test_aget_waiters_get_the_leaders_exception_and_values():
    c = larder.Cache(max_bytes=1 << 20)
    calls = []

    async def failing(key):
        calls.append(key)
        await asyncio.sleep(0.05)
        raise Boom("async down", detail="x")

    async def main():
        return await asyncio.gather(*(c.aget_or_load("k", failing) for _ in range(5)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert calls == ["k"]
    assert all(type(r) is Boom and r.detail == "x" for r in results)
    assert all(r is results[0] for r in results)


def test_thread_and_task_waiters_share_one_load():
    c = larder.Cache(max_bytes=1 << 20)
    started, release = threading.Event(), threading.Event()
    calls = []

    def loader(key):
        calls.append(key)
        started.set()
        release.wait(30)
        return b"shared"

    holder = []
    t = threading.Thread(target=lambda: holder.append(c.get_or_load("k", loader)))
    t.start()
    started.wait(5)

    async def main():
        task = asyncio.ensure_future(c.aget_or_load("k", loader))
        await asyncio.sleep(0.05)
        assert not task.done()  # waiting without blocking the loop
        release.set()
        return await task

    assert asyncio.run(main()) == b"shared"
    t.join()
    assert holder == [b"shared"] and calls == ["k"]


def test_fetch_tells_the_source_and_staleness(clock):
    c = larder.Cache(max_bytes=1 << 20, ttl=10, stale_while_revalidate=60, clock=clock,
                     loader=lambda key: b"fresh")
    assert c.fetch("k") == larder.Fetched(b"fresh", "loaded", False)
    assert c.fetch("k") == larder.Fetched(b"fresh", "hit", False)
    clock.now += 11
    stale = c.fetch("k")
    assert stale.source == "stale" and stale.stale and stale.value == b"fresh"


def test_stale_if_error_serves_the_old_value(clock):
    c = larder.Cache(max_bytes=1 << 20, ttl=10, stale_if_error=60, clock=clock)
    assert c.get_or_load("k", lambda key: b"old") == b"old"
    clock.now += 11

    def failing(key):
        raise Boom("down", 0)

    fetched = c.fetch("k", failing)
    assert fetched.value == b"old" and fetched.stale


def test_early_refresh_reloads_before_expiry(clock):
    versions = iter(range(1, 1000))
    c = larder.Cache(max_bytes=1 << 20, ttl=10, clock=clock, refresh_beta=1.0, seed=7,
                     refresh_delta=5, loader=lambda key: str(next(versions)))
    c["k"] = b"put"
    clock.now += 9.9  # 0.1 s left of a 5 s load time: refresh is all but certain
    deadline = time.monotonic() + 5
    while c.get("k") == b"put" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c.get("k") == b"1"
    assert c.stats().refreshes_started >= 1


def test_timeouts_and_recursion():
    c = larder.Cache(max_bytes=1 << 20)
    started, release = threading.Event(), threading.Event()

    def slow(key):
        started.set()
        release.wait(30)
        return b"v"

    t = threading.Thread(target=c.get_or_load, args=("k", slow))
    t.start()
    started.wait(5)
    with pytest.raises(larder.LoadTimeout):
        c.get_or_load("k", slow, timeout=0.05)
    with pytest.raises(larder.LoadTimeout):
        asyncio.run(c.aget_or_load("k", slow, timeout=0.05))
    release.set()
    t.join()
    assert c["k"] == b"v"


def test_a_cancelled_async_leader_abandons_its_load():
    c = larder.Cache(max_bytes=1 << 20)

    async def forever(key):
        await asyncio.sleep(60)

    async def main():
        leader = asyncio.ensure_future(c.aget_or_load("k", forever))
        await asyncio.sleep(0.02)
        waiter = asyncio.ensure_future(c.aget_or_load("k", forever))
        await asyncio.sleep(0.02)
        leader.cancel()
        with pytest.raises(larder.LoadError, match="abandoned"):
            await waiter

    asyncio.run(main())
    assert c.get_or_load("k", lambda key: b"after") == b"after"


def test_values_larger_than_the_read_buffer_load_and_hit_whole():
    # get_or_load copies a hit into a reusable 16 KiB buffer; a larger value
    # takes the pinned path, on the load and on every hit after it.
    c = larder.Cache(max_bytes=16 << 20)
    big = bytes(range(256)) * 1024  # 256 KiB
    small = b"s" * 100
    loads = []

    def loader(key):
        loads.append(key)
        return big if key == "big" else small

    assert c.fetch("big", loader) == larder.Fetched(big, "loaded", False)
    assert c.fetch("big", loader) == larder.Fetched(big, "hit", False)
    assert c.get_or_load("big", loader) == big
    assert c.get_or_load("small", loader) == small
    assert c.fetch("small", loader) == larder.Fetched(small, "hit", False)
    assert loads == ["big", "small"]
