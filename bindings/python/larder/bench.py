"""Larder against cachetools and functools, measured in one process.

    python -m larder.bench [--keys 100000] [--rounds 7] [--shared-value] [--quick] [--json]

Fills each cache with the same keys (str, "user:<n>") and values (bytes,
100 of them, one object per key as an application would have; with
--shared-value, one object for every key, which the Python caches then never
touch in memory while Larder still copies each value out), then times get()
of random resident keys, round after round, the contenders interleaved
within each round so that a noisy neighbour slows them alike; each figure is
the best round (nanoseconds per call, loop overhead included, the same for
all). Ratios are against cachetools.LRUCache.get. Also times a hit of
Cache.get_or_load (the cache's loader), and a hit of
@larder.cached against @functools.lru_cache. cachetools is optional
(Debian: python3-cachetools); without it those rows are left out.
"""
import argparse
import functools
import json
import random
import sys
import threading
import time

import larder


def _per_call(fn, keys, rounds_out):
    start = time.perf_counter()
    for key in keys:
        fn(key)
    rounds_out.append((time.perf_counter() - start) / len(keys) * 1e9)


def measure(n_keys=100_000, lookups=100_000, rounds=7, seed=1, shared_value=False):
    """{name: best ns per call}; the caches hold n_keys keys each."""
    rng = random.Random(seed)
    keys = [f"user:{i}" for i in range(n_keys)]
    if shared_value:
        values = [b"v" * 100] * n_keys
    else:
        values = [f"{i:0100d}".encode() for i in range(n_keys)]
    contenders = {}

    by_key = dict(zip(keys, values))
    # The loader never runs (every key is resident): get_or_load's hit path.
    cache = larder.Cache(max_bytes=max(64 << 20, n_keys * 400), loader=by_key.get)
    for key, value in zip(keys, values):
        cache[key] = value
    contenders["larder.Cache.get"] = cache.get
    contenders["larder.Cache.get_or_load hit"] = cache.get_or_load

    try:
        import cachetools
    except ImportError:
        cachetools = None
    if cachetools is not None:
        lru = cachetools.LRUCache(maxsize=n_keys)
        ttl = cachetools.TTLCache(maxsize=n_keys, ttl=3600)
        lock = threading.Lock()
        for key, value in zip(keys, values):
            lru[key] = value
            ttl[key] = value

        def ttl_get(key):
            with lock:
                return ttl.get(key)

        contenders["cachetools.LRUCache.get"] = lru.get
        contenders["cachetools.TTLCache.get+Lock"] = ttl_get
    contenders["dict.get"] = by_key.get

    @larder.cached
    def larder_fn(x):
        return x * 2

    @functools.lru_cache(maxsize=None)
    def lru_fn(x):
        return x * 2

    hot = list(range(100))
    for x in hot:
        larder_fn(x), lru_fn(x)
    contenders["@larder.cached hit"] = larder_fn
    contenders["@functools.lru_cache hit"] = lru_fn

    sample = [rng.choice(keys) for _ in range(lookups)]
    hot_sample = [rng.choice(hot) for _ in range(lookups)]
    results = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            _per_call(fn, hot_sample if name.startswith("@") else sample, results[name])
    return {name: min(times) for name, times in results.items()}


def report(best):
    base = best.get("cachetools.LRUCache.get")
    lines = [f"{'':32} {'ns/call':>9} {'vs LRUCache':>12}"]
    for name, ns in best.items():
        ratio = f"{ns / base:11.2f}x" if base else ""
        lines.append(f"{name:32} {ns:9.0f} {ratio}")
    if "@larder.cached hit" in best:
        lines.append(f"@larder.cached hit / @functools.lru_cache hit: "
                     f"{best['@larder.cached hit'] / best['@functools.lru_cache hit']:.1f}x")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="resident keys")
    parser.add_argument("--lookups", type=int, default=100_000, help="lookups per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--shared-value", action="store_true",
                        help="one value object for every key")
    parser.add_argument("--quick", action="store_true", help="20,000 lookups, 5 rounds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.lookups, args.rounds = 20_000, 5
    best = measure(args.keys, args.lookups, args.rounds, shared_value=args.shared_value)
    if args.json:
        print(json.dumps(best))
    else:
        values = "one shared value" if args.shared_value else "distinct values"
        print(f"larder {larder.version()}, Python {sys.version.split()[0]}, "
              f"{args.keys} resident keys, {values}, best of {args.rounds} rounds")
        print(report(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
