'use strict';
// Larder for Node.js: LarderCache, a drop-in for lru-cache (its option
// names and semantics) over the native engine (src/addon.cc, the C ABI).
// One native cache can be shared by worker_threads; fetch() loads each key
// once however many callers (and workers) miss it at once. README.md says
// what differs from lru-cache and why.
const path = require('node:path');
const v8 = require('node:v8');

const native = require(process.env.LARDER_NODE_ADDON || path.join(__dirname, 'larder.node'));

// Shared with the addon (one per isolate): the scratch buffer get() leaves
// values in, and the state array calls report through.
const scratch = native.scratch;
const I32 = native.stateI32;
const F64 = native.stateF64;
const ST_LENGTH = 0;
const ST_EVENTS = 1;
const ST_KIND = 2;
const ST_INFO = 3;
const ST_REMAINING = 2;  // F64
const ST_ENTRY_TTL = 3;  // F64
const INFO_STALE = 1;
const INFO_EXPIRES = 2;
const INFO_REFRESH = 4;
const READ_PEEK = 1;
const READ_ALLOW_STALE = 2;
const VALUE_AUTO = 0;
const VALUE_BUFFER = 1;
const VALUE_SERIALIZED = 2;
const REASONS = ['delete', 'set', 'expire', 'evict', 'fetch'];
const REASON_SET = 1;
const REASON_EXPIRE = 2;
const REASON_EVICT = 3;
const REASON_FETCH = 4;
const INSERT_REASONS = ['add', 'replace', 'update'];
const INSERT_MISS = 3;
const FOREVER = 2 ** 62;  // bytes: "no byte bound"
const JOURNAL_SYNC = { 'every-write': 0, interval: 1, never: 2 };

// ---- errors ----

class LarderError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'LarderError';
    this.code = code;
  }
}
const CLASSES = { 2: 'InvalidArgument', 3: 'EmptyKey', 4: 'KeyTooLong', 5: 'ValueTooLarge',
                  7: 'NoMemory', 8: 'LoadError', 9: 'LoadTimeout', 10: 'RecursiveLoad',
                  11: 'Busy', 12: 'Closed', 13: 'Internal', 14: 'WriteFailed', 15: 'IoError',
                  16: 'Forked', 17: 'Unavailable' };

function translate(e) {
  if (e && typeof e.larderCode === 'number') {
    const err = new LarderError(e.message, e.larderCode);
    err.name = CLASSES[e.larderCode] || 'LarderError';
    return err;
  }
  return e;
}
function rethrow(e) { throw translate(e); }

// ---- values ----

// The stored form of a value: [value, kind] for the addon.
function encode(v) {
  const t = typeof v;
  if (t === 'string' || t === 'number' || t === 'boolean') return [v, VALUE_AUTO];
  if (Buffer.isBuffer(v)) return [v, VALUE_BUFFER];
  try {
    return [v8.serialize(v), VALUE_SERIALIZED];
  } catch (e) {
    throw new TypeError(`LarderCache stores values the V8 serializer can copy: ${e.message}`,
                        { cause: e });
  }
}

function headerOf(tag) { return (tag & 0x80) ? 9 : 1; }

const VIEW_LIMIT = 4096;
const views = [];

// A value the addon left in the scratch buffer.
function decodeScratch() {
  const n = I32[ST_LENGTH];
  const tag = scratch[0];
  const h = headerOf(tag);
  switch (tag & 0x7f) {
    case 0x62: {  // 'b': a Buffer of its own
      const out = Buffer.allocUnsafe(n - h);
      if (h === 1 && n <= VIEW_LIMIT) {
        // A view of the scratch buffer per length, made once: the copy is
        // then a plain TypedArray set, with no call out of JavaScript.
        out.set(views[n] || (views[n] = scratch.subarray(1, n)));
      } else {
        scratch.copy(out, 0, h, n);
      }
      return out;
    }
    case 0x76:  // 'v': the deserializer may keep views of its input: give it a copy
      return v8.deserialize(Buffer.from(scratch.subarray(h, n)));
    default:
      throw new LarderError(`unknown value tag ${tag}`, 13);
  }
}

// A value from a tagged Buffer of its own.
function decodeTagged(buf) {
  const tag = buf[0];
  const h = headerOf(tag);
  switch (tag & 0x7f) {
    case 0x61: return buf.toString('latin1', h);  // 'a'
    case 0x73: return buf.toString('utf8', h);    // 's'
    case 0x75: return buf.toString('utf16le', h); // 'u'
    case 0x64: return buf.readDoubleLE(h);             // 'd'
    case 0x74: return true;
    case 0x66: return false;
    case 0x62: return buf.subarray(h);                 // 'b'
    case 0x76: return v8.deserialize(buf.subarray(h)); // 'v'
    default: throw new LarderError(`unknown value tag ${tag}`, 13);
  }
}

// What native get/read/snapshotValue/fetchBegin return, as a value.
function decode(r) {
  if (typeof r !== 'object' || r === undefined) return r;
  return r === null ? decodeScratch() : decodeTagged(r);
}

function isPosInt(n) { return typeof n === 'number' && n > 0 && Number.isInteger(n); }
function isNonNeg(n) { return typeof n === 'number' && n >= 0 && !Number.isNaN(n); }

// ---- options ----

// lru-cache's options, what LarderCache does with each.
const SUPPORTED = new Set([
  'max', 'maxSize', 'maxEntrySize', 'sizeCalculation', 'ttl', 'ttlResolution', 'ttlAutopurge',
  'allowStale', 'updateAgeOnGet', 'updateAgeOnHas', 'noDeleteOnStaleGet', 'dispose',
  'disposeAfter', 'noDisposeOnSet', 'noUpdateTTL', 'onInsert', 'fetchMethod', 'memoMethod',
  'noDeleteOnFetchRejection', 'allowStaleOnFetchRejection', 'allowStaleOnFetchAbort',
  'ignoreFetchAbort', 'perf',
  // Larder's own
  'maxBytes', 'stripes', 'handle', 'staleWhileRevalidate', 'staleIfError', 'refreshBeta',
  'refreshDelta', 'negativeTtl', 'errorTtl', 'writeMethod', 'writeBehind', 'seed',
]);
const UNSUPPORTED = {
  backgroundFetchSize: 'LarderCache stores no placeholder for a running fetch, so there is ' +
                       'nothing to weigh',
};
const GET_OPTIONS = new Set(['allowStale', 'updateAgeOnGet', 'noDeleteOnStaleGet']);
const SET_OPTIONS = new Set(['ttl', 'size', 'sizeCalculation', 'noDisposeOnSet', 'noUpdateTTL',
                             'start']);
const FETCH_OPTIONS = new Set([...GET_OPTIONS, ...SET_OPTIONS, 'forceRefresh', 'context', 'signal',
  'noDeleteOnFetchRejection', 'allowStaleOnFetchRejection', 'allowStaleOnFetchAbort',
  'ignoreFetchAbort', 'fetchMethod']);

function checkCallOptions(o, allowed, method) {
  if (o === undefined) return;
  if (o === null || typeof o !== 'object') throw new TypeError(`${method}: options must be an object`);
  for (const k of Object.keys(o)) {
    if (o[k] === undefined) continue;
    if (!allowed.has(k)) {
      throw new TypeError(`LarderCache.${method} does not support the option '${k}'` +
                          (k === 'status' ? ' (lru-cache\'s status tracing)' : ''));
    }
  }
}

function timeOption(o, name) {
  const v = o[name];
  if (v === undefined) return 0;
  if (!isNonNeg(v)) throw new TypeError(`${name} must be a number of milliseconds >= 0`);
  return v;
}

// ---- LarderCache ----

class LarderCache {
  #m;             // the native handle's methods
  #max;
  #maxSize;       // lru-cache's: the sum of the sizes (0: none)
  #maxBytes;      // Larder's: key + value + overhead bytes (0: none)
  #sized;         // entries carry sizes (sizeCalculation / size)
  #ttl;
  #perf;
  #dispose;
  #disposeAfter;
  #onInsert;
  #fetchMethod;
  #memoMethod;
  #writeMethod;
  #writeBehind;   // the write-behind options, when open
  #writeChains = new Map();  // write-through: one write of a key at a time
  #retains;       // expired values are kept (allowStale and friends)
  #swr;           // staleWhileRevalidate grace (ms): Infinity for allowStale
  #sie;           // staleIfError grace (ms)
  #ttlSeen;       // entries may have TTLs: a miss may be an expired entry to delete
  #ownTtl;        // values carry their own TTL (updateAgeOnGet/Has)
  #plainGet;      // get(k) needs nothing but the native get
  #plainSet;
  #autopurge;
  #closed = false;
  #shared;        // what share() hands out
  // lru-cache's changeable settings that decide the fast paths.
  #updateAgeOnGet = false;
  #allowStale = false;
  #noDisposeOnSet = false;
  #noUpdateTTL = false;

  /**
   * lru-cache's options (see README.md for each) and Larder's: maxBytes,
   * stripes, handle (from share(), in another worker), staleWhileRevalidate,
   * staleIfError, refreshBeta, refreshDelta, negativeTtl, errorTtl,
   * writeMethod, writeBehind.
   */
  constructor(options) {
    if (options === undefined || options === null || typeof options !== 'object') {
      throw new TypeError('LarderCache needs an options object');
    }
    for (const k of Object.keys(options)) {
      if (options[k] === undefined) continue;
      if (k in UNSUPPORTED) throw new TypeError(`LarderCache does not support '${k}': ${UNSUPPORTED[k]}`);
      if (!SUPPORTED.has(k)) throw new TypeError(`LarderCache: unknown option '${k}'`);
    }
    const o = options;
    let handle = o.handle;
    if (typeof handle === 'number') handle = { id: handle };
    const base = handle !== undefined ? handle : o;  // the cache's own settings
    const max = base.max ?? 0;
    const maxSize = base.maxSize ?? 0;
    const maxBytes = base.maxBytes ?? 0;
    const ttl = base.ttl ?? 0;
    if (!isNonNeg(max) || !Number.isInteger(max)) throw new TypeError('max option must be a nonnegative integer');
    if (!isNonNeg(maxSize) || !Number.isInteger(maxSize)) throw new TypeError('maxSize option must be a nonnegative integer');
    if (!isNonNeg(maxBytes)) throw new TypeError('maxBytes option must be a number >= 0');
    if (!isNonNeg(ttl)) throw new TypeError('ttl must be a positive integer if specified');
    if (maxSize && maxBytes) {
      throw new TypeError('maxSize (sizes from sizeCalculation) and maxBytes (bytes) cannot both be set');
    }
    for (const f of ['dispose', 'disposeAfter', 'onInsert', 'fetchMethod', 'memoMethod',
                     'sizeCalculation', 'writeMethod']) {
      if (o[f] !== undefined && typeof o[f] !== 'function') throw new TypeError(`${f} must be a function`);
    }
    if (o.sizeCalculation && !maxSize && !o.maxEntrySize && !(handle && handle.sized)) {
      throw new TypeError('cannot set sizeCalculation without setting maxSize or maxEntrySize');
    }
    if (handle === undefined && !max && !maxSize && !maxBytes && !ttl) {
      throw new TypeError('At least one of max, maxSize, maxBytes or ttl is required');
    }
    if (o.writeMethod && o.writeBehind) throw new TypeError('give writeMethod or writeBehind, not both');
    if (o.perf !== undefined && (o.perf === null || typeof o.perf.now !== 'function')) {
      throw new TypeError('perf option must have a now() method if specified');
    }
    this.#max = max;
    this.#maxSize = maxSize;
    this.#maxBytes = maxBytes;
    this.#sized = !!(maxSize || (handle ? handle.sized : (o.sizeCalculation || o.maxEntrySize)));
    this.#ttl = ttl;
    this.#perf = o.perf;
    this.#dispose = o.dispose;
    this.#disposeAfter = o.disposeAfter;
    this.#onInsert = o.onInsert;
    this.#fetchMethod = o.fetchMethod;
    this.#memoMethod = o.memoMethod;
    this.#writeMethod = o.writeMethod;
    // Per-handle behaviour (lru-cache's public, changeable fields).
    this.ttlResolution = o.ttlResolution ?? 1;
    this.ttlAutopurge = !!(base.ttlAutopurge ?? o.ttlAutopurge);
    this.updateAgeOnGet = !!o.updateAgeOnGet;
    this.updateAgeOnHas = !!o.updateAgeOnHas;
    this.noDisposeOnSet = !!o.noDisposeOnSet;
    this.noUpdateTTL = !!o.noUpdateTTL;
    this.noDeleteOnStaleGet = !!o.noDeleteOnStaleGet;
    this.noDeleteOnFetchRejection = !!o.noDeleteOnFetchRejection;
    this.allowStaleOnFetchAbort = !!o.allowStaleOnFetchAbort;
    this.ignoreFetchAbort = !!o.ignoreFetchAbort;
    this.sizeCalculation = o.sizeCalculation;
    this.maxEntrySize = o.maxEntrySize ?? base.maxEntrySize ?? maxSize;
    if (!isNonNeg(this.maxEntrySize)) throw new TypeError('maxEntrySize must be a positive integer if specified');
    const allowStale = !!(base.allowStale ?? o.allowStale);
    const allowStaleOnFetchRejection = !!(base.allowStaleOnFetchRejection ?? o.allowStaleOnFetchRejection);
    this.allowStale = allowStale;
    this.allowStaleOnFetchRejection = allowStaleOnFetchRejection;
    const swr = timeOption(base, 'staleWhileRevalidate');
    const sie = timeOption(base, 'staleIfError');
    this.#swr = swr;
    this.#sie = allowStaleOnFetchRejection ? Infinity : sie;
    // Expired entries stay in the cache, as in lru-cache, until a read finds
    // them (and deletes them: 'expire'), a set replaces them ('set') or they
    // are evicted; with ttlAutopurge the engine reclaims them as it goes.
    const keepForever = !this.ttlAutopurge;
    this.#retains = keepForever || swr > 0 || sie > 0;
    this.#ttlSeen = ttl > 0;
    this.#ownTtl = !!(base.ownTtl ?? (o.updateAgeOnGet || o.updateAgeOnHas));
    const collect = !!(o.dispose || o.disposeAfter);
    const perEntry = { collect, maxEntrySize: this.#sized ? 0 : this.maxEntrySize };
    try {
      if (handle !== undefined) {
        if (typeof handle.id !== 'number') throw new TypeError('handle must come from share()');
        this.#m = native.attach(handle.id, perEntry);
        this.#shared = handle;
      } else {
        this.#m = native.create({
          ...perEntry,
          max,
          // The engine's byte bound: the sizes' sum, or bytes, or none.
          maxBytes: maxSize || maxBytes || FOREVER,
          stripes: o.stripes ?? 0,
          retainStale: keepForever ? 1e13 : swr,
          staleIfError: allowStaleOnFetchRejection ? 1e13 : sie,
          refreshBeta: o.refreshBeta ?? 0,
          refreshDelta: timeOption(o, 'refreshDelta'),
          negativeTtl: timeOption(o, 'negativeTtl'),
          errorTtl: timeOption(o, 'errorTtl'),
          seed: o.seed ?? 0,
          manualClock: !!o.perf,
          now: o.perf ? o.perf.now() : 0,
        });
        this.#shared = {
          id: this.#m.share(), max, maxSize, maxBytes, ttl, sized: this.#sized,
          allowStale, allowStaleOnFetchRejection, staleWhileRevalidate: swr, staleIfError: sie,
          retainsStale: keepForever, ownTtl: this.#ownTtl, ttlAutopurge: this.ttlAutopurge,
          maxEntrySize: this.maxEntrySize,
        };
      }
    } catch (e) { rethrow(e); }
    this.#refreshFast();
    if (o.writeBehind) this.#openWriteBehind(o.writeBehind);
    if (this.ttlAutopurge && ttl > 0) {
      // lru-cache removes each item at its expiry with a timer; this sweeps
      // the expired ones (reporting 'expire') a few times per TTL.
      // The timer holds the cache weakly: a cache dropped without close()
      // can still be collected (and its timer then stops).
      const self = new WeakRef(this);
      const timer = setInterval(() => {
        const c = self.deref();
        if (c === undefined || c.#closed) clearInterval(timer);
        else c.purgeStale();
      }, Math.max(10, Math.min(1000, ttl / 2)));
      timer.unref();
      this.#autopurge = timer;
    }
  }

  #refreshFast() {
    this.#plainGet = !this.updateAgeOnGet && !this.allowStale && !this.#perf;
    this.#plainSet = !this.#sized && !this.#onInsert && !this.#perf && !this.#ownTtl &&
                     !this.noDisposeOnSet && !this.noUpdateTTL;
  }

  // ---- settings, as lru-cache shows them ----

  // Changing these changes later calls, as on lru-cache.
  get updateAgeOnGet() { return this.#updateAgeOnGet; }
  set updateAgeOnGet(v) { this.#updateAgeOnGet = !!v; this.#refreshFast(); }
  get allowStale() { return this.#allowStale; }
  set allowStale(v) { this.#allowStale = !!v; this.#refreshFast(); }
  get noDisposeOnSet() { return this.#noDisposeOnSet; }
  set noDisposeOnSet(v) { this.#noDisposeOnSet = !!v; this.#refreshFast(); }
  get noUpdateTTL() { return this.#noUpdateTTL; }
  set noUpdateTTL(v) { this.#noUpdateTTL = !!v; this.#refreshFast(); }

  get max() { return this.#max; }
  get maxSize() { return this.#maxSize; }
  get maxBytes() { return this.#maxBytes; }
  get ttl() { return this.#ttl; }
  set ttl(v) {
    if (!isNonNeg(v)) throw new TypeError('ttl must be a number of milliseconds >= 0');
    this.#ttl = v;
  }
  get perf() { return this.#perf ?? performance; }
  get fetchMethod() { return this.#fetchMethod; }
  get memoMethod() { return this.#memoMethod; }
  get dispose() { return this.#dispose; }
  get disposeAfter() { return this.#disposeAfter; }
  get onInsert() { return this.#onInsert; }
  get [Symbol.toStringTag]() { return 'LarderCache'; }

  /** Entries in the cache (expired ones still kept included, as lru-cache counts them). */
  get size() {
    try { return this.#m.size()[0]; } catch (e) { rethrow(e); }
  }
  /** The sum of the entries' sizes (sizeCalculation), or of their bytes with maxBytes. */
  get calculatedSize() {
    if (!this.#sized && !this.#maxBytes) return 0;
    try { return this.#m.size()[1]; } catch (e) { rethrow(e); }
  }

  // ---- internals ----

  #tick() {
    if (this.#perf) this.#m.setNow(this.#perf.now());
  }

  // Runs the removals the last call queued through dispose and disposeAfter.
  #drain() {
    const ev = this.#m.drain();
    let first;
    let failed = false;
    const records = [];
    for (let i = 0; i < ev.length; i += 3) {
      let value;
      try { value = decodeTagged(ev[i + 1]); } catch (e) { value = undefined; }
      records.push([value, ev[i], REASONS[ev[i + 2]]]);
    }
    for (const fn of [this.#dispose, this.#disposeAfter]) {
      if (!fn) continue;
      for (const [value, key, reason] of records) {
        try { fn(value, key, reason); } catch (e) { if (!failed) { failed = true; first = e; } }
      }
    }
    if (failed) throw first;
  }

  #afterWrite() {
    if (I32[ST_EVENTS] !== 0) this.#drain();
  }

  #entrySize(k, v, o) {
    if (!this.#sized) return 0;
    let size = o && o.size;
    const calc = (o && o.sizeCalculation) || this.sizeCalculation;
    if (size === undefined && calc) {
      size = calc(v, k);
      if (!isPosInt(size)) throw new TypeError('sizeCalculation return invalid (expect positive integer)');
    }
    if (!isPosInt(size)) {
      throw new TypeError('invalid size value (must be positive integer). When maxSize or ' +
                          'maxEntrySize is used, sizeCalculation or size must be set.');
    }
    return size;
  }

  #del(k, reason) {
    try { return this.#m.del(k, reason); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
  }

  // ---- reading ----

  /** The value, or undefined; uses the entry (LRU). lru-cache's get options. */
  get(k, o) {
    if (o === undefined && this.#plainGet) {
      let r;
      try { r = this.#m.get(k); } catch (e) { rethrow(e); }
      if (typeof r !== 'object') {
        if (r === undefined && this.#ttlSeen && !this.noDeleteOnStaleGet) this.#staleMiss(k);
        return r;
      }
      return r === null ? decodeScratch() : decodeTagged(r);
    }
    return this.#getSlow(k, o);
  }

  // A miss that may have been an expired entry: lru-cache deletes it ('expire').
  #staleMiss(k) {
    let r;
    try { r = this.#m.read(k, READ_PEEK | READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r !== undefined && (I32[ST_INFO] & INFO_STALE)) this.#del(k, REASON_EXPIRE);
  }

  #getSlow(k, o = {}) {
    checkCallOptions(o, GET_OPTIONS, 'get');
    this.#tick();
    const allowStale = o.allowStale ?? this.allowStale;
    const noDelete = o.noDeleteOnStaleGet ?? this.noDeleteOnStaleGet;
    let r;
    try { r = this.#m.read(k, READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r === undefined) return undefined;
    const info = I32[ST_INFO];
    const entryTtl = F64[ST_ENTRY_TTL];
    const v = decode(r);
    if (info & INFO_STALE) {
      if (!noDelete) this.#del(k, REASON_EXPIRE);
      return allowStale ? v : undefined;
    }
    if ((o.updateAgeOnGet ?? this.updateAgeOnGet) && (info & INFO_EXPIRES)) {
      this.#touch(k, entryTtl >= 0 ? entryTtl : this.#ttl);
    }
    return v;
  }

  #touch(k, ttl) {
    if (!(ttl > 0)) return;  // no TTL of its own to restart (it would lose its expiry)
    try { this.#m.touch(k, ttl); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
  }

  /** The value without using the entry (no LRU move, no stats). */
  peek(k, o = {}) {
    checkCallOptions(o, new Set(['allowStale']), 'peek');
    this.#tick();
    const allowStale = o.allowStale ?? this.allowStale;
    let r;
    try { r = this.#m.read(k, READ_PEEK | READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r === undefined) return undefined;
    const stale = I32[ST_INFO] & INFO_STALE;
    const v = decode(r);
    return stale && !allowStale ? undefined : v;
  }

  /** True for a live entry (false for a stale one); does not use it. */
  has(k, o) {
    if (o !== undefined) checkCallOptions(o, new Set(['updateAgeOnHas']), 'has');
    this.#tick();
    let found;
    try { found = this.#m.has(k); } catch (e) { rethrow(e); }
    if (found && ((o && o.updateAgeOnHas) ?? this.updateAgeOnHas)) {
      let r;
      try { r = this.#m.read(k, READ_PEEK); } catch (e) { rethrow(e); }
      if (r !== undefined && (I32[ST_INFO] & INFO_EXPIRES)) {
        const entryTtl = F64[ST_ENTRY_TTL];
        this.#touch(k, entryTtl >= 0 ? entryTtl : this.#ttl);
      }
    }
    return found;
  }

  /** Milliseconds left of the entry's TTL: 0 when absent, Infinity without TTL. */
  getRemainingTTL(k) {
    this.#tick();
    let r;
    try { r = this.#m.read(k, READ_PEEK | READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r === undefined) return 0;
    return (I32[ST_INFO] & INFO_EXPIRES) ? F64[ST_REMAINING] : Infinity;
  }

  /** lru-cache's info(): value, remaining ttl, start (now), size. */
  info(k) {
    this.#tick();
    let r;
    try { r = this.#m.read(k, READ_PEEK | READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r === undefined) return undefined;
    const info = I32[ST_INFO];
    const remaining = F64[ST_REMAINING];
    const entry = { value: decode(r) };
    if (info & INFO_EXPIRES) {
      entry.ttl = remaining;
      entry.start = this.#perf ? this.#perf.now() : performance.now();
    }
    return entry;
  }

  // ---- writing ----

  /** Stores v under k (undefined deletes). lru-cache's set options. */
  set(k, v, o) {
    if (v === undefined) {
      this.delete(k);
      return this;
    }
    if (o === undefined && this.#plainSet) {
      try {
        const t = typeof v;
        if (t === 'string' || t === 'number' || t === 'boolean') {
          this.#m.set(k, v, this.#ttl, VALUE_AUTO, 0, 0, -1);
        } else {
          const [enc, kind] = encode(v);
          this.#m.set(k, enc, this.#ttl, kind, 0, 0, -1);
        }
      } catch (e) { rethrow(e); } finally { if (I32[ST_EVENTS] !== 0) this.#drain(); }
      return this;
    }
    return this.#setSlow(k, v, o);
  }

  #setSlow(k, v, o = {}) {
    checkCallOptions(o, SET_OPTIONS, 'set');
    this.#tick();
    const size = this.#entrySize(k, v, o);
    let ttl = o.ttl ?? this.#ttl;
    if (!isNonNeg(ttl)) throw new TypeError('ttl must be a number of milliseconds >= 0');
    if (ttl > 0) this.#ttlSeen = true;
    if (o.start !== undefined && ttl > 0) {  // lru-cache: the TTL counted from `start`
      ttl = Math.max(1e-6, ttl - ((this.#perf ? this.#perf.now() : performance.now()) - o.start));
    }
    if (size && this.maxEntrySize && size > this.maxEntrySize) {
      // lru-cache: not stored, and any older value goes (reason 'set').
      this.#del(k, REASON_SET);
      return this;
    }
    const [enc, kind] = encode(v);
    const flags = ((o.noDisposeOnSet ?? this.noDisposeOnSet) ? 1 : 0) |
                  ((o.noUpdateTTL ?? this.noUpdateTTL) ? 2 : 0);
    let insert;
    try {
      insert = this.#m.set(k, enc, ttl, kind, size, flags, this.#ownTtl ? ttl : -1);
    } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    if (this.#onInsert && insert !== INSERT_MISS) this.#onInsert(v, k, INSERT_REASONS[insert]);
    return this;
  }

  /** Removes k; true if it was there. */
  delete(k) {
    return this.#del(k, -1);
  }

  /** Removes every key starting with prefix (a string, or a Buffer for Buffer keys). */
  deletePrefix(prefix) {
    try { return this.#m.deletePrefix(prefix); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
  }
  /** The engine's name for deletePrefix. */
  invalidatePrefix(prefix) { return this.deletePrefix(prefix); }

  clear() {
    try { this.#m.clear(); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
  }

  /** Removes the expired entries; true if any were. */
  purgeStale() {
    this.#tick();
    let removed = false;
    if (this.#retains) {
      // Kept expired values are not the engine's to reclaim: delete them.
      const snap = this.#m.snapshot(true);
      const n = I32[ST_LENGTH];
      const stale = [];
      for (let i = 0; i < n; i++) {
        this.#m.snapshotValue(snap, i);
        if (I32[ST_INFO] & INFO_STALE) stale.push(this.#m.snapshotKey(snap, i));
      }
      for (const k of stale) if (this.#del(k, REASON_EXPIRE)) removed = true;
    }
    try {
      if (this.#m.cleanup()) removed = true;
    } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    return removed;
  }

  /** Evicts the least recently used entry and returns its value. */
  pop() {
    for (;;) {
      const snap = this.#m.snapshot(true);
      const n = I32[ST_LENGTH];
      if (n === 0) return undefined;
      const k = this.#m.snapshotKey(snap, n - 1);
      const v = decode(this.#m.snapshotValue(snap, n - 1));
      if (this.#del(k, REASON_EVICT)) return v;
    }
  }

  // ---- iteration: most recently used first ----

  *#walk(reverse, what, allowStale = this.allowStale) {
    let snap;
    try { snap = this.#m.snapshot(allowStale); } catch (e) { rethrow(e); }
    const n = I32[ST_LENGTH];
    for (let j = 0; j < n; j++) {
      const i = reverse ? n - 1 - j : j;
      if (what === 0) {
        yield this.#m.snapshotKey(snap, i);
      } else if (what === 1) {
        yield decode(this.#m.snapshotValue(snap, i));
      } else {
        const k = this.#m.snapshotKey(snap, i);
        yield [k, decode(this.#m.snapshotValue(snap, i))];
      }
    }
  }

  entries() { return this.#walk(false, 2); }
  rentries() { return this.#walk(true, 2); }
  keys() { return this.#walk(false, 0); }
  rkeys() { return this.#walk(true, 0); }
  values() { return this.#walk(false, 1); }
  rvalues() { return this.#walk(true, 1); }
  [Symbol.iterator]() { return this.#walk(false, 2); }

  forEach(fn, thisp = this) {
    for (const [k, v] of this.#walk(false, 2)) fn.call(thisp, v, k, this);
  }
  rforEach(fn, thisp = this) {
    for (const [k, v] of this.#walk(true, 2)) fn.call(thisp, v, k, this);
  }
  find(fn, getOptions) {
    for (const [k, v] of this.#walk(false, 2)) {
      if (fn(v, k, this)) return this.get(k, getOptions);
    }
    return undefined;
  }

  /**
   * lru-cache's dump(): [key, {value, ttl, start, size}], least recently
   * used first (load() sets them in order), stale entries included. ttl is
   * the time left and start now, unless values carry their own TTL.
   */
  dump() {
    const out = [];
    let snap;
    try { snap = this.#m.snapshot(true); } catch (e) { rethrow(e); }
    const n = I32[ST_LENGTH];
    const now = Date.now();
    for (let i = n - 1; i >= 0; i--) {
      const k = this.#m.snapshotKey(snap, i);
      const entry = { value: decode(this.#m.snapshotValue(snap, i)) };
      if (I32[ST_INFO] & INFO_EXPIRES) {
        const own = F64[ST_ENTRY_TTL];
        const left = F64[ST_REMAINING];
        entry.ttl = own >= 0 ? own : left;
        entry.start = Math.floor(now - (own >= 0 ? own - left : 0));
      } else if (this.#ttlSeen) {
        entry.ttl = 0;  // none, even where the cache has a default
      }
      out.push([k, entry]);
    }
    return out;
  }

  /** lru-cache's load(): clear, then set each [key, entry] in order. */
  load(arr) {
    this.clear();
    for (const [key, entry] of arr) {
      const o = {};
      if (entry.ttl !== undefined) {
        o.ttl = entry.ttl;
        if (entry.ttl > 0 && entry.start !== undefined) {
          o.ttl = entry.ttl - (Date.now() - entry.start);
          if (o.ttl <= 0) continue;  // expired on ice
        }
      }
      if (entry.size !== undefined && this.#sized) o.size = entry.size;
      this.set(key, entry.value, Object.keys(o).length ? o : undefined);
    }
  }

  // ---- fetch: one load per key for every caller ----

  /**
   * The value, loading it with fetchMethod(key, staleValue, { signal,
   * options, context }) when missing or stale: one load per key at a time,
   * every concurrent caller (in every worker sharing the cache) gets its
   * result. Without a fetchMethod, resolves like get().
   */
  async fetch(k, fo = {}) {
    checkCallOptions(fo, FETCH_OPTIONS, 'fetch');
    const fm = fo.fetchMethod ?? this.#fetchMethod;
    if (!fm) {
      const go = {};
      for (const name of GET_OPTIONS) if (fo[name] !== undefined) go[name] = fo[name];
      return this.get(k, Object.keys(go).length ? go : undefined);
    }
    this.#tick();
    const allowStale = fo.allowStale ?? this.allowStale;
    let staleValue;
    let staleAge = Infinity;
    let r;
    try { r = this.#m.read(k, READ_ALLOW_STALE); } catch (e) { rethrow(e); }
    if (r !== undefined) {
      const info = I32[ST_INFO];
      const remaining = F64[ST_REMAINING];
      const entryTtl = F64[ST_ENTRY_TTL];
      const v = decode(r);
      const stale = (info & INFO_STALE) !== 0;
      if (!stale) {
        if (fo.forceRefresh) {
          if (allowStale) {
            this.#background(k, v, fo, fm);
            return v;
          }
          return this.#refresh(k, v, fo, fm);
        }
        if (info & INFO_REFRESH) this.#background(k, v, fo, fm);  // early refresh (refreshBeta)
        if ((fo.updateAgeOnGet ?? this.updateAgeOnGet) && (info & INFO_EXPIRES)) {
          this.#touch(k, entryTtl >= 0 ? entryTtl : this.#ttl);
        }
        return v;
      }
      if (allowStale || -remaining < this.#swr) {  // stale-while-revalidate
        this.#background(k, v, fo, fm);
        return v;
      }
      staleValue = v;
      staleAge = -remaining;
    }
    let b;
    try { b = this.#m.fetchBegin(k); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    const kind = I32[ST_KIND];
    if (kind === 1) return this.#lead(k, b, staleValue, fo, fm, staleAge);
    if (kind === 2) return this.#join(b, fo, staleValue);
    return decode(b);
  }

  /** fetch(), rejecting instead of resolving undefined. */
  async forceFetch(k, fo) {
    const v = await this.fetch(k, fo);
    if (v === undefined) throw new Error('fetch() returned undefined');
    return v;
  }

  /** The value, or memoMethod(key, staleValue, { options, context })'s (stored). */
  memo(k, mo = {}) {
    const mm = mo.memoMethod ?? this.#memoMethod;
    if (!mm) throw new Error('no memoMethod provided to constructor');
    const go = {};
    for (const name of GET_OPTIONS) if (mo[name] !== undefined) go[name] = mo[name];
    if (!mo.forceRefresh) {
      const v = this.get(k, Object.keys(go).length ? go : undefined);
      if (v !== undefined) return v;
    }
    const options = {};
    for (const name of SET_OPTIONS) if (mo[name] !== undefined) options[name] = mo[name];
    const staleValue = this.peek(k, { allowStale: true });
    const v = mm(k, staleValue, { options, context: mo.context });
    this.set(k, v, Object.keys(options).length ? options : undefined);
    return v;
  }

  // A load this caller waits for (led by another caller or worker).
  async #join(promise, fo, staleValue) {
    try {
      const tagged = await (fo.signal ? abortable(promise, fo.signal) : promise);
      return tagged === undefined ? undefined : decodeTagged(tagged);
    } catch (e) {
      if (fo.signal && fo.signal.aborted && (fo.allowStaleOnFetchAbort ?? this.allowStaleOnFetchAbort)) {
        return staleValue;
      }
      if ((fo.allowStaleOnFetchRejection ?? this.allowStaleOnFetchRejection) &&
          !(fo.signal && fo.signal.aborted)) {
        return staleValue;
      }
      throw translate(e);
    }
  }

  // A refresh of a present value: forceRefresh, stale-while-revalidate, early refresh.
  #refresh(k, current, fo, fm) {
    let b;
    try { b = this.#m.refreshBegin(k); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    const kind = I32[ST_KIND];
    if (kind === 1) return this.#lead(k, b, current, fo, fm);
    if (kind === 2) return this.#join(b, fo, current);
    return Promise.resolve(decode(b));
  }

  #background(k, current, fo, fm) {
    this.#refresh(k, current, { ...fo, signal: undefined }, fm).catch(() => {});
  }

  // Runs the load this caller leads. Every way out of here completes the
  // lease at once (value, not found or error): a lease left to the garbage
  // collector would keep every other caller of the key waiting until then.
  async #lead(k, lease, staleValue, fo, fm, staleAge = Infinity) {
    const m = this.#m;
    let completed = false;
    const complete = (kind, value, ttl, vkind, size, ownTtl, message) => {
      completed = true;  // complete() consumes the lease even when it throws
      this.#tick();
      try {
        m.complete(lease, kind, value, ttl, vkind, size, ownTtl, message);
      } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    };
    const fail = (e) => {
      if (!completed) complete(2, undefined, 0, 0, 0, -1, String((e && e.message) || e));
    };
    const ac = new AbortController();
    const options = {};
    for (const name of FETCH_OPTIONS) {
      if (name !== 'signal' && name !== 'context' && name !== 'fetchMethod' && fo[name] !== undefined) {
        options[name] = fo[name];
      }
    }
    const ignoreAbort = options.ignoreFetchAbort ?? this.ignoreFetchAbort;
    let onAbort;
    try {
      let p = fm(k, staleValue, { signal: ac.signal, options, context: fo.context });
      if (fo.signal) {
        if (fo.signal.aborted) ac.abort(fo.signal.reason);
        else fo.signal.addEventListener('abort', onAbort = () => ac.abort(fo.signal.reason), { once: true });
        if (!ignoreAbort) p = abortable(Promise.resolve(p), ac.signal);
      }
      const v = await p;
      if (v === undefined) {
        // lru-cache: nothing found deletes what was there ('fetch').
        complete(1, undefined, 0, 0, 0, -1, undefined);
        return undefined;
      }
      const [enc, vkind] = encode(v);  // throws for what cannot be stored
      const ttl = options.ttl ?? this.#ttl;
      if (ttl > 0) this.#ttlSeen = true;
      const size = this.#entrySize(k, v, options);
      if (size && this.maxEntrySize && size > this.maxEntrySize) {
        // Every caller gets the value; the cache keeps none (lru-cache).
        complete(0, enc, ttl, vkind, size, this.#ownTtl ? ttl : -1, undefined);
        this.#del(k, REASON_SET);
        return v;
      }
      complete(0, enc, ttl, vkind, size, this.#ownTtl ? ttl : -1, undefined);
      return v;
    } catch (e) {
      fail(e);
      if (ac.signal.aborted && (options.allowStaleOnFetchAbort ?? this.allowStaleOnFetchAbort)) {
        return staleValue;
      }
      if (options.allowStaleOnFetchRejection ?? this.allowStaleOnFetchRejection) return staleValue;
      if (staleValue !== undefined && staleAge < this.#sie) return staleValue;  // staleIfError
      if (staleValue !== undefined && !(options.noDeleteOnFetchRejection ?? this.noDeleteOnFetchRejection)) {
        // lru-cache: a failed fetch deletes the stale value ('fetch'), unless
        // a fresh one arrived meanwhile.
        let r;
        try { r = m.read(k, READ_PEEK | READ_ALLOW_STALE); } catch { r = undefined; }
        if (r !== undefined && (I32[ST_INFO] & INFO_STALE)) this.#del(k, REASON_FETCH);
      }
      throw e;
    } finally {
      if (onAbort) fo.signal.removeEventListener('abort', onAbort);
    }
  }

  // ---- writing to a store ----

  /**
   * Writes through (writeMethod: the store first; the cache only if it
   * succeeded) or behind (writeBehind: the cache now, the store later,
   * batched). v undefined deletes. Resolves when the write-through is done,
   * or when the write-behind write is queued (and, with a journal synced per
   * write, on disk).
   */
  async write(k, v, o = {}) {
    checkCallOptions(o, new Set(['ttl']), 'write');
    const ttl = o.ttl ?? this.#ttl;
    if (this.#writeBehind) {
      try {
        if (v === undefined) {
          this.#m.wbWrite(k, undefined, 0, 0, true);
        } else {
          const [enc, kind] = encode(v);
          this.#m.wbWrite(k, enc, ttl, kind, false);
        }
      } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
      return;
    }
    if (!this.#writeMethod) throw new TypeError('write() needs a writeMethod or writeBehind option');
    // One write of a key at a time (in this handle): the cache ends with
    // the value of the last write that completed.
    const before = this.#writeChains.get(k) || Promise.resolve();
    const run = before.catch(() => {}).then(async () => {
      await this.#writeMethod(k, v);
      if (v === undefined) this.delete(k);
      else this.set(k, v, o.ttl !== undefined ? { ttl } : undefined);
    });
    this.#writeChains.set(k, run);
    try {
      await run;
    } finally {
      if (this.#writeChains.get(k) === run) this.#writeChains.delete(k);
    }
  }

  #openWriteBehind(wbo) {
    if (typeof wbo !== 'object' || typeof wbo.writeBatch !== 'function') {
      throw new TypeError('writeBehind needs a writeBatch(writes) function');
    }
    const known = new Set(['writeBatch', 'deadLetter', 'maxBatch', 'maxDelay', 'maxQueue',
      'maxQueueSize', 'maxAttempts', 'retryDelay', 'retryMaxDelay', 'journal']);
    for (const k of Object.keys(wbo)) {
      if (!known.has(k)) throw new TypeError(`writeBehind: unknown option '${k}'`);
    }
    const journal = wbo.journal || {};
    for (const k of Object.keys(journal)) {
      if (!['dir', 'sync', 'syncInterval', 'segmentSize'].includes(k)) {
        throw new TypeError(`writeBehind.journal: unknown option '${k}'`);
      }
    }
    if (journal.sync !== undefined && !(journal.sync in JOURNAL_SYNC)) {
      throw new TypeError("writeBehind.journal.sync must be 'every-write', 'interval' or 'never'");
    }
    const writeBatch = wbo.writeBatch;
    const toJs = (w) => ({ key: w.key, value: w.delete ? undefined : decodeTagged(w.value),
                           delete: w.delete, attempt: w.attempt, replayed: w.replayed,
                           sequence: w.sequence });
    const runBatch = (writes, done) => {
      let batch;
      try { batch = writes.map(toJs); } catch (e) { done(String(e && e.message)); return; }
      Promise.resolve().then(() => writeBatch(batch)).then(
        () => done(),
        (e) => done(String((e && e.message) || e || 'writeBatch failed')));
    };
    const deadLetter = wbo.deadLetter &&
      ((w, error) => { try { wbo.deadLetter(toJs(w), error); } catch { /* reported once */ } });
    try {
      this.#m.wbOpen({
        maxBatch: wbo.maxBatch, maxDelay: wbo.maxDelay, maxQueue: wbo.maxQueue,
        maxQueueSize: wbo.maxQueueSize, maxAttempts: wbo.maxAttempts, retryDelay: wbo.retryDelay,
        retryMaxDelay: wbo.retryMaxDelay, journalDir: journal.dir,
        journalSync: journal.sync === undefined ? undefined : JOURNAL_SYNC[journal.sync],
        journalSyncInterval: journal.syncInterval, journalSegmentSize: journal.segmentSize,
      }, runBatch, deadLetter);
    } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
    this.#writeBehind = wbo;
  }

  /** Waits until every write-behind write queued so far is delivered (or dead-lettered). */
  async flush(timeout = 0) {
    if (!this.#writeBehind) return;
    try { await this.#m.wbFlush(timeout, false); } catch (e) { rethrow(e); }
  }

  // ---- statistics ----

  /** Counters of the native cache (shared by every handle of it). */
  stats() {
    try {
      const s = this.#m.stats();
      if (this.#writeBehind) s.writeBehind = this.#m.wbStats();
      return s;
    } catch (e) { rethrow(e); }
  }

  /** The statistics in Prometheus' text format. */
  metrics({ prefix = 'larder_', labels = {} } = {}) {
    const s = this.stats();
    const lbl = Object.entries(labels)
      .map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
      .join(',');
    const sel = lbl ? `{${lbl}}` : '';
    const lines = [];
    const add = (name, type, help, value) => {
      lines.push(`# HELP ${prefix}${name} ${help}`, `# TYPE ${prefix}${name} ${type}`,
                 `${prefix}${name}${sel} ${value}`);
    };
    add('hits_total', 'counter', 'Reads that found a fresh value.', s.hits);
    add('misses_total', 'counter', 'Reads that found no value.', s.misses);
    add('stale_hits_total', 'counter', 'Reads that returned an expired value.', s.staleHits);
    add('sets_total', 'counter', 'Values stored.', s.puts);
    add('evictions_total', 'counter', 'Entries removed to stay within capacity.', s.evictions);
    add('expirations_total', 'counter', 'Entries removed after their TTL.', s.expirations);
    add('deletions_total', 'counter', 'Entries removed by delete, deletePrefix or clear.', s.invalidations);
    add('loads_total', 'counter', 'Loads started by fetch() misses.', s.loads);
    add('load_failures_total', 'counter', 'Loads and refreshes that failed.', s.loadFailures);
    add('load_seconds_total', 'counter', 'Time spent in loads and refreshes.', s.loadTimeNs / 1e9);
    add('coalesced_waits_total', 'counter', 'fetch() callers that joined a running load.', s.coalescedWaits);
    add('refreshes_total', 'counter', 'Refreshes started (early, stale-while-revalidate, forced).', s.refreshesStarted);
    add('entries', 'gauge', 'Entries in the cache.', s.entries);
    add('size', 'gauge', 'Sum of the entries\' sizes (bytes, or sizeCalculation units).', s.bytes);
    add('capacity_entries', 'gauge', 'The bound on entries (0: none).', s.capacityEntries);
    add('capacity_size', 'gauge', 'The bound on the size.', s.capacityBytes);
    if (s.writeBehind) {
      const w = s.writeBehind;
      add('write_behind_queue_depth', 'gauge', 'Keys with a pending write-behind write.', w.queueDepth);
      add('write_behind_delivered_total', 'counter', 'Write-behind writes the store accepted.', w.delivered);
      add('write_behind_retries_total', 'counter', 'Failed write-behind batches retried.', w.retries);
      add('write_behind_dead_letters_total', 'counter', 'Writes given up after maxAttempts.', w.deadLetters);
    }
    return lines.join('\n') + '\n';
  }

  // ---- workers and closing ----

  /**
   * What another worker passes as `handle` to use this same native cache
   * (a plain object: post it, or put it in workerData).
   */
  share() { return { ...this.#shared }; }

  /**
   * Releases this handle: later calls on it throw Closed. The native cache
   * lives on for its other handles (workers) and ends with the last one.
   * Drains this handle's write-behind queue first.
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#autopurge) clearInterval(this.#autopurge);
    if (this.#writeBehind) {
      try { await this.#m.wbFlush(0, true); } finally { this.#m.wbRelease(); }
    }
    this.#m.close();
  }

  /** Ends the native cache for every handle in every worker (entries dropped). */
  async closeAll() {
    if (this.#closed) return;
    if (this.#writeBehind) {
      try { await this.#m.wbFlush(0, true); } finally { this.#m.wbRelease(); }
    }
    this.#closed = true;
    if (this.#autopurge) clearInterval(this.#autopurge);
    try { this.#m.closeAll(); } catch (e) { rethrow(e); } finally { this.#afterWrite(); }
  }
}

// A promise that rejects with signal.reason when signal aborts first.
function abortable(p, signal) {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
           (e) => { signal.removeEventListener('abort', onAbort); reject(e); });
  });
}

// ---- TieredCache: Redis as the shared second tier ----

const TIER_OPTIONS = new Set([
  'max', 'maxSize', 'maxBytes', 'host', 'port', 'username', 'password', 'db',
  'connectTimeout', 'commandTimeout', 'maxConnections', 'tracking', 'prefixes', 'l1MaxTtl',
  'redisTtl', 'maxStaleness', 'healthInterval', 'lock', 'lockPrefix', 'lockLease',
  'lockPollMin', 'lockPollMax', 'breakerFailures', 'breakerOpenTime',
]);
const TIER_TIMES = ['connectTimeout', 'commandTimeout', 'l1MaxTtl', 'redisTtl',
                    'maxStaleness', 'healthInterval', 'lockLease', 'lockPollMin', 'lockPollMax',
                    'breakerOpenTime'];
const DEFAULT_TIER_BYTES = 64 * 1024 * 1024;

function tierKey(key) {
  if (typeof key === 'string' || key instanceof Uint8Array) return key;
  throw new TypeError('a TieredCache key must be a string or a Buffer');
}

// A cache in this process (the L1) in front of one Redis every process
// shares (the L2); the C ABI's larder_tier_* (docs/design.md, "Redis second
// tier"). Every call is synchronous: an L1 hit never waits, an L1 miss
// waits for Redis (each round trip at most commandTimeout, 250 ms by
// default) and for the loader, which runs on this thread.
class TieredCache {
  #t;  // the addon's methods; undefined once closed

  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new TypeError('TieredCache needs an options object');
    }
    for (const k of Object.keys(options)) {
      if (k === 'ttl') {
        throw new TypeError("TieredCache has no 'ttl': Redis keeps values for redisTtl (or set()'s ttl), " +
                            'L1 for at most l1MaxTtl and the Redis TTL left');
      }
      if (!TIER_OPTIONS.has(k)) throw new TypeError(`TieredCache: unknown option '${k}'`);
    }
    const o = { ...options };
    if (o.maxSize !== undefined && o.maxBytes !== undefined) {
      throw new TypeError('give maxSize or maxBytes (both are bytes here), not both');
    }
    const maxBytes = o.maxBytes ?? o.maxSize ?? DEFAULT_TIER_BYTES;
    if (!(typeof maxBytes === 'number' && maxBytes > 0)) throw new TypeError('maxBytes must be a number > 0');
    if (o.max !== undefined && !(isNonNeg(o.max) && Number.isInteger(o.max))) {
      throw new TypeError('max option must be a nonnegative integer');
    }
    for (const f of TIER_TIMES) {
      if (o[f] !== undefined && !isNonNeg(o[f])) throw new TypeError(`${f} must be a number of milliseconds >= 0`);
    }
    for (const f of ['host', 'username', 'password', 'lockPrefix']) {
      if (o[f] !== undefined && typeof o[f] !== 'string') throw new TypeError(`${f} must be a string`);
    }
    for (const f of ['port', 'db', 'maxConnections', 'breakerFailures']) {
      if (o[f] !== undefined && !(isNonNeg(o[f]) && Number.isInteger(o[f]))) {
        throw new TypeError(`${f} must be a nonnegative integer`);
      }
    }
    const tracking = o.tracking ?? (o.prefixes ? 'broadcast' : 'default');
    if (tracking !== 'default' && tracking !== 'broadcast') {
      throw new TypeError("tracking must be 'default' or 'broadcast'");
    }
    if (o.prefixes !== undefined) {
      if (!Array.isArray(o.prefixes) || !o.prefixes.every((p) => typeof p === 'string')) {
        throw new TypeError('prefixes must be an array of strings');
      }
      if (tracking !== 'broadcast') throw new TypeError("prefixes need tracking: 'broadcast'");
    }
    try {
      this.#t = native.tierCreate({ ...o, maxBytes, broadcast: tracking === 'broadcast',
                                    lock: !!o.lock });
    } catch (e) {
      rethrow(e);
    }
  }

  #native() {
    if (this.#t === undefined) throw Object.assign(new LarderError('this TieredCache is closed', 12), { name: 'Closed' });
    return this.#t;
  }

  /** The value of key: L1, else Redis, else loader(key) (its answer is
   * written to Redis and kept in L1; undefined: not found). */
  get(key, loader) {
    const t = this.#native();
    tierKey(key);
    if (loader !== undefined && typeof loader !== 'function') throw new TypeError('loader must be a function');
    const wrapped = loader && ((k) => {
      const v = loader(k);
      if (v === undefined) return undefined;
      if (v !== null && typeof v.then === 'function') {
        throw new TypeError('TieredCache loaders are synchronous: the loader returned a promise');
      }
      return encode(v);
    });
    let r;
    try {
      r = t.get(key, wrapped);
    } catch (e) {
      rethrow(e);
    }
    return decode(r);
  }

  /** Writes key to Redis (TTL: options.ttl, else redisTtl) and L1; every
   * other process drops its L1 copy. */
  set(key, value, options = {}) {
    const t = this.#native();
    tierKey(key);
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    const ttl = options.ttl ?? 0;
    if (!isNonNeg(ttl)) throw new TypeError('ttl must be a number of milliseconds >= 0');
    const [v, kind] = encode(value);
    try {
      t.set(key, v, kind, ttl);
    } catch (e) {
      rethrow(e);
    }
    return this;
  }

  /** Deletes key in Redis and here; the other processes drop theirs. */
  delete(key) {
    const t = this.#native();
    tierKey(key);
    try {
      t.del(key);
    } catch (e) {
      rethrow(e);
    }
  }

  /** After you wrote the store yourself: drops key from Redis and every L1. */
  invalidate(key) {
    const t = this.#native();
    tierKey(key);
    try {
      t.invalidate(key);
    } catch (e) {
      rethrow(e);
    }
  }

  stats() {
    try {
      return this.#native().stats();
    } catch (e) {
      rethrow(e);
    }
  }

  get closed() { return this.#t === undefined; }

  /** Stops the background thread and frees the L1. Idempotent. */
  close() {
    const t = this.#t;
    this.#t = undefined;
    if (t !== undefined) t.close();
  }
}

module.exports = { LarderCache, LRUCache: LarderCache, TieredCache, LarderError, version: native.version };
