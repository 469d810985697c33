'use strict';
// Code typed for lru-cache's LRUCache<K, V> compiles, unchanged, against
// LarderCache<K, V>: the same TypeScript source is type-checked (tsc
// --strict, the typescript devDependency) once against lru-cache's own
// declarations, as a control, and once with 'lru-cache' mapped to this
// package's index.d.ts (and once more importing LarderCache by name).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const pkgDir = require('../test-support').pkg;
const devModules = path.join(__dirname, '..', 'node_modules');

// Typical lru-cache code, typed with LRUCache<K, V> (and its namespace).
const source = `
import { LRUCache } from 'lru-cache';

interface User { id: string; name: string; joined: Date }

const users: LRUCache<string, User> = new LRUCache<string, User>({
  max: 500,
  ttl: 60_000,
  allowStale: false,
  updateAgeOnGet: true,
  dispose: (value: User, key: string, reason: LRUCache.DisposeReason) => {
    console.log(value.name, key, reason);
  },
  fetchMethod: async (id: string, stale: User | undefined, { signal }: { signal: AbortSignal }) => {
    if (signal.aborted) return stale;
    return { id, name: 'n', joined: new Date() };
  },
});

function remember(cache: LRUCache<string, User>, u: User): void {
  cache.set(u.id, u, { ttl: 1000 });
}
remember(users, { id: '1', name: 'Ada', joined: new Date() });
const maybe: User | undefined = users.get('1');
const peeked: User | undefined = users.peek('1', { allowStale: true });
const present: boolean = users.has('1');
const removed: boolean = users.delete('2');
const left: number = users.getRemainingTTL('1');
const count: number = users.size;
for (const [k, v] of users.entries()) console.log(k.toUpperCase(), v.name);
for (const k of users.keys()) console.log(k.length);
for (const v of users.values()) console.log(v.joined.getTime());
for (const [k, v] of users) console.log(k, v);
users.forEach((v: User, k: string) => console.log(v, k));
const found: User | undefined = users.find((v) => v.name === 'Ada');
const dumped: [string, LRUCache.Entry<User>][] = users.dump();
users.load(dumped);
users.purgeStale();
users.clear();

async function load(id: string): Promise<User | undefined> {
  const fresh = await users.fetch(id, { forceRefresh: true, allowStaleOnFetchRejection: true });
  return fresh ?? (await users.fetch(id));
}
void load('3');

const sized = new LRUCache<string, Buffer>({
  maxSize: 5000,
  sizeCalculation: (value: Buffer, key: string) => value.length + key.length,
  maxEntrySize: 1000,
  onInsert: (value: Buffer, key: string, reason: LRUCache.InsertReason) => console.log(key, reason, value.length),
});
sized.set('b', Buffer.from('x'), { size: 2 });
const total: number = sized.calculatedSize;
const byNumber = new LRUCache<number, { n: number }>({ max: 10, noDisposeOnSet: true });
byNumber.set(1, { n: 1 });
const opts: LRUCache.Options<number, { n: number }, unknown> = { max: 10 };
void [maybe, peeked, present, removed, left, count, found, total, opts];
`;

const haveTs = fs.existsSync(path.join(devModules, 'typescript'));

// One program, several files (tsc's start-up, lib.d.ts and @types/node are
// most of the time): the same source importing lru-cache itself (the
// control), this package under lru-cache's module name, and LarderCache by
// name; and a file that must not compile.
test('code typed for LRUCache<K, V> compiles against lru-cache and against LarderCache',
     { skip: !haveTs && 'the typescript devDependency is not installed (npm ci in bindings/node)' },
     () => {
       const ts = require(path.join(devModules, 'typescript'));
       const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'larder-types-'));
       try {
         const files = {
           'control.ts': source,
           'as-lru-cache.ts': source.replace("from 'lru-cache'", "from 'larder-as-lru-cache'"),
           'by-name.ts': source.replace("import { LRUCache } from 'lru-cache';",
                                        "import { LarderCache as LRUCache } from 'larder';"),
           'bad-key.ts': "import { LarderCache } from 'larder';\nexport const c = new LarderCache<object, string>({ max: 1 });\n",
         };
         for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
         const typings = path.join(pkgDir, 'index.d.ts');
         const program = ts.createProgram(Object.keys(files).map((f) => path.join(dir, f)), {
           strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS,
           moduleResolution: ts.ModuleResolutionKind.Node10, esModuleInterop: true, isolatedModules: false,
           types: ['node'], typeRoots: [path.join(devModules, '@types')], baseUrl: dir,
           paths: { 'lru-cache': [path.join(devModules, 'lru-cache')], larder: [typings],
                    'larder-as-lru-cache': [typings] },
         });
         const byFile = {};
         for (const d of ts.getPreEmitDiagnostics(program)) {
           const name = d.file ? path.basename(d.file.fileName) : '(global)';
           (byFile[name] = byFile[name] || []).push(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
         }
         const bad = byFile['bad-key.ts'] || [];
         delete byFile['bad-key.ts'];
         assert.deepStrictEqual(byFile, {}, 'type errors');
         assert.ok(bad.some((m) => /does not satisfy the constraint 'LarderKey'/.test(m)), bad.join('\n'));
       } finally {
         fs.rmSync(dir, { recursive: true, force: true });
       }
     });
