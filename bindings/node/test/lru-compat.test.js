'use strict';
// LarderCache against lru-cache itself: each scenario runs on both and the
// observable results must match (lru-cache is a devDependency: npm ci).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');

const pkg = require('../test-support').pkg;
const { LarderCache } = require(pkg);
const { LRUCache } = require('lru-cache');

// A clock both caches read (lru-cache's `perf` option).
function clock() {
  let now = 1000;
  return { perf: { now: () => now }, advance: (ms) => { now += ms; } };
}

// Runs scenario(cache, extra) on lru-cache and on LarderCache with the same
// options; returns both results.
function both(options, scenario) {
  const out = [];
  for (const Cache of [LRUCache, LarderCache]) {
    const c = clock();
    const o = typeof options === 'function' ? options(c) : options;
    const extra = { clock: c, log: [] };
    const withLog = { ...o };
    if (o.dispose === true) withLog.dispose = (v, k, r) => extra.log.push(['dispose', k, v, r]);
    if (o.disposeAfter === true) withLog.disposeAfter = (v, k, r) => extra.log.push(['after', k, v, r]);
    if (o.onInsert === true) withLog.onInsert = (v, k, r) => extra.log.push(['insert', k, v, r]);
    if (Cache === LRUCache && o.perf) withLog.ttlResolution = 0;
    out.push(scenario(new Cache(withLog), extra));
  }
  return out;
}

function same(options, scenario) {
  const [expected, actual] = both(options, scenario);
  assert.deepStrictEqual(actual, expected);
  return actual;
}

async function sameAsync(options, scenario) {
  const out = [];
  for (const Cache of [LRUCache, LarderCache]) {
    const c = clock();
    const o = typeof options === 'function' ? options(c) : options;
    const extra = { clock: c, log: [] };
    const withLog = { ...o };
    if (o.dispose === true) withLog.dispose = (v, k, r) => extra.log.push(['dispose', k, v, r]);
    if (Cache === LRUCache && o.perf) withLog.ttlResolution = 0;
    out.push(await scenario(new Cache(withLog), extra));
  }
  assert.deepStrictEqual(out[1], out[0]);
  return out[1];
}

test('iteration is most recently used first, reverse forms least first', () => {
  same({ max: 10 }, (c) => {
    for (const k of ['a', 'b', 'c', 'd']) c.set(k, k.toUpperCase());
    c.get('b');
    c.set('c', 'C2');
    c.peek('a');  // no use
    c.has('a');   // no use
    const seen = [];
    c.forEach((v, k, self) => seen.push([k, v, self === c]));
    const rseen = [];
    c.rforEach((v, k) => rseen.push(k));
    return {
      keys: [...c.keys()], values: [...c.values()], entries: [...c.entries()], iter: [...c],
      rkeys: [...c.rkeys()], rvalues: [...c.rvalues()], rentries: [...c.rentries()], seen, rseen,
      find: c.find((v) => v.startsWith('C')), size: c.size,
    };
  });
});

test('max N keeps N entries and the N+1st evicts exactly the least recently used', () => {
  for (const max of [1, 2, 3, 10]) {
    same({ max, dispose: true }, (c, { log }) => {
      for (let i = 0; i < max; i++) c.set(`k${i}`, i);
      const full = c.size;
      c.get('k0');  // k0 is now the most recently used
      c.set('new', -1);
      return { full, size: c.size, keys: [...c.keys()], log };
    });
  }
});

// The engine's bounds are the whole cache's, and a cache of up to 1,024
// entries is one stripe by default: the same evictions as lru-cache.
for (const max of [100, 1000]) {
  test(`max ${max}: exact with the engine's default stripes`,
       () => {
         same({ max, dispose: true }, (c, { log }) => {
           for (let i = 0; i < max; i++) c.set(`key-${i}`, i);
           const full = c.size;
           for (let i = 0; i < max; i += 2) c.get(`key-${i}`);  // the odd ones are older
           c.set('one more', 0);
           return { full, size: c.size, evicted: log.map((e) => e[1]) };
         });
       });
}

test('with one stripe max is exact at any size', () => {
  const c = new LarderCache({ max: 1000, stripes: 1 });
  for (let i = 0; i < 1000; i++) c.set(`key-${i}`, i);
  assert.strictEqual(c.size, 1000);
  for (let i = 0; i < 1000; i += 2) c.get(`key-${i}`);
  c.set('one more', 0);
  assert.strictEqual(c.size, 1000);
  assert.strictEqual(c.has('key-1'), false);  // the least recently used
  assert.strictEqual(c.has('key-3'), true);
  assert.strictEqual(c.has('key-0'), true);
});

test('dispose and disposeAfter: evict, set, delete, and the same value set twice', () => {
  same({ max: 2, dispose: true, disposeAfter: true }, (c, { log }) => {
    c.set('a', 1).set('b', 2);
    c.set('a', 1);        // same value: lru-cache disposes nothing
    c.set('a', 11);       // replaced: 'set'
    c.set('c', 3);        // evicts b: 'evict'
    c.delete('a');        // 'delete'
    c.set('c', undefined);  // set(undefined) is delete
    c.set('d', 4).set('e', 5);
    c.clear();            // 'delete' for each
    return log.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
  });
});

test('noDisposeOnSet, per cache and per call', () => {
  same({ max: 5, dispose: true, noDisposeOnSet: true }, (c, { log }) => {
    c.set('a', 1);
    c.set('a', 2);
    c.set('a', 3, { noDisposeOnSet: false });
    return log;
  });
  same({ max: 5, dispose: true }, (c, { log }) => {
    c.set('a', 1);
    c.set('a', 2, { noDisposeOnSet: true });
    c.set('a', 3);
    return log;
  });
});

test('onInsert: add, replace, update', () => {
  same({ max: 5, onInsert: true }, (c, { log }) => {
    c.set('a', 'x');
    c.set('a', 'y');
    c.set('a', 'y');
    return log;
  });
});

test('ttl, getRemainingTTL and expiry with a shared clock', () => {
  same((c) => ({ max: 10, ttl: 100, perf: c.perf }), (c, { clock: k }) => {
    c.set('a', 1);
    c.set('b', 2, { ttl: 300 });
    c.set('forever', 3, { ttl: 0 });
    k.advance(40);
    const r1 = [c.getRemainingTTL('a'), c.getRemainingTTL('b'), c.getRemainingTTL('forever'),
                c.getRemainingTTL('none')];
    k.advance(70);
    const r2 = [c.get('a'), c.has('a'), c.peek('a'), c.get('b'), c.get('forever')];
    return { r1, r2 };
  });
});

test('allowStale and noDeleteOnStaleGet', () => {
  same((c) => ({ max: 10, ttl: 50, perf: c.perf, allowStale: true }), (c, { clock: k }) => {
    c.set('a', 'old');
    k.advance(60);
    const first = c.get('a');   // stale, returned, deleted
    const second = c.get('a');
    return [first, second, c.size];
  });
  same((c) => ({ max: 10, ttl: 50, perf: c.perf, noDeleteOnStaleGet: true }), (c, { clock: k }) => {
    c.set('a', 'old');
    k.advance(60);
    return [c.get('a'), c.get('a', { allowStale: true }), c.peek('a', { allowStale: true }),
            c.has('a'), c.size];
  });
});

test('updateAgeOnGet and updateAgeOnHas restart the TTL', () => {
  same((c) => ({ max: 10, ttl: 100, perf: c.perf, updateAgeOnGet: true }), (c, { clock: k }) => {
    c.set('a', 1);
    c.set('b', 2, { ttl: 30 });
    k.advance(80);
    c.get('a');
    k.advance(25);
    c.get('b');
    k.advance(80);
    return [c.get('a'), c.getRemainingTTL('a'), c.get('b')];
  });
  same((c) => ({ max: 10, ttl: 100, perf: c.perf, updateAgeOnHas: true }), (c, { clock: k }) => {
    c.set('a', 1);
    k.advance(80);
    c.has('a');
    k.advance(80);
    return [c.get('a'), c.getRemainingTTL('a')];
  });
});

test('noUpdateTTL keeps the old expiry on a replace', () => {
  same((c) => ({ max: 10, ttl: 100, perf: c.perf, noUpdateTTL: true }), (c, { clock: k }) => {
    c.set('a', 1);
    k.advance(60);
    c.set('a', 2);
    return [c.getRemainingTTL('a'), c.get('a')];
  });
});

test('sizeCalculation with maxSize: entries weighed by the function', () => {
  same({ maxSize: 10, sizeCalculation: (v) => v.length, dispose: true }, (c, { log }) => {
    c.set('a', 'xxx');
    c.set('b', 'xxxx');
    c.set('c', 'xxx');   // 10: full
    const full = [c.size, c.calculatedSize];
    c.set('d', 'xx');    // evicts a
    c.set('big', 'x'.repeat(11));  // larger than maxSize: not stored
    c.set('b', 'y'.repeat(20));    // too big: not stored, the old b goes ('set')
    return { full, after: [c.size, c.calculatedSize], keys: [...c.keys()], log };
  });
  same({ maxSize: 100 }, (c) => {
    const errors = [];
    try { c.set('a', 'v'); } catch (e) { errors.push(e.constructor.name, e.message); }
    c.set('a', 'v', { size: 7 });
    try { c.set('b', 'v', { size: 0 }); } catch (e) { errors.push(e.constructor.name); }
    return [errors, c.calculatedSize];
  });
  same({ max: 100, maxSize: 100, sizeCalculation: () => -1 }, (c) => {
    try { c.set('a', 'v'); return 'stored'; } catch (e) { return [e.constructor.name, e.message]; }
  });
});

test('maxEntrySize refuses big entries without evicting others', () => {
  same({ maxSize: 100, maxEntrySize: 10, sizeCalculation: (v) => v.length, dispose: true },
       (c, { log }) => {
         c.set('a', 'x'.repeat(9));
         c.set('b', 'x'.repeat(11));
         c.set('a', 'y'.repeat(11));
         return { keys: [...c.keys()], log, size: c.calculatedSize };
       });
});

test('purgeStale removes the expired entries (reason expire)', () => {
  same((c) => ({ max: 10, ttl: 50, perf: c.perf, dispose: true }), (c, { clock: k, log }) => {
    c.set('a', 1).set('b', 2, { ttl: 500 });
    k.advance(60);
    const purged = c.purgeStale();
    return [purged, c.purgeStale(), log, [...c.keys()]];
  });
});

test('pop evicts the least recently used', () => {
  same({ max: 5, dispose: true }, (c, { log }) => {
    c.set('a', 1).set('b', 2).set('c', 3);
    c.get('a');
    return [c.pop(), c.pop(), [...c.keys()], log, new LRUCache({ max: 1 }).pop()];
  });
});

test('info, dump and load', () => {
  same((c) => ({ max: 10, ttl: 100, perf: c.perf }), (c, { clock: k }) => {
    c.set('a', 1).set('b', { x: 2 }, { ttl: 0 });
    k.advance(30);
    const info = c.info('a');
    const now = Date.now();
    // What a load() would make of each entry: its value and time left (about
    // 70 ms; compared as "more than 50" because dump's start times come from
    // the wall clock, and a millisecond may pass between the two caches).
    const dumped = c.dump().map(([key, e]) => [key, e.value, e.ttl ? e.ttl - (now - e.start) > 50 : e.ttl]);
    return [info.value, info.ttl, c.info('b').value, c.info('zz'), dumped];
  });
  same({ max: 10 }, (c) => {
    c.set('a', 1).set('b', 2).get('a');
    const copy = new c.constructor({ max: 10 });
    copy.load(c.dump());
    return [...copy.entries()];
  });
});

test('fetch without a fetchMethod resolves like get', async () => {
  await sameAsync({ max: 10 }, async (c) => {
    c.set('a', 'A');
    return [await c.fetch('a'), await c.fetch('missing')];
  });
});

test('fetch: staleValue, forceRefresh, a fetchMethod returning undefined', async () => {
  await sameAsync((c) => ({
    max: 10, ttl: 100, perf: c.perf, dispose: true,
    fetchMethod: async (k, stale) => (k === 'gone' ? undefined : `${k}:${stale ?? 'none'}`),
  }), async (c, { clock: k, log }) => {
    const a1 = await c.fetch('a');
    k.advance(150);  // stale
    const a2 = await c.fetch('a');
    const forced = await c.fetch('a', { forceRefresh: true });
    const gone = await c.fetch('gone');
    return [a1, a2, forced, gone, c.has('gone'), log];
  });
});

// lru-cache's documentation says a fetchMethod returning undefined deletes
// the item (reason 'fetch'); its code puts a value that was there back
// instead. LarderCache does what the documentation says.
test('a refresh whose fetchMethod finds nothing deletes the value (reason fetch)', async () => {
  const log = [];
  const c = new LarderCache({ max: 10, dispose: (v, k, r) => log.push([k, v, r]), fetchMethod: async () => undefined });
  c.set('gone', 'here');
  assert.strictEqual(await c.fetch('gone', { forceRefresh: true }), undefined);
  assert.strictEqual(c.has('gone'), false);
  assert.deepStrictEqual(log, [['gone', 'here', 'fetch']]);
});

test('fetch: allowStaleOnFetchRejection answers with the stale value, or undefined', async () => {
  await sameAsync({ max: 10, allowStaleOnFetchRejection: true, fetchMethod: async () => { throw new Error('x'); } },
                  async (c) => [await c.fetch('a')]);
  await sameAsync((c) => ({
    max: 10, ttl: 100, perf: c.perf, allowStaleOnFetchRejection: true,
    fetchMethod: async (k, stale) => {
      if (stale !== undefined) throw new Error('down');
      return 'first';
    },
  }), async (c, { clock: k }) => {
    const first = await c.fetch('a');
    k.advance(150);
    const second = await c.fetch('a');
    return [first, second];
  });
});

test('fetch: a rejection deletes the stale value unless noDeleteOnFetchRejection', async () => {
  for (const noDeleteOnFetchRejection of [false, true]) {
    await sameAsync((c) => ({
      max: 10, ttl: 100, perf: c.perf, noDeleteOnFetchRejection, allowStale: false,
      fetchMethod: async (k, stale) => { if (stale) throw new Error('down'); return 'v'; },
    }), async (c, { clock: k }) => {
      await c.fetch('a');
      k.advance(150);
      const err = await c.fetch('a').then(() => 'resolved', (e) => e.message);
      return [err, c.peek('a', { allowStale: true })];
    });
  }
});

test('fetch with allowStale returns the stale value and refreshes behind it', async () => {
  let calls = 0;
  let releaseRefresh;
  const refreshHeld = new Promise((r) => { releaseRefresh = r; });
  const c = new LarderCache({
    max: 10, ttl: 30, allowStale: true,
    // The refresh (the second load) waits for the test, so "still refreshing"
    // below holds however late the test's own callbacks run.
    fetchMethod: async (k) => { calls += 1; if (calls === 2) await refreshHeld; return `${k}${calls}`; },
  });
  assert.strictEqual(await c.fetch('a'), 'a1');
  await new Promise((r) => setTimeout(r, 50));
  assert.strictEqual(await c.fetch('a'), 'a1');  // stale, at once
  assert.strictEqual(await c.fetch('a'), 'a1');  // still refreshing: no second load
  const putsBefore = c.stats().puts;
  releaseRefresh();
  // Wait for the refresh to store a2, but not by polling with get: a stale
  // get deletes the entry, which supersedes the refresh. a2 may be stale by
  // then: allowStale.
  for (const end = Date.now() + 5000; c.stats().puts === putsBefore && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.strictEqual(c.get('a'), 'a2');
  assert.strictEqual(calls, 2);
});

test('memo computes once and stores', () => {
  same({ max: 10, memoMethod: (k) => `memo ${k}` }, (c) => [c.memo('a'), c.get('a'), c.memo('a')]);
});

test('forceFetch rejects instead of resolving undefined', async () => {
  const c = new LarderCache({ max: 10, fetchMethod: async () => undefined });
  await assert.rejects(c.forceFetch('a'));
});

test('the option fields are there, as on lru-cache', () => {
  same({ max: 7, ttl: 5, allowStale: true, updateAgeOnGet: true, noDisposeOnSet: true }, (c) => [
    c.max, c.ttl, c.allowStale, c.updateAgeOnGet, c.noDisposeOnSet, c.noUpdateTTL,
    c.updateAgeOnHas, c.noDeleteOnStaleGet, c.maxSize, typeof c.perf.now,
  ]);
});

test('changing a setting on the instance changes later calls, as on lru-cache', () => {
  same((c) => ({ max: 10, ttl: 50, perf: c.perf }), (c, { clock: k }) => {
    c.set('a', 1);
    k.advance(60);
    c.allowStale = true;
    c.noDeleteOnStaleGet = true;
    const stale = c.get('a');
    c.allowStale = false;
    return [stale, c.get('a'), c.allowStale];
  });
  const c = new LarderCache({ max: 10 });  // the fast path (no perf clock) too
  c.set('a', 1, { ttl: 1 });
  const until = Date.now() + 20;
  while (Date.now() < until) { /* let it expire */ }
  c.noDeleteOnStaleGet = true;
  c.allowStale = true;
  assert.strictEqual(c.get('a'), 1);
  c.allowStale = false;
  assert.strictEqual(c.get('a'), undefined);
});

test('ttlAutopurge removes expired entries without a read (reason expire)', async () => {
  const log = [];
  const c = new LarderCache({ ttl: 20, ttlAutopurge: true, dispose: (v, k, r) => log.push([k, r]) });
  c.set('a', 1);
  await new Promise((r) => setTimeout(r, 120));
  assert.deepStrictEqual(log, [['a', 'expire']]);
  assert.strictEqual(c.size, 0);
  await c.close();
});
