"""Item 4 of the issue: @larder.cached behaves like functools.lru_cache."""
import functools
import threading
import time

import pytest

import larder


def test_keys_are_built_like_lru_cache():
    calls = []

    @larder.cached
    def f(*args, **kwargs):
        calls.append((args, kwargs))
        return len(calls)

    assert f(7) == f(7.0) == 1  # equal arguments: one call (typed=False)
    assert f(1) == f(True) == f(1.0) == 2
    assert f(7, x=1) == f(7, x=1) == 3
    assert f(7, x=1, y=2) == f(7, y=2, x=1) == 4  # keyword order does not matter
    assert f("7") == 5 and f((7,)) == 6  # but a tuple argument is not its items
    with pytest.raises(TypeError, match="unhashable"):
        f([1, 2])
    with pytest.raises(TypeError, match="unhashable"):
        f(1, x={})
    assert len(calls) == 6


def test_typed_separates_argument_types():
    @larder.cached(typed=True)
    def f(x, y=0):
        return type(x).__name__

    assert f(7) == "int" and f(7.0) == "float"
    assert f(7, y=1) == "int" and f(7.0, y=1) == "float"
    assert f.cache_info().misses == 4
    assert f.cache_parameters() == {"maxsize": None, "typed": True,
                                    "max_bytes": 64 << 20, "ttl": None}


def test_cache_info_counts_this_function_only_and_cache_clear_resets():
    shared = larder.Cache(max_bytes=1 << 20, max_entries=100)

    @larder.cached(shared)
    def square(x):
        return x * x

    @larder.cached(shared)
    def cube(x):
        return x * x * x

    assert [square(i) for i in (1, 2, 1, 1)] == [1, 4, 1, 1]
    assert [cube(i) for i in (1, 1)] == [1, 1]
    assert square.cache_info() == larder.CacheInfo(hits=2, misses=2, maxsize=100, currsize=2)
    assert cube.cache_info() == larder.CacheInfo(hits=1, misses=1, maxsize=100, currsize=1)
    square.cache_clear()
    assert square.cache_info() == larder.CacheInfo(0, 0, 100, 0)
    assert cube.cache_info().currsize == 1 and cube(1) == 1  # the other function's results stay
    assert square(2) == 4 and square.cache_info().misses == 1
    assert square.cache_parameters()["maxsize"] == 100


def test_recursion_works_like_lru_cache():
    @larder.cached
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    @functools.lru_cache(maxsize=None)
    def reference(n):
        return n if n < 2 else reference(n - 1) + reference(n - 2)

    assert fib(300) == reference(300)
    assert fib.cache_info().misses == 301
    fib.cache_clear()
    assert fib(300) == reference(300)


def test_calling_itself_with_the_same_arguments_is_refused():
    @larder.cached
    def loop(x):
        return loop(x)

    with pytest.raises(larder.RecursiveLoad):
        loop(1)
    assert loop.cache_info().currsize == 0


def test_concurrent_callers_compute_once(eventually):
    calls = []
    release = threading.Event()

    @larder.cached(ttl=60)
    def slow(x):
        calls.append(x)
        release.wait(30)
        return {"x": x}

    results = []
    threads = [threading.Thread(target=lambda: results.append(slow(3))) for _ in range(8)]
    for t in threads:
        t.start()
    joined = eventually(lambda: slow.cache.stats().coalesced_waits == 7)
    release.set()
    for t in threads:
        t.join()
    assert joined and calls == [3] and results == [{"x": 3}] * 8
    assert slow.cache_info().misses == 8  # one computed, seven waited


def test_exceptions_reach_every_caller_and_are_not_cached():
    attempts = []

    @larder.cached
    def flaky(x):
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first call fails")
        return x

    with pytest.raises(ValueError, match="first call fails"):
        flaky(1)
    assert flaky(1) == 1 and flaky(1) == 1 and attempts == [1, 1]


def test_results_are_copies_and_expire(clock):
    store = larder.Cache(max_bytes=1 << 20, clock=clock)

    @larder.cached(store, ttl=5)
    def make(x):
        return [x]

    first = make(1)
    first.append("mutated")
    assert make(1) == [1]  # a hit returns the stored value, not the caller's object
    clock.now += 6
    assert make(1) == [1] and make.cache_info().misses == 2


def test_key_map_is_pruned_when_the_cache_evicts():
    @larder.cached(max_entries=64, max_bytes=1 << 20)
    def ident(x):
        return x

    for i in range(20_000):
        ident(i)
    info = ident.cache_info()
    assert info.currsize <= 64
    ids = [cell.cell_contents for cell in ident.__closure__
           if isinstance(cell.cell_contents, dict)]
    assert ids and all(len(m) < 5000 for m in ids)  # not 20,000


def test_twenty_thousand_hits_are_counted_and_never_call_the_function():
    # What a hit costs is the benchmark's to report (python -m larder.bench:
    # "@larder.cached hit" beside functools.lru_cache); a timed assertion
    # here failed whenever other tests loaded the machine.
    calls = []

    @larder.cached
    def f(x, y):
        calls.append((x, y))
        return {"sum": x + y}

    assert f(1, 2) == {"sum": 3}
    hits_before = f.cache_info().hits
    for _ in range(20_000):
        assert f(1, 2) == {"sum": 3}
    assert calls == [(1, 2)]
    assert f.cache_info().hits - hits_before == 20_000


def test_maxsize_is_lru_caches_name_for_max_entries():
    @larder.cached(maxsize=2)
    def ident(x):
        return x

    for i in range(10):
        ident(i)
    assert ident.cache_info().maxsize == 2 and ident.cache_info().currsize <= 2
    assert ident.cache_parameters()["maxsize"] == 2


def test_bad_uses_raise():
    with pytest.raises(TypeError):
        larder.cached(cache="not a cache")

    with pytest.raises(TypeError, match="coroutine"):
        @larder.cached
        async def coro():
            pass
