"""Item 6 of the issue: Cache.get no slower than cachetools.LRUCache.get.

The benchmark (python -m larder.bench) interleaves the contenders and keeps
each one's best round, which keeps the comparison fair on a shared machine;
the bound below still allows 25% for noise (the README gives the measured
ratios)."""
import json
import subprocess
import sys

import pytest

cachetools = pytest.importorskip("cachetools")


def test_the_benchmark_prints_the_ratios_and_get_keeps_up_with_lru_cache():
    out = subprocess.run([sys.executable, "-m", "larder.bench", "--quick", "--json"],
                         check=True, capture_output=True, text=True).stdout
    best = json.loads(out)
    ratio = best["larder.Cache.get"] / best["cachetools.LRUCache.get"]
    assert ratio < 1.25, best
    assert best["@larder.cached hit"] < 2000, best  # nanoseconds
    text = subprocess.run([sys.executable, "-m", "larder.bench", "--quick", "--keys", "1000"],
                          check=True, capture_output=True, text=True).stdout
    assert "vs LRUCache" in text and "cachetools.TTLCache.get+Lock" in text
