// makeDirectories: mkdir -p that makes each missing directory once and fails at once where Node.js's
// recursive mkdirSync would retry for ever (a path under /proc).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { makeDirectories } from '../../src/make-directories.js';

const dir = mkdtempSync(join(tmpdir(), 'execlet-mkdirs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('makes every missing directory with the mode, and leaves one that exists as it is', () => {
  const deep = join(dir, 'a', 'b', 'c');
  makeDirectories(deep, 0o700);
  for (const path of [join(dir, 'a'), join(dir, 'a', 'b'), deep]) assert.equal(statSync(path).mode & 0o777, 0o700, path);
  makeDirectories(deep, 0o755);
  assert.equal(statSync(deep).mode & 0o777, 0o700, 'not changed');
  makeDirectories(join(dir, 'a', '..', 'a', 'b', 'd'), 0o700);
  assert.ok(statSync(join(dir, 'a', 'b', 'd')).isDirectory());
});

it('fails at once, with the system error, under /proc (where Node.js retried for ever) and below a file', () => {
  assert.throws(() => makeDirectories('/proc/execlet-nope/state', 0o700), { code: 'ENOENT' });
  const file = join(dir, 'file');
  writeFileSync(file, '');
  assert.throws(() => makeDirectories(join(file, 'x'), 0o700), { code: 'ENOTDIR' });
});

it('a file, or a link to nothing, where the directory should be is ENOTDIR', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  assert.throws(() => makeDirectories(file, 0o700), { code: 'ENOTDIR' });
  const dangling = join(dir, 'dangling');
  symlinkSync(join(dir, 'nowhere'), dangling);
  assert.throws(() => makeDirectories(dangling, 0o700), { code: 'ENOTDIR' });
});
