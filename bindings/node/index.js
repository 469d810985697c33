'use strict';
// Larder for Node.js: an in-process cache shaped like lru-cache (max, maxSize,
// ttl, fetchMethod, fetch()), over the native addon (src/addon.cc) and the C
// ABI. fetch() loads each key once however many callers miss it at once, and
// never blocks the event loop on another caller's load.
const path = require('path');

const native = require(process.env.LARDER_NODE_ADDON || path.join(__dirname, 'larder.node'));

class LarderError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'LarderError';
    this.code = code;
  }
}
const CLASSES = { 2: 'InvalidArgument', 3: 'EmptyKey', 4: 'KeyTooLong', 5: 'ValueTooLarge',
                  8: 'LoadError', 9: 'LoadTimeout', 10: 'RecursiveLoad', 12: 'Closed' };

function rethrow(e) {
  if (e && typeof e.larderCode === 'number') {
    const err = new LarderError(e.message, e.larderCode);
    err.name = CLASSES[e.larderCode] || 'LarderError';
    throw err;
  }
  throw e;
}

function encode(value) {
  if (typeof value === 'string' || Buffer.isBuffer(value)) return [value, false];
  if (value === undefined) throw new TypeError('undefined cannot be cached (it means a miss)');
  return [JSON.stringify(value), true];
}

function decode(stored) {
  if (stored && typeof stored === 'object' && !Buffer.isBuffer(stored) && 'json' in stored) {
    return JSON.parse(stored.json);
  }
  return stored;
}

function checkKey(key) {
  if (typeof key !== 'string' && !Buffer.isBuffer(key)) {
    throw new TypeError('key must be a string or a Buffer');
  }
}

class LarderCache {
  #h;
  #ttl;
  #fetchMethod;

  /**
   * @param {object} options lru-cache's names: max (entries), maxSize (bytes;
   *   default 64 MiB), ttl (ms), fetchMethod(key) -> value | Promise; and
   *   stripes. `handle` attaches to a cache shared by another worker.
   */
  constructor(options = {}) {
    const { max = 0, maxSize = 64 * 1024 * 1024, ttl = 0, fetchMethod, stripes = 0, handle,
            allowStale } = options;
    if (allowStale) throw new TypeError('allowStale is not supported yet by larder');
    if (fetchMethod !== undefined && typeof fetchMethod !== 'function') {
      throw new TypeError('fetchMethod must be a function');
    }
    for (const [name, v] of [['max', max], ['maxSize', maxSize], ['ttl', ttl]]) {
      if (typeof v !== 'number' || !(v >= 0)) throw new TypeError(`${name} must be a number >= 0`);
    }
    try {
      this.#h = handle !== undefined ? native.attach(handle) : native.create({ maxSize, max, ttl, stripes });
    } catch (e) { rethrow(e); }
    this.#ttl = ttl;
    this.#fetchMethod = fetchMethod;
  }

  /** The value, or undefined on a miss. */
  get(key) {
    checkKey(key);
    try { return decode(native.get(this.#h, key)); } catch (e) { rethrow(e); }
  }

  /** Stores a string, Buffer or JSON-serialisable value. options.ttl in ms. */
  set(key, value, options = {}) {
    checkKey(key);
    const ttl = options.ttl ?? 0;
    if (typeof ttl !== 'number' || !(ttl >= 0)) throw new TypeError('ttl must be a number >= 0');
    const [encoded, json] = encode(value);
    try { native.set(this.#h, key, encoded, ttl, json); } catch (e) { rethrow(e); }
    return this;
  }

  has(key) {
    checkKey(key);
    try { return native.has(this.#h, key); } catch (e) { rethrow(e); }
  }

  delete(key) {
    checkKey(key);
    try { return native.delete(this.#h, key); } catch (e) { rethrow(e); }
  }

  clear() {
    try { native.clear(this.#h); } catch (e) { rethrow(e); }
  }

  get size() { return this.stats().entries; }

  stats() {
    try { return native.stats(this.#h); } catch (e) { rethrow(e); }
  }

  /**
   * The cached value, or fetchMethod(key)'s: one fetch per key at a time,
   * every concurrent caller gets its result. Resolves undefined when
   * fetchMethod returns undefined (not found).
   */
  async fetch(key, options = {}) {
    checkKey(key);
    let r;
    try { r = native.fetch(this.#h, key); } catch (e) { rethrow(e); }
    if (r.lease !== undefined) return this.#lead(key, r.lease, options);
    if (r.promise !== undefined) {
      try { return decode(await r.promise); } catch (e) { rethrow(e); }
    }
    return decode(r.value);
  }

  // Runs the load this caller leads. Every way out of here completes the
  // lease at once (value, not found or error): a lease left to the garbage
  // collector would keep every other caller of the key waiting until then.
  async #lead(key, lease, options) {
    let completed = false;
    const fail = (e) => {
      if (completed) return;
      completed = true;
      native.complete(lease, 2, String((e && e.message) || e), 0, false);
    };
    try {
      const fetchMethod = options.fetchMethod ?? this.#fetchMethod;
      if (!fetchMethod) throw new TypeError('fetch() needs a fetchMethod');
      // A fetchMethod that throws synchronously lands in the catch below too.
      const value = await fetchMethod(key, undefined, { signal: new AbortController().signal });
      if (value === undefined) {
        completed = true;
        native.complete(lease, 1, undefined, 0, false);
        return undefined;
      }
      const [encoded, json] = encode(value);  // throws for what cannot be stored
      completed = true;  // complete() consumes the lease even when it throws
      try {
        native.complete(lease, 0, encoded, options.ttl ?? this.#ttl, json);
      } catch (e) { rethrow(e); }
      return value;
    } catch (e) {
      fail(e);
      throw e;
    }
  }

  /** An id another worker_thread passes as `handle` to share this cache. */
  share() { return native.share(this.#h); }

  /** Drops every entry; later calls throw a 'Closed' LarderError. */
  close() {
    try { native.close(this.#h); } catch (e) { if (!(e && e.larderCode === 12)) rethrow(e); }
  }
}

module.exports = { LarderCache, LarderError, version: native.version };
