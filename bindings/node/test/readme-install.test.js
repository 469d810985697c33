'use strict';
// The README's install commands, run exactly as written: the blocks between
// <!-- node-install:begin/end --> and <!-- node-pack:begin/end --> in
// bindings/node/README.md, in one shell, from a fresh copy of the
// repository (the files git tracks, plus new ones not ignored: what a clone
// of this tree would hold), into a new application directory.
//
// It builds the engine from scratch (a minute or more), so it runs only when
// LARDER_README_WORK names a scratch directory: the CTest
// node_readme_commands_run_verbatim sets it. With LARDER_JEMALLOC_DIR naming
// a built private jemalloc, the copy's build-deps/ is seeded with it, so
// scripts/bootstrap.sh finds it built instead of building it again (what it
// would do in a real clone; the commands themselves are unchanged).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const work = process.env.LARDER_README_WORK;
const repo = path.resolve(__dirname, '..', '..', '..');
const readme = path.join(repo, 'bindings', 'node', 'README.md');

function block(text, name) {
  const m = text.match(new RegExp(`<!-- ${name}:begin -->\\s*\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\s*<!-- ${name}:end -->`));
  assert.ok(m, `README.md has no ${name} block`);
  return m[1];
}

test('the README marks its install commands', () => {
  const text = fs.readFileSync(readme, 'utf8');
  assert.match(block(text, 'node-install'), /npm install "\$LARDER\/build-release\/node"/);
  assert.match(block(text, 'node-pack'), /npm pack/);
});

test('the README\'s install commands work as written from a fresh copy',
     { skip: !work && 'set LARDER_README_WORK to a scratch directory (the CTest does)', timeout: 30 * 60 * 1000 },
     () => {
       const text = fs.readFileSync(readme, 'utf8');
       fs.rmSync(work, { recursive: true, force: true });
       const root = path.join(work, 'larder');
       fs.mkdirSync(root, { recursive: true });
       const files = execFileSync('git', ['-C', repo, 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
                                  { encoding: 'utf8' }).split('\0').filter(Boolean);
       for (const f of files) {
         const from = path.join(repo, f);
         if (!fs.existsSync(from)) continue;  // deleted in the working tree
         fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
         fs.copyFileSync(from, path.join(root, f));
         fs.chmodSync(path.join(root, f), fs.statSync(from).mode);
       }
       const jemalloc = process.env.LARDER_JEMALLOC_DIR;
       if (jemalloc && fs.existsSync(path.join(jemalloc, 'lib', 'libjemalloc_pic.a'))) {
         fs.cpSync(jemalloc, path.join(root, 'build-deps', 'jemalloc'), { recursive: true });
       }
       const script = ['set -euo pipefail', `cd ${JSON.stringify(root)}`,
                       block(text, 'node-install'), block(text, 'node-pack')].join('\n');
       const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 29 * 60 * 1000,
                                                     maxBuffer: 64 << 20 });
       const log = `--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
       assert.strictEqual(r.status, 0, log);
       const lines = r.stdout.trim().split('\n');
       assert.ok(lines.includes('hello'), log);
       assert.strictEqual(lines[lines.length - 1], 'packed', log);
       // The application holds the packed copy, not a link into the build.
       const installed = path.join(work, 'my-app', 'node_modules', 'larder');
       assert.ok(!fs.lstatSync(installed).isSymbolicLink());
       assert.ok(fs.existsSync(path.join(installed, 'larder.node')));
       assert.ok(fs.existsSync(path.join(installed, 'index.d.ts')));
     });
