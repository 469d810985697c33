'use strict';
// Values keep their type (the V8 serializer's semantics, with fast paths
// for strings, numbers, booleans and Buffers); keys are strings, numbers or
// Buffers, each kind its own.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const v8 = require('node:v8');

const pkg = require('../test-support').pkg;
const { LarderCache } = require(pkg);

const roundTrips = [
  ['an ASCII string', 'plain text'],
  ['an empty string', ''],
  ['a non-ASCII string', 'zürich 東京 🍕'],
  ['a lone high surrogate', 'a\uD800b'],
  ['a lone low surrogate', '\uDC00'],
  ['a reversed pair', '\uDC00\uD800'],
  ['a string holding U+FFFD itself', 'x\uFFFDy'],
  ['a number', 3.25],
  ['zero', 0],
  ['NaN', NaN],
  ['-Infinity', -Infinity],
  ['true', true],
  ['false', false],
  ['null', null],
  ['a BigInt', 12345678901234567890n],
  ['a Date', new Date(1700000000000)],
  ['a Map', new Map([[1, 'one'], ['two', { n: 2 }]])],
  ['a Set', new Set([1, 'a', 3n])],
  ['a RegExp', /ab+c/gi],
  ['an array with holes', [1, , 3]],  // eslint-disable-line no-sparse-arrays
  ['a nested object', { a: { b: [1, { c: 'd' }] }, e: undefined }],
  ['a Float64Array', new Float64Array([1.5, -2])],
  ['a BigInt64Array', new BigInt64Array([1n, -1n])],
  ['an ArrayBuffer', new Uint8Array([9, 8, 7]).buffer],
  ['an Error', new Error('kept')],
];

for (const [what, value] of roundTrips) {
  test(`${what} round-trips as v8.serialize would copy it`, () => {
    const c = new LarderCache({ max: 10 });
    c.set('k', value);
    const expected = typeof value === 'object' && value !== null
      ? v8.deserialize(v8.serialize(value)) : value;
    const got = c.get('k');
    if (value instanceof Error) {
      assert.ok(got instanceof Error);
      assert.strictEqual(got.message, 'kept');
    } else {
      assert.deepStrictEqual(got, expected);
    }
    if (typeof value === 'string') assert.strictEqual(got, value);  // exactly, code unit by code unit
    // The same through iteration, peek and fetch.
    assert.deepStrictEqual([...c.values()][0], got);
    assert.deepStrictEqual(c.peek('k'), got);
  });
}

test('a circular structure keeps its cycle', () => {
  const c = new LarderCache({ max: 10 });
  const o = { name: 'loop' };
  o.self = o;
  c.set('k', o);
  const got = c.get('k');
  assert.strictEqual(got.self, got);
  assert.notStrictEqual(got, o);  // a copy: changing it does not change the cache
});

test('a Uint8Array comes back as a Uint8Array, a Buffer as a Buffer', () => {
  const c = new LarderCache({ max: 10 });
  c.set('u', new Uint8Array([1, 2, 3]));
  c.set('b', Buffer.from([1, 2, 3]));
  assert.strictEqual(c.get('u').constructor, Uint8Array);
  assert.deepStrictEqual([...c.get('u')], [1, 2, 3]);
  assert.ok(Buffer.isBuffer(c.get('b')));
  assert.deepStrictEqual(c.get('b'), Buffer.from([1, 2, 3]));
  // Each get is a copy of its own: writing into it changes nothing cached.
  const first = c.get('b');
  first[0] = 99;
  assert.strictEqual(c.get('b')[0], 1);
});

test('values larger than the scratch buffer (64 KiB) round-trip', () => {
  const c = new LarderCache({ maxBytes: 64 << 20 });
  const big = Buffer.alloc(300 * 1024, 7);
  big[123456] = 1;
  c.set('buf', big);
  assert.deepStrictEqual(c.get('buf'), big);
  const text = 'é'.repeat(100000);
  c.set('str', text);
  assert.strictEqual(c.get('str'), text);
  const obj = { list: Array.from({ length: 20000 }, (_, i) => ({ i })) };
  c.set('obj', obj);
  assert.deepStrictEqual(c.get('obj'), obj);
  assert.deepStrictEqual(c.peek('buf'), big);
  assert.deepStrictEqual(c.info('obj').value, obj);
});

test('what the serializer cannot copy throws a TypeError at set and stores nothing', () => {
  const c = new LarderCache({ max: 10 });
  c.set('k', 'before');
  for (const bad of [() => 1, Symbol('s'), { f() {} }, new WeakMap(), Promise.resolve()]) {
    assert.throws(() => c.set('k', bad), TypeError);
  }
  assert.strictEqual(c.get('k'), 'before');
});

test('keys: strings, numbers and Buffers are three kinds, never confused', () => {
  const c = new LarderCache({ max: 100 });
  c.set('1', 'string').set(1, 'number').set(Buffer.from('1'), 'buffer');
  assert.strictEqual(c.get('1'), 'string');
  assert.strictEqual(c.get(1), 'number');
  assert.strictEqual(c.get(Buffer.from('1')), 'buffer');
  assert.strictEqual(c.get(new Uint8Array([0x31])), 'buffer');  // a Uint8Array is bytes too
  assert.strictEqual(c.size, 3);
  const keys = [...c.keys()];
  assert.deepStrictEqual(keys.map((k) => (Buffer.isBuffer(k) ? 'buffer' : typeof k)).sort(),
                         ['buffer', 'number', 'string']);
});

test('number keys compare as a Map does (SameValueZero)', () => {
  const c = new LarderCache({ max: 100 });
  c.set(0, 'zero');
  assert.strictEqual(c.get(-0), 'zero');
  c.set(NaN, 'nan');
  assert.strictEqual(c.get(Number('x')), 'nan');
  c.set(1.5, 'a').set(2 ** 53, 'big').set(-Infinity, 'inf');
  assert.strictEqual(c.get(3 / 2), 'a');
  assert.strictEqual(c.get(2 ** 53), 'big');
  assert.strictEqual(c.get(-Infinity), 'inf');
  assert.ok([...c.keys()].includes(1.5));
});

test('string keys are exact: lone surrogates, U+FFFD and the empty string are all different', () => {
  const c = new LarderCache({ max: 100 });
  const keys = ['\uD800', '\uDBFF', '\uDC00', '\uFFFD', '\uD83D\uDE00', '', 'a\uD800', 'a\uFFFD'];
  keys.forEach((k, i) => c.set(k, i));
  keys.forEach((k, i) => assert.strictEqual(c.get(k), i, JSON.stringify(k)));
  assert.strictEqual(c.size, keys.length);
  assert.deepStrictEqual(new Set(c.keys()), new Set(keys));
});

test('other key types are refused', () => {
  const c = new LarderCache({ max: 10 });
  for (const bad of [{}, [], null, undefined, true, 1n, Symbol('s'), new Float64Array(1)]) {
    assert.throws(() => c.set(bad, 'v'), TypeError, String(bad && bad.constructor));
    assert.throws(() => c.get(bad), TypeError);
  }
});

test('deletePrefix matches strings against string keys and Buffers against Buffer keys', () => {
  const log = [];
  const c = new LarderCache({ max: 100, dispose: (v, k, r) => log.push([k, r]) });
  c.set('user:1', 'a').set('user:2', 'b').set('users', 'c').set('item:1', 'd');
  c.set(Buffer.from('user:3'), 'e').set(7, 'f');
  assert.strictEqual(c.deletePrefix('user:'), 2);
  assert.deepStrictEqual(log.sort(), [['user:1', 'delete'], ['user:2', 'delete']]);
  assert.strictEqual(c.has('users'), true);
  assert.strictEqual(c.has(Buffer.from('user:3')), true);
  assert.strictEqual(c.invalidatePrefix(Buffer.from('user')), 1);
  assert.strictEqual(c.deletePrefix(''), 2);  // every string key
  assert.strictEqual(c.has(7), true);
  assert.throws(() => c.deletePrefix(1), TypeError);
});

test('undefined is never stored: set(k, undefined) deletes', () => {
  const c = new LarderCache({ max: 10 });
  c.set('k', 'v');
  c.set('k', undefined);
  assert.strictEqual(c.has('k'), false);
});
