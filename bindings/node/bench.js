'use strict';
// get() against lru-cache: 100,000 resident keys, uniformly random reads of
// string and Buffer values (100 bytes), in one thread and in worker_threads
// (each worker with its own lru-cache, all of them sharing one LarderCache:
// what lru-cache cannot do). Prints ns per get and the ratio to lru-cache.
//
//   node bench.js [--keys 100000] [--gets 2000000] [--rounds 5] [--workers 2] [--objects] [--json]
//
// lru-cache must be installed (it is a devDependency: npm ci). The figures
// of the contenders are taken interleaved, round by round, and the median
// of each is reported, since this machine's speed drifts.
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const PKG = process.env.LARDER_NODE_PACKAGE ? path.resolve(process.env.LARDER_NODE_PACKAGE) : __dirname;

function loadLruCache() {
  try {
    return require('lru-cache').LRUCache;
  } catch {
    return require(path.join(__dirname, 'node_modules', 'lru-cache')).LRUCache;
  }
}

function makeKeys(n) {
  return Array.from({ length: n }, (_, i) => `user:${i}:profile`);
}

function makeValue(kind, i) {
  const text = `${i}:`.padEnd(100, 'x');
  if (kind === 'object') return { id: i, name: `user ${i}`, tags: ['a', 'b'], seen: i * 1000 };
  return kind === 'string' ? text : Buffer.from(text);
}

// Uniformly random key indexes, the same sequence for every contender.
function makeOrder(n, count, seed) {
  const order = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    order[i] = x % n;
  }
  return order;
}

// ns per get over `order`. fresh: each key string is built at the get, as
// an application builds it from a request (`user:${id}:profile`); otherwise
// the same prebuilt string objects are passed again and again, lru-cache's
// best case (V8 keeps a string's hash in the string, so a Map lookup never
// reads the key's characters again; a native cache must).
function timeGets(cache, keys, order, fresh) {
  let sink = 0;
  const start = process.hrtime.bigint();
  if (fresh) {
    for (let i = 0; i < order.length; i++) {
      const v = cache.get(`user:${order[i]}:profile`);
      sink += v.length || 1;
    }
  } else {
    for (let i = 0; i < order.length; i++) {
      const v = cache.get(keys[order[i]]);
      sink += v.length || 1;
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  if (sink === 0) throw new Error('no values read');
  return ns / order.length;
}

function fill(cache, keys, kind) {
  for (let i = 0; i < keys.length; i++) cache.set(keys[i], makeValue(kind, i));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// ---- worker side ----

function workerMain() {
  const { LarderCache } = require(PKG);
  const LRUCache = loadLruCache();
  const { kind, nkeys, gets, handle, seed } = workerData;
  const keys = makeKeys(nkeys);
  const order = makeOrder(nkeys, gets, seed);
  const larder = new LarderCache({ handle });
  const lru = new LRUCache({ max: nkeys });
  fill(lru, keys, kind);
  for (const fresh of [true, false]) {  // warm up
    timeGets(lru, keys, order.subarray(0, 200000), fresh);
    timeGets(larder, keys, order.subarray(0, 200000), fresh);
  }
  parentPort.on('message', (m) => {
    if (m === 'done') {
      larder.close().then(() => process.exit(0));
      return;
    }
    const cache = m.who === 'lru' ? lru : larder;
    parentPort.postMessage(timeGets(cache, keys, order, m.fresh));
  });
  parentPort.postMessage('ready');
}

// ---- main side ----

async function runWorkers(kind, nkeys, gets, rounds, nworkers, larder, fresh) {
  const workers = [];
  for (let w = 0; w < nworkers; w++) {
    const worker = new Worker(__filename, {
      workerData: { kind, nkeys, gets, handle: larder.share(), seed: 7 + w },
    });
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    workers.push(worker);
  }
  const ask = (what) => Promise.all(workers.map((w) => new Promise((resolve) => {
    w.once('message', resolve);
    w.postMessage(what);
  })));
  const results = { lru: [], larder: [] };
  for (let r = 0; r < rounds; r++) {
    for (const who of r % 2 ? ['larder', 'lru'] : ['lru', 'larder']) {
      const perWorker = await ask({ who, fresh });
      results[who].push(perWorker.reduce((a, b) => a + b, 0) / perWorker.length);
    }
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => { w.once('exit', resolve); w.postMessage('done'); })));
  return { lru: median(results.lru), larder: median(results.larder) };
}

async function main() {
  const nkeys = arg('keys', 100000);
  const gets = arg('gets', 2000000);
  const rounds = arg('rounds', 5);
  const nworkers = arg('workers', 2);
  // Objects go through the V8 serializer (a copy per get; lru-cache hands
  // back the object itself): --objects adds them.
  const kinds = process.argv.includes('--objects') ? ['string', 'buffer', 'object'] : ['string', 'buffer'];
  const json = process.argv.includes('--json');
  const { LarderCache } = require(PKG);
  const LRUCache = loadLruCache();
  const keys = makeKeys(nkeys);
  const order = makeOrder(nkeys, gets, 1);
  const report = [];
  for (const kind of kinds) {
    const lru = new LRUCache({ max: nkeys });
    // Bounded by bytes only: with the engine's per-stripe shares of an entry
    // bound (until the bounds are global) a cache of exactly nkeys could evict.
    const larder = new LarderCache({ maxBytes: 256 << 20 });
    fill(lru, keys, kind);
    fill(larder, keys, kind);
    for (const fresh of [true, false]) {
      const single = { lru: [], larder: [] };
      timeGets(lru, keys, order.subarray(0, 200000), fresh);
      timeGets(larder, keys, order.subarray(0, 200000), fresh);
      for (let r = 0; r < rounds; r++) {
        for (const who of r % 2 ? ['larder', 'lru'] : ['lru', 'larder']) {
          single[who].push(timeGets(who === 'lru' ? lru : larder, keys, order, fresh));
        }
      }
      const one = { lru: median(single.lru), larder: median(single.larder) };
      report.push({ kind, keys: fresh ? 'built per get' : 'prebuilt', threads: 1, ...one,
                    ratio: one.larder / one.lru });
      if (nworkers > 0) {
        const many = await runWorkers(kind, nkeys, gets, rounds, nworkers, larder, fresh);
        report.push({ kind, keys: fresh ? 'built per get' : 'prebuilt', threads: nworkers, ...many,
                      ratio: many.larder / many.lru });
      }
    }
    await larder.close();
  }
  if (json) {
    console.log(JSON.stringify(report));
    return;
  }
  console.log(`get() of 100-byte values (objects: 4 fields), ${nkeys} resident keys, uniformly random, ` +
              `median of ${rounds} interleaved rounds of ${gets} gets`);
  console.log('value    keys           threads    lru-cache ns/get  larder ns/get  ratio');
  for (const r of report) {
    const where = r.threads === 1 ? '1' : `${r.threads} workers`;
    console.log(`${r.kind.padEnd(8)} ${r.keys.padEnd(14)} ${where.padEnd(10)} ` +
                `${r.lru.toFixed(0).padStart(16)} ${r.larder.toFixed(0).padStart(14)}  ` +
                `${r.ratio.toFixed(2)}x`);
  }
  console.log('keys built per get: `user:${id}:profile` made at each call, as an application does; ' +
              'prebuilt: the same string objects again (lru-cache\'s best case).');
  console.log('with workers: each lru-cache is private to its worker; the LarderCache is one cache ' +
              'shared by all of them.');
}

if (isMainThread) {
  main().catch((e) => { console.error(e); process.exit(1); });
} else {
  workerMain();
}
