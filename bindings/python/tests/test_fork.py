"""Item 7 of the issue: fork()."""
import os
import threading

import larder


def _in_child(fn):
    """Runs fn in a forked child; returns its exit status (fn's int)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_parents_cache_is_refused_in_the_child_with_the_fix_named():
    c = larder.Cache(max_bytes=1 << 20, loader=lambda key: b"loaded")
    c["k"] = b"v"
    wb = c.write_behind(lambda writes: None)

    def child():
        operations = [lambda: c.get("k"), lambda: c["k"], lambda: c.set("k", b"x"),
                      lambda: "k" in c, lambda: len(c), lambda: list(c), lambda: c.items(),
                      lambda: c.get_or_load("k"), lambda: c.stats(),
                      lambda: c.invalidate_prefix("k"), lambda: wb.put("k", b"v")]
        for i, operation in enumerate(operations):
            try:
                operation()
                return 10 + i
            except larder.Forked as e:
                if "fork" not in str(e) or "create a new larder.Cache" not in str(e):
                    return 40 + i
        if "forked" not in repr(c):
            return 3
        c.close()  # returns at once; frees nothing of the parent's
        return 0

    assert _in_child(child) == 0
    assert c["k"] == b"v"  # the parent is unaffected
    wb.put("after", b"fork")
    wb.flush(timeout=5)


def test_the_child_uses_caches_of_its_own_while_parent_threads_were_busy(tmp_path):
    c = larder.Cache(max_bytes=1 << 20)
    stop = threading.Event()

    def busy():  # threads inside the library at the moment of the fork
        i = 0
        while not stop.is_set():
            c[f"k{i % 100}"] = b"v"
            c.get(f"k{(i * 7) % 100}")
            c.get_or_load(f"load{i % 10}", lambda key: b"x")
            i += 1

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        def child():
            own = larder.Cache(max_bytes=1 << 20, serializer="pickle",
                               loader=lambda key: {"key": key})
            own["a"] = [1, 2]
            if own["a"] != [1, 2] or own.get_or_load("b") != {"key": "b"}:
                return 2
            got = []
            with own.write_behind(got.extend, journal_dir=tmp_path, max_delay=0.001) as wb:
                wb.put("w", "written")
                wb.flush(timeout=5)
            if [(w.key, w.value) for w in got] != [("w", "written")]:
                return 3
            return 0

        for _ in range(3):
            assert _in_child(child) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_a_decorated_function_starts_a_new_cache_in_the_child():
    calls = []

    @larder.cached
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9

    def child():
        if square(3) != 9 or calls != [3, 3]:  # computed again: a new, empty cache
            return 2
        if square(3) != 9 or calls != [3, 3] or square.cache_info().hits != 1:
            return 3
        return 0

    assert _in_child(child) == 0
    assert square(3) == 9 and calls == [3]  # the parent's cache is intact
