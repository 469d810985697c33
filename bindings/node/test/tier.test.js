'use strict';
// TieredCache: Redis as the shared second tier. Starts its own redis-server
// on a free 127.0.0.1 port (skipped, saying why, when none is installed).
// Two TieredCache objects in this process stand for two processes: each has
// its own L1 and its own Redis connections.
const test = require('node:test');
const assert = require('node:assert');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const pkg = require('../test-support').pkg;
const { TieredCache, LarderError } = require(pkg);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function until(pred, ms = 2000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

const redisServer = process.env.LARDER_REDIS_SERVER || 'redis-server';
const haveRedis = spawnSync(redisServer, ['--version']).status === 0;
const skip = haveRedis ? false : 'redis-server is not installed (apt-get install redis-server)';

test.describe('TieredCache', { skip }, () => {
  let server;
  let port;
  const open = [];
  const make = (o = {}) => {
    const c = new TieredCache({ port, max: 1000, ...o });
    open.push(c);
    return c;
  };

  test.before(async () => {
    port = await freePort();
    server = spawn(redisServer, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
                                    '--appendonly', 'no'], { stdio: 'ignore' });
    const end = Date.now() + 5000;
    while (!(await canConnect(port))) {
      if (Date.now() > end || server.exitCode !== null) throw new Error('redis-server did not start');
      await sleep(20);
    }
  });

  test.after(() => {
    for (const c of open) c.close();
    if (server) server.kill('SIGKILL');
  });

  test('a miss runs the loader and fills Redis; another cache reads it from Redis', () => {
    const a = make();
    const b = make();
    let loadsA = 0;
    assert.strictEqual(a.get('user:1', (k) => { loadsA++; return `loaded ${k}`; }), 'loaded user:1');
    assert.strictEqual(a.get('user:1', () => { loadsA++; return 'again'; }), 'loaded user:1');  // L1
    assert.strictEqual(loadsA, 1);
    assert.strictEqual(b.get('user:1', () => assert.fail('b must not load: Redis has it')),
                       'loaded user:1');
    assert.strictEqual(b.get('user:1'), 'loaded user:1');  // no loader: L1 or Redis
    const sa = a.stats();
    assert.strictEqual(sa.loads, 1);
    assert.strictEqual(sa.fills, 1);
    assert.strictEqual(sa.l2Misses, 1);
    assert.ok(sa.l1Hits >= 1);
    assert.strictEqual(b.stats().l2Hits, 1);
  });

  test('values: strings, Buffers, numbers, objects; undefined is not found', () => {
    const a = make();
    const b = make();
    a.set('v:s', 'héllo');
    a.set('v:b', Buffer.from([0, 1, 2, 255]));
    a.set('v:n', 42.5);
    a.set('v:o', { x: [1, 2] });
    assert.strictEqual(b.get('v:s'), 'héllo');
    assert.deepStrictEqual(b.get('v:b'), Buffer.from([0, 1, 2, 255]));
    assert.strictEqual(b.get('v:n'), 42.5);
    assert.deepStrictEqual(b.get('v:o'), { x: [1, 2] });
    assert.strictEqual(b.get('v:none'), undefined);
    let calls = 0;
    assert.strictEqual(b.get('v:none', () => { calls++; return undefined; }), undefined);
    assert.strictEqual(calls, 1);
    assert.strictEqual(b.get(Buffer.from('v:s')), 'héllo');  // a Buffer key is the same Redis key
    const big = Buffer.alloc(200 * 1024, 7);  // larger than the addon's scratch buffer
    a.set('v:big', big);
    assert.deepStrictEqual(b.get('v:big'), big);
    assert.strictEqual(b.get('v:bigs', () => 'z'.repeat(100000)), 'z'.repeat(100000));
  });

  test("a loader's error propagates and nothing is kept", () => {
    const a = make();
    const boom = new Error('db down');
    assert.throws(() => a.get('err:1', () => { throw boom; }), (e) => e === boom);
    assert.throws(() => a.get('err:2', async () => 'x'), /synchronous/);
    assert.strictEqual(a.get('err:1', () => 'fine'), 'fine');
  });

  test("set and delete in one cache drop the other's L1 copy", async () => {
    const a = make();
    const b = make();
    a.set('inv:1', 'one');
    assert.strictEqual(b.get('inv:1'), 'one');  // now in b's L1
    a.set('inv:1', 'two');
    assert.ok(await until(() => b.get('inv:1') === 'two'), 'b saw the new value within 2 s');
    a.delete('inv:1');
    assert.ok(await until(() => b.get('inv:1') === undefined), 'b saw the delete within 2 s');
    b.set('inv:2', 'x');
    assert.strictEqual(a.get('inv:2'), 'x');
    b.invalidate('inv:2');
    assert.ok(await until(() => a.get('inv:2') === undefined), 'a saw the invalidation within 2 s');
    assert.ok(b.stats().invalidatedKeys >= 1 || a.stats().invalidatedKeys >= 1);
  });

  test('a set with a ttl expires in Redis', async () => {
    const a = make({ l1MaxTtl: 50 });
    a.set('ttl:1', 'soon gone', { ttl: 1000 });  // long enough to read it back on a loaded machine
    assert.strictEqual(a.get('ttl:1'), 'soon gone');
    assert.ok(await until(() => a.get('ttl:1') === undefined, 5000));
  });

  test('broadcast tracking with prefixes', async () => {
    const a = make({ prefixes: ['bc:'] });
    const b = make({ prefixes: ['bc:'] });
    a.set('bc:1', 'one');
    assert.strictEqual(b.get('bc:1'), 'one');
    a.set('bc:1', 'two');
    assert.ok(await until(() => b.get('bc:1') === 'two'));
    assert.throws(() => new TieredCache({ port, prefixes: 'bc:' }), TypeError);
  });

  test('stats report the breaker and tracking', () => {
    const a = make();
    const s = a.stats();
    assert.strictEqual(s.breaker, 'closed');
    assert.strictEqual(s.trackingUp, true);
    for (const k of ['l1Hits', 'l1Misses', 'l2Hits', 'l2Misses', 'l2Errors', 'loads', 'fills',
                     'invalidatedKeys', 'writes', 'writeFailures']) {
      assert.strictEqual(typeof s[k], 'number', k);
    }
  });

  test('close: idempotent, and calls after it throw Closed', () => {
    const a = new TieredCache({ port });
    a.set('c:1', 'x');
    a.close();
    a.close();
    assert.strictEqual(a.closed, true);
    assert.throws(() => a.get('c:1'), (e) => e instanceof LarderError && e.name === 'Closed');
    assert.throws(() => a.stats(), { name: 'Closed' });
  });

  test("the READMEs' Node example runs as written against this Redis", () => {
    const block = (file) => {
      const text = fs.readFileSync(path.join(__dirname, '..', ...file), 'utf8');
      const m = [...text.matchAll(/^```js\n([\s\S]*?)^```$/gm)].find((b) => b[1].includes('new TieredCache'));
      assert.ok(m, `${file.join('/')} has a js block with new TieredCache`);
      return m[1];
    };
    const example = block(['README.md']);
    assert.strictEqual(block(['..', '..', 'README.md']), example, 'both READMEs show the same example');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-tier-example-'));
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'));
      fs.symlinkSync(pkg, path.join(dir, 'node_modules', 'larder'), 'dir');
      fs.writeFileSync(path.join(dir, 'example.js'), example);
      const r = spawnSync(process.execPath, [path.join(dir, 'example.js')],
                          { cwd: dir, encoding: 'utf8', timeout: 10000,
                            env: { ...process.env, REDIS_PORT: String(port) } });
      assert.strictEqual(r.status, 0, r.stderr);
      assert.strictEqual(r.stdout, 'row of user:42\nrow of user:42\nclosed\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a loader that closes the cache: get throws Closed, nothing is freed under it', () => {
    const a = new TieredCache({ port });
    assert.throws(() => a.get('close:1', () => { a.close(); return 'x'; }), { name: 'Closed' });
    assert.strictEqual(a.closed, true);
    a.close();
  });

  test('bad options and keys are TypeErrors', () => {
    assert.throws(() => new TieredCache({ port, nope: 1 }), TypeError);
    assert.throws(() => new TieredCache({ port, ttl: 1000 }), /redisTtl/);
    assert.throws(() => new TieredCache({ port, maxSize: 1, maxBytes: 1 }), TypeError);
    const a = make();
    assert.throws(() => a.get(42), TypeError);
  });
});

test('an unreachable Redis throws Unavailable, naming the address', async () => {
  const port = await freePort();  // nothing listens there
  assert.throws(() => new TieredCache({ port, connectTimeout: 500 }), (e) => {
    assert.ok(e instanceof LarderError);
    assert.strictEqual(e.name, 'Unavailable');
    assert.strictEqual(e.code, 17);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    return true;
  });
});
