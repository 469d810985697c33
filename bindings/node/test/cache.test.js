'use strict';
// The Node binding, end to end: `node --test bindings/node/test/` with
// LARDER_NODE_PACKAGE pointing at the assembled package (the CTest does this).
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const pkg = require('../test-support').pkg;
const { LarderCache, LarderError, version } = require(pkg);

test('set and get strings, Buffers and structured values', () => {
  const c = new LarderCache({ maxBytes: 1 << 20 });
  c.set('s', 'text').set('b', Buffer.from([0, 255, 7])).set('j', { a: [1, 2], n: null });
  assert.strictEqual(c.get('s'), 'text');
  assert.deepStrictEqual(c.get('b'), Buffer.from([0, 255, 7]));
  assert.deepStrictEqual(c.get('j'), { a: [1, 2], n: null });
  assert.strictEqual(c.get('absent'), undefined);
  assert.strictEqual(c.has('s'), true);
  assert.strictEqual(c.delete('s'), true);
  assert.strictEqual(c.delete('s'), false);
  assert.strictEqual(c.size, 2);
  c.clear();
  assert.strictEqual(c.size, 0);
});

test('max bounds the entries (LRU eviction) and ttl expires them', async () => {
  const c = new LarderCache({ max: 2, stripes: 1, ttl: 0 });
  c.set('a', '1').set('b', '2');
  c.get('a');
  c.set('c', '3');  // evicts b, the least recently used
  assert.strictEqual(c.has('b'), false);
  assert.strictEqual(c.get('a'), '1');
  c.set('long', 'y', { ttl: 60000 });
  assert.ok(c.getRemainingTTL('long') > 0 && c.getRemainingTTL('long') <= 60000);
  c.set('short', 'x', { ttl: 30 });
  await new Promise((r) => setTimeout(r, 80));
  assert.strictEqual(c.get('short'), undefined);
  assert.ok(c.stats().evictions >= 1);
});

test('fetch() loads each key once for all concurrent callers', async () => {
  let calls = 0;
  const c = new LarderCache({
    max: 100,
    fetchMethod: async (key) => {
      calls += 1;
      await new Promise((r) => setTimeout(r, 30));
      return `loaded ${key}`;
    },
  });
  const results = await Promise.all(Array.from({ length: 20 }, () => c.fetch('hot')));
  assert.deepStrictEqual(new Set(results), new Set(['loaded hot']));
  assert.strictEqual(calls, 1);
  assert.strictEqual(await c.fetch('hot'), 'loaded hot');  // now a hit
  assert.strictEqual(calls, 1);
});

test('a failing fetchMethod rejects every waiter and is not cached', async () => {
  let calls = 0;
  const c = new LarderCache({
    max: 100,
    fetchMethod: async () => {
      calls += 1;
      await new Promise((r) => setTimeout(r, 10));
      throw new Error('database down');
    },
  });
  const settled = await Promise.allSettled([c.fetch('k'), c.fetch('k'), c.fetch('k')]);
  assert.ok(settled.every((s) => s.status === 'rejected'));
  assert.match(settled[0].reason.message, /database down/);
  assert.match(settled[1].reason.message, /database down/);
  assert.strictEqual(calls, 1);
  const ok = new LarderCache({ max: 10, fetchMethod: async () => 'fine' });
  assert.strictEqual(await ok.fetch('k'), 'fine');
});

test('hostile inputs throw clear errors', () => {
  const c = new LarderCache({ maxBytes: 4096, stripes: 1 });
  assert.throws(() => c.set('k'.repeat(70000), 'v'), (e) => e instanceof LarderError && e.name === 'KeyTooLong');
  assert.throws(() => c.set({}, 'v'), TypeError);
  assert.throws(() => c.get({}), TypeError);
  assert.throws(() => c.get(null), TypeError);
  assert.throws(() => c.set('k', () => 1), TypeError);
  assert.throws(() => c.set('k', Symbol('s')), TypeError);
  // lru-cache: a value too big to keep is not stored, and the old one goes.
  c.set('k', 'small');
  c.set('k', 'x'.repeat(10000));
  assert.strictEqual(c.get('k'), undefined);
  assert.throws(() => new LarderCache({ maxBytes: -1 }), TypeError);
  assert.throws(() => new LarderCache(), TypeError);
  assert.throws(() => new LarderCache({}), /At least one of max/);
  assert.throws(() => new LarderCache({ max: 1, backgroundFetchSize: 3 }), /does not support 'backgroundFetchSize'/);
  assert.throws(() => new LarderCache({ max: 1, maxAge: 3 }), /unknown option 'maxAge'/);
  assert.throws(() => c.get('k', { status: {} }), /does not support the option 'status'/);
});

test('use after close throws Closed', () => {
  const c = new LarderCache({ max: 10 });
  c.set('k', 'v');
  c.close();
  assert.throws(() => c.get('k'), (e) => e instanceof LarderError && e.name === 'Closed');
  c.close();  // idempotent
});

test('worker_threads share one native cache', async () => {
  const c = new LarderCache({ max: 100 });
  c.set('from-main', 'hello');
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { LarderCache } = require(workerData.pkg);
    const shared = new LarderCache({ handle: workerData.handle });
    shared.set('from-worker', shared.get('from-main') + ' back');
    parentPort.postMessage('done');`;
  const worker = new Worker(code, { eval: true, workerData: { pkg, handle: c.share() } });
  await new Promise((resolve, reject) => { worker.on('message', resolve); worker.on('error', reject); });
  await worker.terminate();
  assert.strictEqual(c.get('from-worker'), 'hello back');
});

test('version is the loaded library', () => {
  assert.strictEqual(version, '0.2.0');
});

test('stats() and metrics() in Prometheus text format', async () => {
  const c = new LarderCache({ max: 10, fetchMethod: async (k) => `v${k}` });
  c.set('a', 1);
  c.get('a');
  c.get('missing');
  await c.fetch('b');
  const s = c.stats();
  assert.strictEqual(s.hits, 1);
  assert.ok(s.misses >= 2);
  assert.strictEqual(s.loads, 1);
  assert.strictEqual(s.entries, 2);
  assert.strictEqual(s.capacityEntries, 10);
  const text = c.metrics({ prefix: 'app_cache_', labels: { cache: 'users', note: 'a "quoted"\nline' } });
  const lines = text.trim().split('\n');
  // Every sample has its HELP and TYPE, and parses as name{labels} value.
  for (let i = 0; i < lines.length; i += 3) {
    const [help, type, sample] = lines.slice(i, i + 3);
    const name = sample.split('{')[0];
    assert.match(help, new RegExp(`^# HELP ${name} \\S`));
    assert.match(type, new RegExp(`^# TYPE ${name} (counter|gauge)$`));
    assert.match(sample, /^app_cache_[a-z_]+\{cache="users",note="a \\"quoted\\"\\nline"\} [0-9.e+-]+$/);
    if (type.endsWith('counter')) assert.match(name, /_total$/);
  }
  assert.ok(lines.includes('app_cache_hits_total{cache="users",note="a \\"quoted\\"\\nline"} 1'));
  assert.ok(text.includes('app_cache_entries{cache="users",note="a \\"quoted\\"\\nline"} 2\n'));
  assert.ok(c.metrics().startsWith('# HELP larder_hits_total'));
});
