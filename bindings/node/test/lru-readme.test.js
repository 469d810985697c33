'use strict';
// lru-cache's own README examples, unchanged, against LarderCache: every
// ```js and ```ts block of node_modules/lru-cache/README.md runs twice, as
// its own program, with 'lru-cache' resolving to lru-cache itself (the
// control) and then to a package exporting LarderCache as LRUCache. Every
// example that runs with lru-cache must run with LarderCache, except those
// listed in CANNOT with the reason.
//
// The harness, the same for both runs, only supplies what the examples take
// for granted: `assert`, and the helpers they call but do not define
// (freeFromMemoryOrWhatever, ...). TypeScript blocks are stripped of their
// types first (typescript's transpileModule: no type checking, no change
// to what runs). A block that offers alternative ways to import the
// package ("either works") runs once per alternative.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const pkgDir = require('../test-support').pkg;
const devModules = path.join(__dirname, '..', 'node_modules');
const lruDir = path.join(devModules, 'lru-cache');
const haveDeps = fs.existsSync(path.join(lruDir, 'README.md')) &&
                 fs.existsSync(path.join(devModules, 'typescript'));

// Examples that run with lru-cache but not with LarderCache, and why.
const CANNOT = {
  'Usage (require)': 'keys an object by identity (cache.set(someObject, ...)): LarderCache keys are ' +
                     'strings, numbers and Buffers, since identity cannot be shared between workers',
  'Usage (import)': 'the same example with ESM import: object keys',
};

function examples() {
  const text = fs.readFileSync(path.join(lruDir, 'README.md'), 'utf8');
  const out = [];
  let section = '';
  const re = /^(#+ .*)$|^```(js|ts)\n([\s\S]*?)^```$/gm;
  let m;
  let n = 0;
  while ((m = re.exec(text)) !== null) {
    if (m[1]) { section = m[1].replace(/^#+ /, ''); n = 0; continue; }
    n += 1;
    out.push({ name: `${section}${n > 1 ? ` #${n}` : ''}`, lang: m[2], code: m[3] });
  }
  return out;
}

// A block offering alternative imports of the package (one per line)
// becomes one variant per alternative.
function variants(ex) {
  const lines = ex.code.split('\n');
  const alt = lines.map((l, i) => [l, i])
    .filter(([l]) => /^\s*(import .* from '[^']*lru-cache[^']*'|const .* = require\('lru-cache'\))/.test(l));
  if (alt.length < 2) return [ex];
  return alt.map(([line, i]) => ({
    name: `${ex.name} (${/require\(/.test(line) ? 'require' : /http/.test(line) ? 'URL import' : 'import'})`,
    lang: ex.lang,
    code: lines.filter((_, j) => !alt.some(([, k]) => k === j) || j === i).join('\n'),
  }));
}

const PRELUDE = `
globalThis.assert = require('node:assert');
globalThis.freeFromMemoryOrWhatever = () => {};
globalThis.logInsertionOrWhatever = () => {};
`;

// For fragments that use a `cache` (and `myKey`) the text around them
// introduces: the same, made by the package under test.
const CONTEXT = `
globalThis.cache = new (require(require.resolve('lru-cache', { paths: [process.cwd()] })).LRUCache)({ max: 100 });
globalThis.myKey = 'my key';
`;

function run(dir, ex, ts) {
  let code = ex.code;
  if (ex.lang === 'ts') {
    code = ts.transpileModule(code, { compilerOptions: { target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext, verbatimModuleSyntax: false } }).outputText;
  }
  const esm = /^\s*(import|export)\s/m.test(code) || /\bawait import\(/.test(code);
  const file = path.join(dir, `example.${esm ? 'mjs' : 'cjs'}`);
  fs.writeFileSync(path.join(dir, 'prelude.cjs'), PRELUDE + (ex.context ? CONTEXT : ''));
  fs.writeFileSync(file, code);
  const r = spawnSync(process.execPath, ['--require', path.join(dir, 'prelude.cjs'), file],
                      { cwd: dir, encoding: 'utf8', timeout: 10000 });
  return { ok: r.status === 0, error: (r.stderr || r.error || '').toString().split('\n')
    .find((l) => /Error|error/.test(l)) || `exit ${r.status}` };
}

// A directory whose node_modules/lru-cache is the given package.
function sandbox(name, lruCacheMain) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `larder-lru-readme-${name}-`));
  const mod = path.join(dir, 'node_modules', 'lru-cache');
  fs.mkdirSync(mod, { recursive: true });
  if (lruCacheMain === null) {
    fs.rmSync(mod, { recursive: true });
    fs.symlinkSync(lruDir, mod);
  } else {
    fs.writeFileSync(path.join(mod, 'package.json'), JSON.stringify({
      name: 'lru-cache', version: '0.0.0-larder',
      exports: { import: './index.mjs', require: './index.cjs' },
    }));
    fs.writeFileSync(path.join(mod, 'index.cjs'),
      `const { LarderCache } = require(${JSON.stringify(lruCacheMain)});\nmodule.exports = { LRUCache: LarderCache };\n`);
    fs.writeFileSync(path.join(mod, 'index.mjs'),
      `import larder from ${JSON.stringify(path.join(lruCacheMain, 'index.js'))};\nexport const LRUCache = larder.LarderCache;\n`);
  }
  return dir;
}

test('lru-cache\'s README examples run unchanged against LarderCache',
     { skip: !haveDeps && 'lru-cache and typescript devDependencies missing (npm ci in bindings/node)' },
     () => {
       const ts = require(path.join(devModules, 'typescript'));
       const control = sandbox('lru', null);
       const larder = sandbox('larder', path.resolve(pkgDir));
       const table = [];
       try {
         for (let ex of examples().flatMap(variants)) {
           let a = run(control, ex, ts);
           let b = run(larder, ex, ts);
           if (!a.ok && /ReferenceError: (cache|myKey) is not defined/.test(a.error)) {
             ex = { ...ex, name: `${ex.name} (with the cache the text assumes)`, context: true };
             a = run(control, ex, ts);
             b = run(larder, ex, ts);
           }
           table.push({ example: ex.name, lruCache: a.ok ? 'runs' : `fails: ${a.error}`,
                        larder: b.ok ? 'runs' : `fails: ${b.error}` });
           if (a.ok && !b.ok) {
             assert.ok(ex.name in CANNOT, `"${ex.name}" runs with lru-cache, not with LarderCache: ${b.error}`);
           }
           if (ex.name in CANNOT) assert.ok(a.ok && !b.ok, `"${ex.name}" is listed in CANNOT but ${b.ok ? 'runs' : 'fails with lru-cache too'}`);
         }
       } finally {
         fs.rmSync(control, { recursive: true, force: true });
         fs.rmSync(larder, { recursive: true, force: true });
       }
       for (const row of table) {
         const why = CANNOT[row.example] ? ` (${CANNOT[row.example]})` : '';
         console.log(`# ${row.example}: lru-cache ${row.lruCache}; LarderCache ${row.larder}${why}`);
       }
       assert.ok(table.some((r) => r.lruCache === 'runs' && r.larder === 'runs'));
     });
