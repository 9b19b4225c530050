// The folder import rules of the design (../shared/docs/design.md, "Folders"), checked on every
// module of src/: each folder imports only what its row allows, so the layers stay layers. The
// modules at the top of src/ (metrics, version, process-tree, prefix-room) are shared by all and
// import nothing of ours. Where the code departs from the table, the departure is listed below
// with its reason, and nothing else may.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

interface Import {
  /** The importing module, relative to src/. */
  from: string;
  /** The imported module, relative to src/, with its .ts name. */
  to: string;
  typeOnly: boolean;
}

function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return modules(path);
    return entry.name.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** Every relative import and re-export of a module (static and dynamic). */
function importsOf(module: string): Import[] {
  const text = readFileSync(join(SRC, module), 'utf8');
  const found: Import[] = [];
  const statement = /^(import|export)(\s+type)?\b[^;]*?\bfrom\s+'(\.[^']+)'|\bimport\(\s*'(\.[^']+)'\s*\)|^import\s+'(\.[^']+)'/gms;
  for (const match of text.matchAll(statement)) {
    const specifier = match[3] ?? match[4] ?? match[5]!;
    const to = normalize(join(dirname(module), specifier)).replace(/\.js$/, '.ts');
    found.push({ from: module, to, typeOnly: match[2] !== undefined });
  }
  return found;
}

const folderOf = (module: string): string => (module.includes('/') ? module.slice(0, module.indexOf('/')) : '.');

/** The design's table: what each folder may import besides itself and the shared top-level modules. */
const MAY_IMPORT: Record<string, (to: string, typeOnly: boolean) => boolean> = {
  cli: () => true,
  config: () => false,
  server: (to) => ['auth', 'session', 'protocol', 'target', 'config'].includes(folderOf(to)),
  protocol: () => false,
  auth: (to) => folderOf(to) === 'config',
  target: (to) => to === 'backend/types.ts',
  session: (to, typeOnly) => to === 'backend/types.ts' || (folderOf(to) === 'protocol' && typeOnly),
  backend: () => false,
  '.': () => false,
};

/** Departures from the table, each with its reason. */
const EXCEPTIONS: Array<{ from: string; to: string; why: string }> = [
  { from: 'server/session-runner.ts', to: 'backend/types.ts', why: 'the runner hands the session the backend that fits its target' },
  { from: 'server/app.ts', to: 'backend/types.ts', why: "a backend's errors become HTTP statuses in one place (BACKEND_ERROR_HTTP)" },
  { from: 'server/session-routes.ts', to: 'backend/types.ts', why: 'the session API validates namespace names against the ones a backend can enter' },
  { from: 'session/exec-session.ts', to: 'protocol/status.ts', why: 'a session ends with a Status object, built by the protocol module' },
];

test('every module imports only what its folder may (design.md, Folders)', () => {
  const all = modules();
  assert.ok(all.length > 40, `found the modules of src/ (${all.length})`);
  const shared = new Set(all.filter((module) => folderOf(module) === '.'));
  const breaches: string[] = [];
  const used = new Set<string>();
  for (const module of all) {
    const folder = folderOf(module);
    const allowed = MAY_IMPORT[folder];
    assert.ok(allowed, `src/${folder}/ has no row in the table`);
    for (const { from, to, typeOnly } of importsOf(module)) {
      if (folderOf(to) === folder && folder !== '.') continue;
      if (shared.has(to) && folder !== '.') continue;
      if (allowed(to, typeOnly)) continue;
      const exception = EXCEPTIONS.find((e) => e.from === from && e.to === to);
      if (exception) {
        used.add(`${from} → ${to}`);
        continue;
      }
      breaches.push(`${from} imports ${to}${typeOnly ? ' (type only)' : ''}`);
    }
  }
  assert.deepEqual(breaches, []);
  assert.deepEqual(
    EXCEPTIONS.map((e) => `${e.from} → ${e.to}`).filter((e) => !used.has(e)),
    [],
    'every listed departure still exists (an unused one is removed from the list)',
  );
});

test('the import scan sees static, type-only, re-exported and dynamic imports', () => {
  const cli = importsOf('cli/main.ts');
  assert.ok(cli.some((i) => i.to === 'cli/cli.ts'), 'a dynamic import');
  assert.ok(cli.some((i) => i.to === 'cli/heap-sizing.ts'), 'a bare import');
  const session = importsOf('session/exec-session.ts');
  assert.ok(session.some((i) => i.to === 'protocol/channel-connection.ts' && i.typeOnly), 'a type-only import');
  assert.ok(session.some((i) => i.to === 'backend/types.ts' && !i.typeOnly), 'an import of values');
});
