'use strict';
// Every path through fetch() completes or abandons its lease at once: a
// value that cannot be stored, a fetchMethod that throws (synchronously or
// not) never leaves the other callers of the key, or later fetches, waiting.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');

const pkg = require('../test-support').pkg;
const { LarderCache } = require(pkg);

// Rejects if p has not settled within ms: a hang fails the test instead of
// stalling the suite.
function settlesWithin(p, ms = 2000) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms: the lease leaked`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

// What the V8 serializer cannot copy (BigInts and circular objects it can).
const unstorable = [
  ['a function', () => () => 1],
  ['a Symbol', () => Symbol('s')],
  ['an object holding a function', () => ({ f() {} })],
  ['an object holding a Symbol', () => ({ s: Symbol('s') })],
  ['a WeakMap', () => new WeakMap()],
];

for (const [what, make] of unstorable) {
  test(`fetchMethod resolving to ${what}: every caller settles, the next fetch loads again`, async () => {
    let calls = 0;
    let gate;
    const opened = new Promise((r) => { gate = r; });
    const c = new LarderCache({
      max: 100,
      fetchMethod: async (key) => {
        calls += 1;
        if (calls === 1) await opened;  // hold the load while others join it
        return calls === 1 ? make() : `fine ${key}`;
      },
    });
    const leader = c.fetch('k');
    const joiners = [c.fetch('k'), c.fetch('k')];
    gate();
    const settled = await settlesWithin(Promise.allSettled([leader, ...joiners]));
    assert.strictEqual(settled[0].status, 'rejected');
    assert.ok(settled[0].reason instanceof TypeError || settled[0].reason instanceof Error);
    for (const s of settled.slice(1)) {
      assert.strictEqual(s.status, 'rejected', 'a joiner got a value the leader could not store');
    }
    assert.strictEqual(await settlesWithin(c.fetch('k')), 'fine k');
    assert.strictEqual(calls, 2);
  });
}

test('a fetchMethod that throws synchronously rejects its callers and frees the key', async () => {
  let calls = 0;
  let gate;
  const opened = new Promise((r) => { gate = r; });
  const c = new LarderCache({
    max: 100,
    fetchMethod: (key) => {
      calls += 1;
      if (calls === 1) throw new RangeError(`no ${key}`);
      return opened.then(() => `loaded ${key}`);
    },
  });
  await assert.rejects(settlesWithin(c.fetch('k')), RangeError);
  // The key is free at once: the next caller leads a new load, and callers
  // that arrive while it runs join it.
  const again = [c.fetch('k'), c.fetch('k')];
  gate();
  assert.deepStrictEqual(await settlesWithin(Promise.all(again)), ['loaded k', 'loaded k']);
  assert.strictEqual(calls, 2);
});

test('a fetchMethod that rejects with a non-Error value frees the key', async () => {
  let calls = 0;
  const c = new LarderCache({
    max: 100,
    fetchMethod: async () => {
      calls += 1;
      if (calls === 1) throw undefined;  // eslint-disable-line no-throw-literal
      return 'ok';
    },
  });
  await assert.rejects(settlesWithin(c.fetch('k')));
  assert.strictEqual(await settlesWithin(c.fetch('k')), 'ok');
});

test('a handle closed while it leads a load still completes the load for the others', async () => {
  let gate;
  const opened = new Promise((r) => { gate = r; });
  const c = new LarderCache({ max: 100, fetchMethod: async () => { await opened; return 'late'; } });
  const other = new LarderCache({ handle: c.share(), max: 100, fetchMethod: async () => 'never' });
  const leader = c.fetch('k');
  const joiner = other.fetch('k');
  await c.close();
  gate();
  assert.strictEqual(await settlesWithin(leader), 'late');
  assert.strictEqual(await settlesWithin(joiner), 'late');
  assert.strictEqual(other.get('k'), 'late');
  await other.close();
});

test('a key too long for the engine rejects at once and leaves nothing behind', async () => {
  const c = new LarderCache({ max: 10, fetchMethod: async () => 'v' });
  await assert.rejects(c.fetch('k'.repeat(70000)), (e) => e.name === 'KeyTooLong');
  assert.strictEqual(await settlesWithin(c.fetch('k')), 'v');
});
