'use strict';
// Writing to a store: write-through (writeMethod) and write-behind
// (writeBehind: batches, coalescing, retries, dead letters, a journal).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const pkg = require('../test-support').pkg;
const { LarderCache } = require(pkg);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms = 3000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(5);
  }
}

test('write-through: the store first, the cache only if it succeeded', async () => {
  const store = new Map();
  let fail = false;
  const c = new LarderCache({
    max: 100,
    writeMethod: async (k, v) => {
      await sleep(5);
      if (fail) throw new Error('store down');
      if (v === undefined) store.delete(k); else store.set(k, v);
    },
  });
  await c.write('a', { n: 1 });
  assert.deepStrictEqual(store.get('a'), { n: 1 });
  assert.deepStrictEqual(c.get('a'), { n: 1 });
  fail = true;
  await assert.rejects(c.write('a', { n: 2 }), /store down/);
  assert.deepStrictEqual(c.get('a'), { n: 1 });  // unchanged
  fail = false;
  await c.write('a', undefined);  // deletes through
  assert.strictEqual(store.has('a'), false);
  assert.strictEqual(c.has('a'), false);
});

test('write-through: writes of one key run one at a time, the last one wins', async () => {
  const order = [];
  const c = new LarderCache({
    max: 100,
    writeMethod: async (k, v) => { order.push(`start ${v}`); await sleep(v === 1 ? 30 : 1); order.push(`end ${v}`); },
  });
  await Promise.all([c.write('k', 1), c.write('k', 2), c.write('other', 3)]);
  assert.deepStrictEqual(order.filter((e) => !e.endsWith('3')), ['start 1', 'end 1', 'start 2', 'end 2']);
  assert.strictEqual(c.get('k'), 2);
});

test('write-behind: the cache now, the store in coalesced batches', async () => {
  const batches = [];
  const c = new LarderCache({
    max: 100,
    writeBehind: { writeBatch: async (writes) => { batches.push(writes); }, maxDelay: 60000 },
  });
  await c.write('a', 1);
  await c.write('a', 2);  // coalesces with the first
  await c.write('b', Buffer.from('bytes'));
  await c.write('gone', undefined);
  assert.strictEqual(c.get('a'), 2);  // read-your-writes at once
  await c.flush();
  const all = batches.flat();
  assert.deepStrictEqual(all.map((w) => [w.key, w.value, w.delete]),
                         [['a', 2, false], ['b', Buffer.from('bytes'), false], ['gone', undefined, true]]);
  assert.ok(all.every((w) => w.attempt === 1 && w.replayed === false && w.sequence > 0));
  const s = c.stats().writeBehind;
  assert.strictEqual(s.delivered, 3);
  assert.strictEqual(s.coalesced, 1);
  await c.close();
});

test('write-behind: failures retry, then go to the dead-letter callback', async () => {
  let attempts = 0;
  const dead = [];
  const c = new LarderCache({
    max: 100,
    writeBehind: {
      writeBatch: async () => { attempts += 1; throw new Error('store down'); },
      deadLetter: (w, error) => dead.push([w.key, w.value, w.attempt, error]),
      maxDelay: 1, maxAttempts: 3, retryDelay: 1, retryMaxDelay: 2,
    },
  });
  await c.write('k', 'v');
  await c.flush();
  await until(() => dead.length === 1);
  assert.strictEqual(attempts, 3);
  assert.deepStrictEqual(dead, [['k', 'v', 3, 'store down']]);
  assert.strictEqual(c.stats().writeBehind.deadLetters, 1);
  await c.close();
});

test('write-behind: a full queue throws Busy instead of blocking the event loop', async () => {
  let release;
  const held = new Promise((r) => { release = r; });
  const c = new LarderCache({
    max: 100,
    writeBehind: { writeBatch: () => held, maxQueue: 2, maxDelay: 1 },
  });
  await c.write('a', 1);
  await sleep(20);  // a is being written (held): it counts until delivered
  await c.write('b', 1);
  await assert.rejects(c.write('c', 1), (e) => e.name === 'Busy');
  assert.strictEqual(c.stats().writeBehind.rejected, 1);
  release();
  await c.close();  // drains
});

test('write-behind with a journal: writes survive a process that dies before delivering', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-journal-'));
  try {
    // The first process accepts writes and exits at once (no delivery: its
    // store always fails); the second replays them from the journal.
    const first = spawnSync(process.execPath, ['-e', `
      const { LarderCache } = require(${JSON.stringify(pkg)});
      const c = new LarderCache({ max: 100, writeBehind: {
        writeBatch: () => { throw new Error('unreachable store'); },
        maxDelay: 10000, journal: { dir: ${JSON.stringify(dir)}, sync: 'every-write' } } });
      (async () => { await c.write('user:1', { name: 'Ada' }); await c.write('user:2', 'Bob'); process.exit(0); })();`],
    { encoding: 'utf8', timeout: 20000 });
    assert.strictEqual(first.status, 0, first.stderr);
    const second = spawnSync(process.execPath, ['-e', `
      const { LarderCache } = require(${JSON.stringify(pkg)});
      const got = [];
      const c = new LarderCache({ max: 100, writeBehind: {
        writeBatch: (ws) => { for (const w of ws) got.push([w.key, w.value, w.replayed]); },
        maxDelay: 1, journal: { dir: ${JSON.stringify(dir)} } } });
      c.flush().then(() => c.close()).then(() => console.log(JSON.stringify(got)));`],
    { encoding: 'utf8', timeout: 20000 });
    assert.strictEqual(second.status, 0, second.stderr);
    assert.deepStrictEqual(JSON.parse(second.stdout),
                           [['user:1', { name: 'Ada' }, true], ['user:2', 'Bob', true]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('write-behind: a worker that ends without close() does not hang or crash the process', () => {
  const r = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`
      const { LarderCache } = require(${JSON.stringify(pkg)});
      const c = new LarderCache({ max: 10, writeBehind: { writeBatch: () => new Promise(() => {}), maxDelay: 1 } });
      c.write('k', 'v').then(() => setTimeout(() => process.exit(0), 30));\`, { eval: true });
    w.on('exit', () => console.log('worker gone'));`], { encoding: 'utf8', timeout: 20000 });
  assert.strictEqual(r.signal, null, r.stderr);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /worker gone/);
});

test('write() without a writer says so', async () => {
  const c = new LarderCache({ max: 10 });
  await assert.rejects(c.write('k', 'v'), TypeError);
  assert.throws(() => new LarderCache({ max: 1, writeMethod: () => {}, writeBehind: { writeBatch() {} } }), TypeError);
  assert.throws(() => new LarderCache({ max: 1, writeBehind: { writeBatch() {}, flushEvery: 1 } }), /unknown option/);
});

test('write-behind: a worker terminated during a flush neither hangs nor crashes the process', () => {
  const r = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`
      const { parentPort } = require('node:worker_threads');
      const { LarderCache } = require(${JSON.stringify(pkg)});
      const c = new LarderCache({ max: 10, writeBehind: {
        writeBatch: () => new Promise(() => {}), maxDelay: 1, maxAttempts: 2, retryDelay: 1 } });
      c.write('k', 'v').then(() => { c.flush(); setTimeout(() => parentPort.postMessage('flushing'), 20); });\`,
      { eval: true });
    w.on('message', () => w.terminate());
    w.on('exit', () => console.log('worker gone'));`], { encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(r.signal, null, r.stderr);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /worker gone/);
});
