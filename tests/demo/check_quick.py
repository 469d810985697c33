#!/usr/bin/env python3
"""larder-demo --quick --json keeps the lesson's promises.

Runs every phase of the demo on a small database and checks the JSON summary
(its last line of output): the cache answers most reads, single-flight sends
exactly one leaderboard query per expiry, no read through a write-through
cache is stale, and nothing acknowledged by a journaled write-behind is lost
when its process is killed. With gnuplot installed, the charts must exist.

usage: check_quick.py path/to/larder-demo
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HIT_RATIO_FLOOR = 0.5  # the quick run measures about 0.75; a cold cache over one second


def main():
    demo = sys.argv[1]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="larder-demo-test-") as tmp:
        args = [demo, "--quick", "--json"]
        charts = os.path.join(tmp, "charts")
        if shutil.which("gnuplot"):
            args += ["--plot", charts]
        env = dict(os.environ, TMPDIR=tmp)
        run = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            print(f"FAIL larder-demo exited with {run.returncode}")
            return 1
        summary = json.loads(run.stdout.strip().splitlines()[-1])

        def get(path):
            node = summary
            for part in path.split("."):
                node = node[part]
            return node

        required = [
            "cache_aside.hit_ratio", "cache_aside.db_queries_saved", "cache_aside.p50_ms",
            "no_cache.p50_ms", "stampede.naive.db_queries", "stampede.single_flight.db_queries",
            "stampede.early_refresh.db_queries", "write_through.stale_reads",
            "crash.acknowledged", "crash.lost", "crash.lost_unjournaled",
        ]
        for path in required:
            try:
                value = get(path)
                check(isinstance(value, (int, float)), f"{path} = {value}")
            except KeyError:
                check(False, f"{path} is in the summary")
        if failures:
            return 1

        check(get("cache_aside.hit_ratio") > HIT_RATIO_FLOOR,
              f"cache-aside hit ratio above {HIT_RATIO_FLOOR}")
        check(0 < get("cache_aside.db_queries_saved") < 1,
              "cache-aside saved a fraction of the database queries")
        check(get("cache_aside.p50_ms") < get("no_cache.p50_ms"),
              "the median read is faster with the cache")
        sf = get("stampede.single_flight")
        check(sf["expiries"] >= 1 and sf["db_queries"] == sf["expiries"],
              f"single-flight: one leaderboard query per expiry "
              f"({sf['db_queries']} queries, {sf['expiries']} expiries)")
        check(get("stampede.naive.db_queries") > sf["db_queries"],
              "the naive cache sent more queries than single-flight")
        for pattern in ("write_through", "invalidate_after_write", "write_behind"):
            check(get(f"{pattern}.stale_reads") == 0, f"{pattern}: no stale read")
            check(get(f"{pattern}.writes") > 0, f"{pattern}: writes happened")
            check(get(f"{pattern}.db_behind_after_flush") == 0,
                  f"{pattern}: the database holds every acknowledged write at the end")
        check(get("crash.acknowledged") > 0, "the crashed child acknowledged writes")
        check(get("crash.lost") == 0, "nothing acknowledged was lost with the journal")
        if "--plot" in args:
            for name in ("overview.svg", "stampede.svg", "overview.png", "stampede.png"):
                path = os.path.join(charts, name)
                check(os.path.isfile(path) and os.path.getsize(path) > 1000, f"chart {name}")
        leftovers = [n for n in os.listdir(tmp) if n.startswith("larder-demo-")]
        check(not leftovers, f"the temporary database was removed ({leftovers})")

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
