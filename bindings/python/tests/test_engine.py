"""Item 5 of the issue: the whole engine, named in Python's style."""
import gc
import subprocess
import sys
import threading

import pytest

import larder


def test_write_through_writes_the_store_first():
    store = {}
    c = larder.Cache(max_bytes=1 << 20, serializer="pickle")
    c.write_through("k", {"v": 1}, lambda key, value: store.__setitem__(key, value))
    assert store == {"k": {"v": 1}} and c["k"] == {"v": 1}

    class StoreDown(Exception):
        pass

    def failing(key, value):
        raise StoreDown("no")

    with pytest.raises(StoreDown):
        c.write_through("k", {"v": 2}, failing)
    assert c["k"] == {"v": 1}  # unchanged
    c.delete_through("k", store.pop)
    assert "k" not in c and store == {}
    with pytest.raises(StoreDown):
        c.delete_through("x", lambda key: (_ for _ in ()).throw(StoreDown("no")))


def test_write_behind_batches_coalesces_and_reads_its_writes():
    batches = []
    delivered = threading.Event()

    def writer(writes):
        batches.append(writes)
        delivered.set()

    c = larder.Cache(max_bytes=1 << 20)
    with c.write_behind(writer, max_delay=60, max_batch=100) as wb:
        wb.put("a", b"1")
        wb.put("a", b"2")  # coalesces with the first
        wb.put("b", b"x")
        wb.delete("b")
        assert c["a"] == b"2" and "b" not in c  # the cache sees writes at once
        wb.flush(timeout=5)
        s = wb.stats()
    writes = [w for batch in batches for w in batch]
    assert {(w.key, w.value, w.is_delete) for w in writes} == {("a", b"2", False),
                                                                ("b", None, True)}
    assert all(w.attempt == 1 and not w.replayed for w in writes)
    assert s.delivered == 2 and s.coalesced >= 1 and s.queue_depth == 0
    assert "larder_write_behind_delivered_total 2" in s.to_prometheus()
    with pytest.raises(larder.Closed):
        wb.put("c", b"late")


def test_write_behind_retries_then_dead_letters_with_the_exception():
    class Down(Exception):
        pass

    attempts = []
    dead = []
    done = threading.Event()

    def writer(writes):
        attempts.extend(w.attempt for w in writes)
        raise Down("store down")

    def dead_letter(write, error):
        dead.append((write, error))
        done.set()

    c = larder.Cache(max_bytes=1 << 20)
    wb = c.write_behind(writer, dead_letter=dead_letter, max_delay=0.001, max_attempts=3,
                        retry_base=0.001, retry_max=0.01)
    wb.put("k", b"v")
    assert done.wait(5)
    wb.close()
    assert attempts == [1, 2, 3]
    (write, error), = dead
    assert write.key == "k" and write.value == b"v" and type(error) is Down
    assert wb.stats().dead_letters == 1


def test_write_behind_journal_replays_after_a_restart(tmp_path):
    c = larder.Cache(max_bytes=1 << 20)
    failing = threading.Event()
    failing.set()

    def refuse(writes):
        if failing.is_set():
            raise RuntimeError("offline")

    wb = c.write_behind(refuse, journal_dir=tmp_path, journal_sync="every_write",
                        max_delay=0.001, max_attempts=1000, retry_base=1, retry_max=1)
    wb.put("k", b"durable")
    wb.put("j", b"too")
    with pytest.raises(larder.FlushTimeout):
        c.close(timeout=0.1)  # closes the queue; undelivered writes stay in the journal
    # A new process would do this: the same journal, a working writer.
    got = []
    c2 = larder.Cache(max_bytes=1 << 20)
    wb2 = c2.write_behind(got.extend, journal_dir=tmp_path, max_delay=0.001)
    wb2.flush(timeout=5)
    assert sorted((w.key, w.value, w.replayed) for w in got) == [("j", b"too", True),
                                                                 ("k", b"durable", True)]
    assert wb2.stats().replayed_writes == 2
    wb2.close()
    with pytest.raises(ValueError):
        c2.write_behind(got.extend, journal_sync="sometimes")


def test_invalidate_prefix_and_pinned_zero_copy_reads():
    c = larder.Cache(max_bytes=1 << 20)
    c["user:1"], c["user:2"], c["team:1"] = b"a", b"b", b"c"
    assert c.invalidate_prefix("user:") == 2 and list(c) == ["team:1"]
    view = c.get_pinned("team:1")
    assert isinstance(view, memoryview) and view.readonly and bytes(view) == b"c"
    c["team:1"] = b"replaced"
    del c["team:1"]
    c.clear()
    assert bytes(view) == b"c"  # still valid: the pin keeps the old value alive
    part = view[0:1]
    view.release()
    assert bytes(part) == b"c"  # a view made from it keeps the pin too
    part.release()
    with c.get_pinned("absent", memoryview(b"default")) as d:
        assert bytes(d) == b"default"
    c["empty"] = b""
    assert bytes(c.get_pinned("empty")) == b""
    gc.collect()


def test_stats_dataclass_and_prometheus_text():
    c = larder.Cache(max_bytes=1 << 20)
    c["k"] = b"v"
    c.get("k")
    c.get("absent")
    s = c.stats()
    assert isinstance(s, larder.Stats)
    assert (s.hits, s.misses, s.puts, s.entries) == (1, 1, 1, 1) and s.hit_ratio == 0.5
    with pytest.raises(Exception):
        s.hits = 5  # frozen
    text = c.prometheus(labels={"cache": 'users "main"'})
    assert "# TYPE larder_hits_total counter" in text
    assert 'larder_hits_total{cache="users \\"main\\""} 1' in text
    assert "# TYPE larder_entries gauge" in text
    assert text.endswith("\n")


def test_several_removal_listeners_and_a_failing_one(monkeypatch):
    seen_a, seen_b, reported = [], [], []
    monkeypatch.setattr("sys.unraisablehook", reported.append)

    def broken(key, value, cause):
        raise RuntimeError("listener bug")

    c = larder.Cache(max_bytes=1 << 20, serializer="pickle",
                     on_removal=[lambda *a: seen_a.append(a), broken,
                                 lambda *a: seen_b.append(a)])
    c["k"] = {"n": 1}
    c["k"] = {"n": 2}
    del c["k"]
    assert seen_a == seen_b == [("k", {"n": 1}, "replaced"), ("k", {"n": 2}, "explicit")]
    assert len(reported) == 2 and "listener bug" in str(reported[0].exc_value)


def test_put_charged_capacity_entries_and_options():
    c = larder.Cache(max_bytes=10_000, stripes=1)
    c.set("heavy", b"x", charge=9_000)
    c.set("other", b"y", charge=2_000)  # over capacity: the least recent goes
    assert "heavy" not in c and "other" in c
    with pytest.raises(ValueError):
        c.set("k", b"v", charge=0)
    with pytest.raises(larder.InvalidArgument):
        larder.Cache(max_bytes=1 << 20, refresh_threads=0)
    with pytest.raises(TypeError, match="plain function"):
        async def coro(key):
            pass
        larder.Cache(max_bytes=1 << 20, loader=coro)
    c.cleanup()
    assert "max_bytes=10000" in repr(c)


def test_write_behind_drains_at_exit_even_with_daemon_threads_reading():
    script = (
        "import sys, threading, larder\n"
        "c = larder.Cache(max_bytes=1 << 20)\n"
        "wb = c.write_behind(lambda ws: print('delivered', [w.key for w in ws]),"
        " max_delay=60)\n"
        "wb.put('k', b'v')\n"
        "def spin():\n"
        "    while True:\n"
        "        c.get('k'); c['x'] = b'y'\n"
        "threading.Thread(target=spin, daemon=True).start()\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "delivered ['k']\n"


def test_a_dropped_cache_is_freed_at_once_not_at_the_next_collection():
    import weakref
    gc.disable()
    try:
        c = larder.Cache(max_bytes=1 << 20, serializer="pickle", loader=lambda key: 1,
                         on_removal=lambda *args: None)
        c.write_behind(lambda writes: None, dead_letter=lambda write, error: None)
        c["k"] = 1
        assert c.get("k") == 1 and c.get_or_load("j") == 1
        ref = weakref.ref(c)
        del c
        assert ref() is None  # no reference cycle keeps it (and its memory) alive
    finally:
        gc.enable()


def test_a_lookup_kept_after_its_cache_was_collected_raises_closed():
    # get, get_or_load and fetch are per-cache closures that do not keep the
    # cache alive (that would be a cycle); used after the cache is gone they
    # must refuse, not pass the freed native handle to the library.
    import weakref
    gc.disable()
    try:
        c = larder.Cache(max_bytes=1 << 20, loader=lambda key: b"v")
        c["k"] = b"v"
        get, get_or_load, fetch = c.get, c.get_or_load, c.fetch
        ref = weakref.ref(c)
        del c
        assert ref() is None
        for lookup in (get, get_or_load, fetch):
            with pytest.raises(larder.Closed):
                lookup("k")
    finally:
        gc.enable()


def test_a_cache_dropped_during_a_load_lives_until_the_call_returns():
    # The calling thread holds only the bound lookup, and the main thread
    # drops the last reference to the cache while the loader runs.
    import weakref
    loading, release, results = threading.Event(), threading.Event(), []

    def loader(key):
        loading.set()
        release.wait(5)
        return b"loaded"

    c = larder.Cache(max_bytes=1 << 20)
    get_or_load = c.get_or_load
    ref = weakref.ref(c)
    t = threading.Thread(target=lambda: results.append(get_or_load("k", loader)))
    t.start()
    assert loading.wait(5)
    del c
    release.set()
    t.join(5)
    assert results == [b"loaded"]
    del get_or_load, t
    gc.collect()
    assert ref() is None
