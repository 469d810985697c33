'use strict';
// Node loads an addon once per worker and unloads it when the worker ends,
// while other threads (the main thread, libuv's pool) that used its caches
// live on. The addon must survive that: 50 workers come and go, then the main
// thread keeps using its own cache and the process exits cleanly.
const test = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const pkg = process.env.LARDER_NODE_PACKAGE || path.join(__dirname, '..');

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
