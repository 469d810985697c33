'use strict';
// Node loads an addon once per worker and unloads it when the worker ends,
// while other threads (the main thread, libuv's pool) that used its caches
// live on. The addon must survive that: 50 workers come and go, then the main
// thread keeps using its own cache and the process exits cleanly.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const pkg = require('../test-support').pkg;

test('50 workers load the addon, use a cache and exit; the main thread goes on', async () => {
  const { LarderCache } = require(pkg);
  const main = new LarderCache({ maxBytes: 1 << 20 });
  main.set('before', 'workers');
  const body = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { LarderCache } = require(workerData.pkg);
    const c = new LarderCache({ maxBytes: 1 << 20 });
    for (let i = 0; i < 100; i++) c.set('k' + i, 'v' + i);
    let hits = 0;
    for (let i = 0; i < 100; i++) if (c.get('k' + i) === 'v' + i) hits++;
    parentPort.postMessage(hits);`;
  for (let round = 0; round < 5; round++) {
    const workers = [];
    for (let i = 0; i < 10; i++) {
      workers.push(new Promise((resolve, reject) => {
        const w = new Worker(body, { eval: true, workerData: { pkg } });
        let hits = -1;
        w.on('message', (m) => { hits = m; });
        w.on('error', reject);
        w.on('exit', (code) => (code === 0 ? resolve(hits) : reject(new Error(`exit ${code}`))));
      }));
    }
    for (const hits of await Promise.all(workers)) assert.strictEqual(hits, 100);
  }
  assert.strictEqual(main.get('before'), 'workers');
  for (let i = 0; i < 1000; i++) main.set('after' + i, String(i));
  assert.strictEqual(main.get('after999'), '999');
});

test('a child node process that runs the same and exits reports success', () => {
  // The clean exit itself is the check: a crash in thread-exit cleanup after
  // the addon was unloaded would kill the process with a signal.
  const { spawnSync } = require('node:child_process');
  const script = `
    const { Worker } = require('node:worker_threads');
    const { LarderCache } = require(${JSON.stringify(pkg)});
    const c = new LarderCache({ maxBytes: 1 << 20 });
    c.set('k', 'v');
    let left = 50;
    for (let i = 0; i < 50; i++) {
      const w = new Worker("const { LarderCache } = require(" + JSON.stringify(${JSON.stringify(pkg)}) + ");" +
        "const c = new LarderCache({ maxBytes: 1 << 20 }); c.set('a', 'b'); c.get('a');", { eval: true });
      w.on('exit', () => { if (--left === 0) { if (c.get('k') !== 'v') process.exit(3); } });
    }`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
  assert.strictEqual(r.status, 0, r.stderr);
});

// ---- handles: close() releases one, closeAll() ends the cache for all ----

function runWorker(pkgPath, body, workerData) {
  return new Promise((resolve, reject) => {
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const { LarderCache } = require(workerData.pkg);
      (async () => { ${body} })().then((r) => parentPort.postMessage({ ok: r }),
                                        (e) => parentPort.postMessage({ error: e.name + ': ' + e.message }));`,
    { eval: true, workerData: { pkg: pkgPath, ...workerData } });
    let result;
    w.on('message', (m) => { result = m; });
    w.on('error', reject);
    w.on('exit', () => (result && 'error' in result ? reject(new Error(result.error)) : resolve(result && result.ok)));
  });
}

test("a worker's close() releases its handle only; the others keep the cache", async () => {
  const { LarderCache } = require(pkg);
  const main = new LarderCache({ max: 100 });
  main.set('k', 'v');
  const seen = await runWorker(pkg, `
    const c = new LarderCache({ handle: workerData.handle });
    const before = c.get('k');
    c.set('from-worker', 'w');
    await c.close();
    let after;
    try { c.get('k'); } catch (e) { after = e.name; }
    return [before, after];`, { handle: main.share() });
  assert.deepStrictEqual(seen, ['v', 'Closed']);
  assert.strictEqual(main.get('k'), 'v');  // still open here
  assert.strictEqual(main.get('from-worker'), 'w');
  // A worker that ends without close() lets go of its handle too.
  await runWorker(pkg, 'new LarderCache({ handle: workerData.handle }).set("x", 1);', { handle: main.share() });
  assert.strictEqual(main.get('x'), 1);
  await main.close();
});

test('the native cache ends with its last handle: attaching afterwards fails', async () => {
  const { LarderCache } = require(pkg);
  const a = new LarderCache({ max: 10 });
  const shared = a.share();
  const b = new LarderCache({ handle: shared });
  await a.close();
  b.set('still', 'here');
  assert.strictEqual(b.get('still'), 'here');
  await b.close();
  assert.throws(() => new LarderCache({ handle: shared }), (e) => e.name === 'Closed');
});

test('closeAll() ends the cache for every handle in every worker', async () => {
  const { LarderCache } = require(pkg);
  const main = new LarderCache({ max: 100 });
  const { SharedArrayBuffer: SAB } = globalThis;
  const flag = new Int32Array(new SAB(4));
  const worker = runWorker(pkg, `
    const c = new LarderCache({ handle: workerData.handle });
    c.set('w', 1);
    Atomics.store(workerData.flag, 0, 1);
    Atomics.notify(workerData.flag, 0);
    while (Atomics.load(workerData.flag, 0) !== 2) Atomics.wait(workerData.flag, 0, 1, 50);
    try { c.get('w'); return 'open'; } catch (e) { return e.name; }`, { handle: main.share(), flag });
  while (Atomics.load(flag, 0) !== 1) await new Promise((r) => setTimeout(r, 5));
  await main.closeAll();
  Atomics.store(flag, 0, 2);
  Atomics.notify(flag, 0);
  assert.strictEqual(await worker, 'Closed');
  assert.throws(() => main.get('w'), (e) => e.name === 'Closed');
});

test('the attaching worker uses the creator\'s settings (ttl, sizes) and its own dispose', async () => {
  const { LarderCache } = require(pkg);
  const log = [];
  const main = new LarderCache({ max: 2, ttl: 10000, dispose: (v, k, r) => log.push(['main', k, r]) });
  main.set('a', 1);
  const seen = await runWorker(pkg, `
    const log = [];
    const c = new LarderCache({ handle: workerData.handle, dispose: (v, k, r) => log.push([k, v, r]) });
    c.set('b', 2);
    c.set('c', 3);  // evicts a: this worker's call, this worker's dispose
    return [c.getRemainingTTL('c') > 9000, log];`, { handle: main.share() });
  assert.deepStrictEqual(seen, [true, [['a', 1, 'evict']]]);
  assert.deepStrictEqual(log, []);  // reported once, to the worker whose call removed it
  main.delete('b');
  assert.deepStrictEqual(log, [['main', 'b', 'delete']]);
  await main.close();
});

test('fetch: callers in two workers share one load', async () => {
  const { LarderCache } = require(pkg);
  let calls = 0;
  const main = new LarderCache({
    max: 100,
    fetchMethod: async (k) => { calls += 1; await new Promise((r) => setTimeout(r, 200)); return `main loaded ${k}`; },
  });
  const local = main.fetch('hot');
  const remote = runWorker(pkg, `
    const c = new LarderCache({ handle: workerData.handle, fetchMethod: async () => 'worker loaded' });
    return c.fetch('hot');`, { handle: main.share() });
  assert.deepStrictEqual(await Promise.all([local, remote]), ['main loaded hot', 'main loaded hot']);
  assert.strictEqual(calls, 1);
  await main.close();
});

test('a worker that ends while it waits for another worker\'s load: the load completes safely', () => {
  // Node deletes a worker's thread-safe functions when the worker ends, however
  // many other threads still hold them; the load completing afterwards (on the
  // main thread) must not call into the gone worker.
  const { spawnSync } = require('node:child_process');
  const script = `
    const { Worker } = require('node:worker_threads');
    const { LarderCache } = require(${JSON.stringify(pkg)});
    (async () => {
      for (let round = 0; round < 20; round++) {
        let release;
        const gate = new Promise((r) => { release = r; });
        const c = new LarderCache({ max: 10, fetchMethod: async () => { await gate; return 'v' + round; } });
        const leader = c.fetch('k');
        const w = new Worker(\`
          const { parentPort, workerData } = require('node:worker_threads');
          const { LarderCache } = require(\${JSON.stringify(${JSON.stringify(pkg)})});
          const c = new LarderCache({ handle: workerData.handle, fetchMethod: async () => 'never' });
          c.fetch('k');
          parentPort.postMessage('waiting');\`, { eval: true, workerData: { handle: c.share() } });
        await new Promise((r) => w.once('message', r));
        await w.terminate();
        release();
        if (await leader !== 'v' + round) process.exit(3);
        await c.close();
      }
      console.log('ok');
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.strictEqual(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok/);
});
