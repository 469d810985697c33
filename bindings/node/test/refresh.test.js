'use strict';
// fetch() beyond lru-cache: stale-while-revalidate with a grace period,
// stale-if-error, early refresh (XFetch), negative caching, aborts.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');

const pkg = require('../test-support').pkg;
const { LarderCache } = require(pkg);

function clock() {
  let now = 1000;
  return { perf: { now: () => now }, advance: (ms) => { now += ms; } };
}
const tick = () => new Promise((r) => setImmediate(r));

test('staleWhileRevalidate serves the old value within the grace, refreshing once', async () => {
  const k = clock();
  let calls = 0;
  let release;
  const c = new LarderCache({
    max: 10, ttl: 100, staleWhileRevalidate: 50, perf: k.perf,
    fetchMethod: async (key, stale) => {
      calls += 1;
      if (stale !== undefined) await new Promise((r) => { release = r; });
      return `v${calls}`;
    },
  });
  assert.strictEqual(await c.fetch('a'), 'v1');
  k.advance(120);  // 20 ms into the grace
  assert.strictEqual(await c.fetch('a'), 'v1');
  assert.strictEqual(await c.fetch('a'), 'v1');  // the refresh is under way: no second
  assert.strictEqual(calls, 2);
  release();
  await tick(); await tick();
  assert.strictEqual(await c.fetch('a'), 'v2');
  k.advance(200);  // beyond the grace: the caller waits for the load
  const p = c.fetch('a');
  await tick();
  release();
  assert.strictEqual(await p, 'v3');
});

test('staleIfError answers every caller with the old value when the load fails', async () => {
  const k = clock();
  let fail = false;
  const c = new LarderCache({
    max: 10, ttl: 100, staleIfError: 1000, perf: k.perf,
    fetchMethod: async () => { if (fail) { await tick(); throw new Error('down'); } return 'good'; },
  });
  assert.strictEqual(await c.fetch('a'), 'good');
  k.advance(150);
  fail = true;
  assert.deepStrictEqual(await Promise.all([c.fetch('a'), c.fetch('a')]), ['good', 'good']);
  k.advance(2000);  // past the grace: the failure shows
  await assert.rejects(c.fetch('a'), /down/);
});

test('early refresh (refreshBeta) reloads a hot key before it expires', async () => {
  const k = clock();
  let calls = 0;
  const c = new LarderCache({
    max: 10, ttl: 1000, refreshBeta: 1, seed: 42, perf: k.perf,
    // Each load takes 200 ms: the entry remembers it (XFetch's delta).
    fetchMethod: async () => { calls += 1; k.advance(200); return `v${calls}`; },
  });
  assert.strictEqual(await c.fetch('a'), 'v1');
  k.advance(999);  // 1 ms left of a 1 s load time: a refresh is all but certain
  assert.strictEqual(await c.fetch('a'), 'v1');  // answered at once
  await tick(); await tick();
  assert.strictEqual(calls, 2);
  assert.strictEqual(c.get('a'), 'v2');
  assert.ok(c.getRemainingTTL('a') > 900);
  const plain = new LarderCache({ max: 10, ttl: 1000, perf: k.perf, fetchMethod: async () => 'x' });
  await plain.fetch('b');
  k.advance(999);
  await plain.fetch('b');
  assert.strictEqual(plain.stats().refreshesStarted, 0);  // off unless asked for
});

test('negativeTtl remembers a fetchMethod that found nothing', async () => {
  let calls = 0;
  const c = new LarderCache({ max: 10, negativeTtl: 10000, fetchMethod: async () => { calls += 1; return undefined; } });
  assert.strictEqual(await c.fetch('missing'), undefined);
  assert.strictEqual(await c.fetch('missing'), undefined);
  assert.strictEqual(calls, 1);
  c.set('missing', 'now here');
  assert.strictEqual(await c.fetch('missing'), 'now here');
});

test('an aborted signal rejects the caller; allowStaleOnFetchAbort gives the stale value', async () => {
  const k = clock();
  let release;
  const c = new LarderCache({
    max: 10, ttl: 100, perf: k.perf,
    fetchMethod: async (key, stale, { signal }) => {
      await new Promise((r) => { release = r; });
      return signal.aborted ? 'too late' : 'fresh';
    },
  });
  const first = c.fetch('a');
  await tick();
  release();
  assert.strictEqual(await first, 'fresh');
  k.advance(150);
  const ac = new AbortController();
  const p = c.fetch('a', { signal: ac.signal });
  await tick();
  ac.abort(new Error('gave up'));
  await assert.rejects(p, /gave up/);
  release();
  // The key is free again at once.
  const again = c.fetch('a');
  await tick();
  release();
  assert.strictEqual(await again, 'fresh');
  k.advance(150);
  const ac2 = new AbortController();
  const q = c.fetch('a', { signal: ac2.signal, allowStaleOnFetchAbort: true });
  await tick();
  ac2.abort();
  assert.strictEqual(await q, 'fresh');  // the stale value
  release();
});
