// Unit tests for the session marker (src/session/session-marker.ts) and the orphan reaper
// (src/session/reaper.ts), on real processes: `sh -c 'sleep 1000 & sleep 1001; :'` trees started
// with EXECLET_SESSION in their environment (inherited by the children), found through /proc and
// killed — also after their parent died, also when they ignore SIGHUP — while live sessions, the
// reaping process and its parents survive. Every test uses a scope of its own (a random state dir),
// so no reaper here can reach a process it did not start. Every process a test starts is recorded
// and killed in `after` by PID (checked against its start time), and every scope is swept once more.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { descendantsOf } from '../../src/process-tree.js';
import { findMarkedProcesses, findMarkedProcessesYielding, reapOrphans, startPeriodicReaper, type MarkedProcess, type ReapResult } from '../../src/session/reaper.js';
import {
  MARKER_VARIABLE,
  formatMarker,
  markerEnv,
  newInstanceId,
  parseMarker,
  scopeFor,
  type Marker,
} from '../../src/session/session-marker.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = join(REPO, 'test', 'fixtures', 'reaper-child.ts');
const TREE = 'sleep 1000 & sleep 1001; :'; // sh stays the parent of both (`; :` keeps it from exec'ing)

/** Every process started here, with its start time read independently of the code under test. */
const started = new Map<number, string>();
const scopes: string[] = [];
const tempDirs: string[] = [];

function readStat(pid: number): { state: string; startTime: string; ppid: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]), startTime: fields[19]! };
  } catch {
    return null;
  }
}

function remember(pid: number): void {
  const stat = readStat(pid);
  if (stat && !started.has(pid)) started.set(pid, stat.startTime);
}

/** The remembered process is still running (not a zombie, PID not reused). */
function alive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== null && stat.startTime === started.get(pid) && stat.state !== 'Z' && stat.state !== 'X';
}

function kill(pid: number, startTime: string | undefined): void {
  if (readStat(pid)?.startTime !== startTime) return; // gone, or the PID now belongs to someone else
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

after(() => {
  for (const [pid, startTime] of started) kill(pid, startTime);
  for (const scope of scopes) for (const p of findMarkedProcesses(scope)) kill(p.pid, p.startTime);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** A scope nobody else uses: the scope of a state dir that does not exist. */
function newScope(): string {
  const scope = scopeFor(join(tmpdir(), `execlet-reaper-test-${randomUUID()}`));
  scopes.push(scope);
  return scope;
}

function marker(scope: string, instance: string, session: string): string {
  return formatMarker({ scope, instance, session });
}

function envWith(markerValue: string | undefined, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env[MARKER_VARIABLE];
  if (markerValue !== undefined) env[MARKER_VARIABLE] = markerValue; // last, after any large variable
  return env;
}

/**
 * Starts `sh -c script` in a session of its own (detached: it does not die with the test's process
 * group) and waits until it has `expected` descendants; records them all. `pids` is sorted.
 */
async function startTree(
  script: string,
  markerValue: string | undefined,
  expected: number,
  extraEnv: Record<string, string> = {},
): Promise<{ child: ChildProcess; root: number; pids: number[] }> {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', env: envWith(markerValue, extraEnv) });
  child.on('error', () => undefined);
  const root = child.pid!;
  remember(root);
  let descendants: number[] = [];
  await waitFor(`${expected} descendants of ${root}`, () => {
    descendants = descendantsOf(root);
    descendants.forEach(remember);
    return descendants.length >= expected;
  });
  return { child, root, pids: sorted([root, ...descendants]) };
}

/** Two marked sleeps whose parent shell has exited: re-parented orphans. */
async function startReparented(markerValue: string): Promise<{ parent: number; pids: number[] }> {
  const child = spawn('sh', ['-c', 'sleep 1000 & echo $!; sleep 1001 & echo $!'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
    env: envWith(markerValue),
  });
  remember(child.pid!);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await exited(child);
  const pids = output.trim().split('\n').map(Number);
  assert.equal(pids.length, 2);
  pids.forEach(remember);
  return { parent: child.pid!, pids: sorted(pids) };
}

function sorted(pids: number[]): number[] {
  return [...pids].sort((a, b) => a - b);
}

function commandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
}

/** Collects onResult/onError calls of a periodic reaper and lets a test wait for the n-th one. */
function recorder<T>(): { items: T[]; push(item: T): void; atLeast(n: number): Promise<void> } {
  const items: T[] = [];
  let waiters: Array<{ n: number; resolve: () => void }> = [];
  return {
    items,
    push(item) {
      items.push(item);
      const ready = waiters.filter((w) => items.length >= w.n);
      waiters = waiters.filter((w) => items.length < w.n);
      ready.forEach((w) => w.resolve());
    },
    atLeast(n) {
      if (items.length >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
}

describe('session marker', () => {
  const good: Marker = { scope: 'a1b2c3d4e5f6', instance: '0123456789ab', session: randomUUID() };

  it('formats and parses back', () => {
    const value = formatMarker(good);
    assert.equal(value, `${good.scope}.${good.instance}.${good.session}`);
    assert.deepEqual(parseMarker(value), good);
    assert.equal(markerEnv(good), `EXECLET_SESSION=${value}`);
    assert.equal(MARKER_VARIABLE, 'EXECLET_SESSION');
    const plain = { ...good, session: 'Session-42' };
    assert.deepEqual(parseMarker(formatMarker(plain)), plain);
  });

  it('rejects anything that is not exactly scope.instance.session in their alphabets', () => {
    const { scope, instance } = good;
    for (const bad of [
      '',
      'garbage',
      `${scope}.${instance}`,
      `${scope}.${instance}.s.extra`,
      `${scope}..s`,
      `${scope}.${instance}.`,
      `.${instance}.s`,
      `A1B2C3D4E5F6.${instance}.s`, // upper-case hex
      `a1b2c3d4e5f.${instance}.s`, // 11 characters
      `a1b2c3d4e5f60.${instance}.s`, // 13 characters
      `g1b2c3d4e5f6.${instance}.s`, // not hex
      `${scope}.0123456789aZ.s`,
      `${scope}.${instance}.bad_session`,
      `${scope}.${instance}.with space`,
      `${scope}.${instance}.s\n`,
      ` ${scope}.${instance}.s`,
      `${scope}.${instance}.${'a'.repeat(129)}`,
      `${scope}.${instance}.sé`,
    ]) {
      assert.equal(parseMarker(bad), null, JSON.stringify(bad));
    }
    assert.deepEqual(parseMarker(`${scope}.${instance}.${'a'.repeat(128)}`), { scope, instance, session: 'a'.repeat(128) });
  });

  it('refuses to format a marker it could not parse back', () => {
    assert.throws(() => formatMarker({ ...good, session: 'a.b' }), /invalid session marker/);
    assert.throws(() => formatMarker({ ...good, scope: 'xyz' }), /invalid session marker/);
    assert.throws(() => markerEnv({ ...good, instance: '' }), /invalid session marker/);
  });

  it('derives a stable scope per state dir, different between dirs', () => {
    const scope = scopeFor('/var/lib/execlet');
    assert.match(scope, /^[0-9a-f]{12}$/);
    assert.equal(scopeFor('/var/lib/execlet'), scope);
    assert.equal(scopeFor('/var/lib/execlet/'), scope);
    assert.notEqual(scopeFor('/var/lib/execlet-2'), scope);
    assert.notEqual(scopeFor('/srv/execlet'), scope);
    assert.equal(scopeFor('relative/state'), scopeFor(join(process.cwd(), 'relative/state')));
  });

  it('makes a new random instance id each time', () => {
    const a = newInstanceId();
    assert.match(a, /^[0-9a-f]{12}$/);
    assert.notEqual(newInstanceId(), a);
  });
});

describe('findMarkedProcesses', () => {
  it('finds a marked tree (children inherit the marker), not other scopes, unmarked, malformed or zombie processes', async () => {
    const scope = newScope();
    const otherScope = newScope();
    const instance = newInstanceId();
    // A 10 kB variable before the marker: the marker is found across read chunks.
    const mine = await startTree(TREE, marker(scope, instance, 'session-1'), 2, { EXECLET_TEST_PADDING: 'x'.repeat(10_000) });
    const other = await startTree(TREE, marker(otherScope, instance, 'session-1'), 2);
    const unmarked = await startTree(TREE, undefined, 2);
    const malformed = await startTree(TREE, `${scope}.${instance}.bad_session`, 2);
    const truncated = await startTree(TREE, `${scope}.${instance}`, 2);
    // The shell forks `sleep 0`, then becomes `sleep 1000`, which never reaps it: a marked zombie.
    const withZombie = await startTree('sleep 0 & exec sleep 1000', marker(scope, instance, 'zombie'), 1);
    const zombie = withZombie.pids.find((pid) => pid !== withZombie.root)!;
    await waitFor('the zombie', () => readStat(zombie)?.state === 'Z');

    const found = findMarkedProcesses(scope);
    assert.deepEqual(sorted(found.map((p) => p.pid)), sorted([...mine.pids, withZombie.root]));
    for (const p of found) {
      const session = p.pid === withZombie.root ? 'zombie' : 'session-1';
      assert.deepEqual(p.marker, { scope, instance, session });
      assert.equal(p.startTime, started.get(p.pid));
    }
    for (const pid of [...other.pids, ...unmarked.pids, ...malformed.pids, ...truncated.pids, zombie]) {
      assert.ok(!found.some((p) => p.pid === pid), `${pid} is not a marked process of the scope`);
    }
    assert.deepEqual(sorted(findMarkedProcesses(otherScope).map((p) => p.pid)), other.pids);
  });

  describe('with a fake /proc', () => {
    const scope = 'a1b2c3d4e5f6';
    const instance = '0123456789ab';
    const valid = (session: string) => `${MARKER_VARIABLE}=${scope}.${instance}.${session}`;

    function statLine(pid: number, state = 'S', startTime = `${1000 + pid}`): string {
      // A command name with spaces and parentheses, as /proc allows.
      return `${pid} (sle ep) (x)) ${state} 1 ${pid} ${pid} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 ${startTime} 1000 100\n`;
    }

    /** A temp dir shaped like /proc: one directory per entry with `stat` and/or `environ`. */
    function fakeProc(entries: Record<string, { stat?: string; environ?: string }>): string {
      const root = mkdtempSync(join(tmpdir(), 'execlet-fake-proc-'));
      tempDirs.push(root);
      chmodSync(root, 0o755);
      for (const [name, files] of Object.entries(entries)) {
        mkdirSync(join(root, name));
        if (files.stat !== undefined) writeFileSync(join(root, name, 'stat'), files.stat);
        if (files.environ !== undefined) writeFileSync(join(root, name, 'environ'), files.environ, 'latin1');
      }
      return root;
    }

    it('reads up to the first marker entry and skips vanished, zombie, foreign and malformed entries', () => {
      const entry = (pid: number, environ: string | undefined, state = 'S') => ({
        [String(pid)]: { stat: statLine(pid, state), ...(environ === undefined ? {} : { environ }) },
      });
      const root = fakeProc({
        ...entry(100, `PATH=/bin\0${valid('s100')}\0HOME=/\0`),
        '101': { stat: statLine(101) }, // vanished between listing and reading environ
        '102': { environ: `${valid('s102')}\0` }, // vanished before its stat was read
        ...entry(103, `${valid('s103')}\0`, 'Z'),
        ...entry(104, `${MARKER_VARIABLE}=ffffffffffff.${instance}.s104\0`), // another scope
        ...entry(105, `${MARKER_VARIABLE}=${scope}.${instance}.bad_one\0`),
        ...entry(106, `${MARKER_VARIABLE}=garbage\0${valid('s106')}\0`), // only the first entry counts
        ...entry(107, `A=1\0${valid('s107')}`), // last entry without its NUL
        ...entry(108, `A=${'x'.repeat(4088)}\0${valid('s108')}\0`), // the prefix straddles a 4 kB chunk boundary
        ...entry(109, `${MARKER_VARIABLE}=${scope}.${instance}.${'a'.repeat(5000)}\0`), // longer than any marker
        ...entry(110, `X${valid('s110')}\0${MARKER_VARIABLE}_X=${scope}.${instance}.s110\0`),
        ...entry(111, ''), // a kernel thread
        ...entry(112, `A=${'y'.repeat(10_000)}\0B=${'z'.repeat(5000)}\0${valid('s112')}\0`),
        ...entry(113, `\0\0${valid('s113')}\0`),
        ...entry(114, `EXECLET_SESSIO\0EXECLET_SESSION\0${valid('s114')}\0`),
        sys: {},
        '0': { stat: statLine(0), environ: `${valid('s0')}\0` },
        '0115': { stat: statLine(115), environ: `${valid('s115')}\0` },
      });
      symlinkSync('100', join(root, 'self'));

      const found = findMarkedProcesses(scope, root);
      assert.deepEqual(
        found.map((p) => [p.pid, p.marker.session, p.startTime]).sort((a, b) => Number(a[0]) - Number(b[0])),
        [
          [100, 's100', '1100'],
          [107, 's107', '1107'],
          [108, 's108', '1108'],
          [112, 's112', '1112'],
          [113, 's113', '1113'],
          [114, 's114', '1114'],
        ],
      );
      assert.deepEqual(findMarkedProcesses('ffffffffffff', root).map((p) => p.pid), [104]);
    });

    it('the yielding scan finds the same processes and hands the event loop back while it runs', async () => {
      const entries: Record<string, { stat?: string; environ?: string }> = {};
      for (let pid = 200; pid < 400; pid++) {
        entries[String(pid)] = { stat: statLine(pid), environ: pid % 3 === 0 ? `A=1\0${valid(`s${pid}`)}\0` : 'A=1\0' };
      }
      const root = fakeProc(entries);
      let turns = 0;
      let counting = true;
      const count = () => {
        turns++;
        if (counting) setImmediate(count);
      };
      setImmediate(count);
      const found = await findMarkedProcessesYielding(scope, root, 0); // a slice of 0 ms: yield after every process
      counting = false;
      const pids = (list: MarkedProcess[]) => list.map((p) => p.pid).sort((a, b) => a - b);
      assert.deepEqual(pids(found), pids(findMarkedProcesses(scope, root)));
      assert.equal(found.length, 67);
      assert.ok(turns >= 100, `the loop ran ${turns} times during the scan`);
    });

    it('skips entries it may not read (EACCES) without failing', () => {
      const root = fakeProc({
        '200': { stat: statLine(200), environ: `${valid('s200')}\0` },
        '201': { stat: statLine(201), environ: `${valid('s201')}\0` },
        '202': { stat: statLine(202), environ: `${valid('s202')}\0` },
      });
      chmodSync(join(root, '201', 'environ'), 0o000);
      chmodSync(join(root, '202', 'stat'), 0o000);
      let found: MarkedProcess[];
      if (process.getuid?.() === 0) {
        // Root reads mode-000 files: look as an unprivileged user instead, in a process of its own.
        const run = spawnSync(process.execPath, ['--import', 'tsx', FIXTURE, 'find', root, scope], {
          cwd: REPO,
          uid: 65534,
          gid: 65534,
          encoding: 'utf8',
          env: { ...process.env, HOME: tmpdir() },
        });
        assert.equal(run.status, 0, run.stderr);
        found = JSON.parse(run.stdout) as MarkedProcess[];
      } else {
        found = findMarkedProcesses(scope, root);
      }
      assert.deepEqual(found.map((p) => p.pid), [200]);
    });

    it('fails loudly when the proc root itself cannot be listed', () => {
      assert.throws(() => findMarkedProcesses(scope, join(tmpdir(), `no-such-proc-${randomUUID()}`)), { code: 'ENOENT' });
    });
  });
});

describe('reapOrphans', () => {
  it("kills every process of another instance, children re-parented after their parent died included, each reported once", async () => {
    const scope = newScope();
    const old = newInstanceId();
    const tree = await startTree(TREE, marker(scope, old, 'old-a'), 2);
    const orphans = await startReparented(marker(scope, old, 'old-b'));
    for (const pid of orphans.pids) assert.notEqual(readStat(pid)?.ppid, orphans.parent, `${pid} was re-parented`);
    const bystander = await startTree(TREE, undefined, 2);

    const reaped: MarkedProcess[] = [];
    const began = Date.now();
    // Sessions of another instance are orphans whatever isLive says.
    const result = await reapOrphans({ scope, instance: newInstanceId(), isLive: () => true, graceMs: 10_000, onReaped: (p) => reaped.push(p) });

    assert.ok(Date.now() - began < 5000, 'SIGHUP was enough, no wait for the grace period');
    assert.equal(result.killed, 5);
    assert.deepEqual([...result.sessions].sort(), ['old-a', 'old-b']);
    assert.deepEqual(sorted(reaped.map((p) => p.pid)), sorted([...tree.pids, ...orphans.pids]));
    for (const p of reaped) assert.equal(p.marker.instance, old);
    for (const pid of [...tree.pids, ...orphans.pids]) assert.ok(!alive(pid), `${pid} was killed`);
    for (const pid of bystander.pids) assert.ok(alive(pid), `unmarked ${pid} was left alone`);
    await exited(tree.child);

    assert.deepEqual(await reapOrphans({ scope, instance: newInstanceId(), isLive: () => true, graceMs: 1000 }), { killed: 0, sessions: [] });
  });

  it('leaves live sessions of this instance alone and kills the ones that are not live', async () => {
    const scope = newScope();
    const me = newInstanceId();
    const live = new Set(['live-1']);
    const liveTree = await startTree(TREE, marker(scope, me, 'live-1'), 2);
    const endedTree = await startTree(TREE, marker(scope, me, 'ended-1'), 2);
    const reaped: number[] = [];
    const options = { scope, instance: me, isLive: (s: string) => live.has(s), graceMs: 5000, onReaped: (p: MarkedProcess) => reaped.push(p.pid) };

    assert.deepEqual(await reapOrphans(options), { killed: 3, sessions: ['ended-1'] });
    assert.deepEqual(sorted(reaped), endedTree.pids);
    for (const pid of endedTree.pids) assert.ok(!alive(pid), `${pid} of the ended session was killed`);
    for (const pid of liveTree.pids) assert.ok(alive(pid), `${pid} of the live session was left alone`);

    live.delete('live-1');
    reaped.length = 0;
    assert.deepEqual(await reapOrphans(options), { killed: 3, sessions: ['live-1'] });
    assert.deepEqual(sorted(reaped), liveTree.pids);
    for (const pid of liveTree.pids) assert.ok(!alive(pid), `${pid} was killed once its session ended`);
  });

  it('kills processes that ignore SIGHUP with SIGKILL after graceMs', async () => {
    const scope = newScope();
    const stubborn = await startTree('trap "" HUP; sleep 1000; :', marker(scope, newInstanceId(), 'stubborn'), 1);
    const graceMs = 300;
    const began = Date.now();
    const result = await reapOrphans({ scope, instance: newInstanceId(), isLive: () => false, graceMs });
    const took = Date.now() - began;
    assert.deepEqual(result, { killed: 2, sessions: ['stubborn'] });
    assert.ok(took >= graceMs - 20, `SIGKILL came after the grace period (${took} ms)`);
    for (const pid of stubborn.pids) assert.ok(!alive(pid), `${pid} was killed`);
  });

  it("spares a live session's process inside an orphan's tree and process group", async () => {
    const scope = newScope();
    const me = newInstanceId();
    const liveMarker = marker(scope, me, 'live');
    // The detached shell leads its own process group; the live sleep is in its tree and its group.
    const tree = await startTree(`${MARKER_VARIABLE}=${liveMarker} sleep 1001 & sleep 1000; :`, marker(scope, newInstanceId(), 'old'), 2);
    const survivor = tree.pids.find((pid) => commandLine(pid) === 'sleep 1001')!;
    const reaped: number[] = [];
    const result = await reapOrphans({ scope, instance: me, isLive: (s) => s === 'live', graceMs: 2000, onReaped: (p) => reaped.push(p.pid) });
    assert.deepEqual(result, { killed: 2, sessions: ['old'] });
    assert.deepEqual(sorted(reaped), tree.pids.filter((pid) => pid !== survivor));
    assert.ok(alive(survivor), 'the live process survived');
    for (const pid of tree.pids) if (pid !== survivor) assert.ok(!alive(pid), `${pid} was killed`);
  });

  it('never kills the reaping process or its parents, even when they carry an orphan marker', async () => {
    const scope = newScope();
    const me = newInstanceId();
    // The shell and the reaper under it carry a marker of another instance; so do the sibling sleep
    // and the reaper's own helper child (which inherits it).
    const child = spawn('sh', ['-c', `sleep 1000 & "${process.execPath}" --import tsx "${FIXTURE}" reap ${scope} ${me}; echo survived`], {
      cwd: REPO,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: envWith(marker(scope, newInstanceId(), 'agent-shell')),
    });
    remember(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
    assert.equal(signal, null, stderr);
    assert.equal(code, 0, stderr);
    const [json, last] = stdout.trim().split('\n');
    const report = JSON.parse(json!) as { result: ReapResult; reaped: string[]; helperSurvived: boolean };
    assert.deepEqual(report.result, { killed: 1, sessions: ['agent-shell'] }, `only the sibling sleep was killed: ${report.reaped.join(', ')}`);
    assert.equal(report.helperSurvived, true, "the reaper's own child, which inherited its marker, survived");
    assert.equal(last, 'survived');
    assert.deepEqual(findMarkedProcesses(scope), []);
  });

  it('skips, without failing or counting, a process that died on its own meanwhile', async () => {
    const scope = newScope();
    const me = newInstanceId();
    const ended = await startTree(TREE, marker(scope, me, 'ended'), 2);
    const doomed = await startTree('sleep 1000; :', marker(scope, newInstanceId(), 'doomed'), 1);
    let killedDoomed = false;
    const reaped: number[] = [];
    const result = await reapOrphans({
      scope,
      instance: me,
      // Called after the scan, before any kill: the doomed tree dies now (zombies until reaped).
      isLive: () => {
        if (!killedDoomed) {
          killedDoomed = true;
          for (const pid of doomed.pids) process.kill(pid, 'SIGKILL');
          const deadline = Date.now() + 2000;
          while (doomed.pids.some(alive) && Date.now() < deadline);
        }
        return false;
      },
      graceMs: 2000,
      onReaped: (p) => reaped.push(p.pid),
    });
    assert.ok(killedDoomed);
    assert.deepEqual(result, { killed: 3, sessions: ['ended'] });
    assert.deepEqual(sorted(reaped), ended.pids);
  });

  it('finishes the reap when onReaped throws, then throws the first error', async () => {
    const scope = newScope();
    const tree = await startTree(TREE, marker(scope, newInstanceId(), 'old'), 2);
    let calls = 0;
    await assert.rejects(
      reapOrphans({
        scope,
        instance: newInstanceId(),
        isLive: () => false,
        graceMs: 2000,
        onReaped: () => {
          calls++;
          throw new Error(`callback ${calls}`);
        },
      }),
      { message: 'callback 1' },
    );
    assert.equal(calls, 3);
    for (const pid of tree.pids) assert.ok(!alive(pid), `${pid} was killed`);
  });
});

describe('startPeriodicReaper', () => {
  it('reaps on every interval until stopped', { timeout: 20_000 }, async () => {
    const scope = newScope();
    const me = newInstanceId();
    const old = newInstanceId();
    const first = await startTree(TREE, marker(scope, old, 'first'), 2);
    const live = new Set<string>(['second']);
    const results = recorder<ReapResult>();
    const errors = recorder<Error>();
    const reaper = startPeriodicReaper({
      scope,
      instance: me,
      isLive: (s) => live.has(s),
      graceMs: 2000,
      intervalMs: 25,
      onResult: (r) => results.push(r),
      onError: (e) => errors.push(e),
    });
    try {
      await results.atLeast(1);
      assert.deepEqual(results.items[0], { killed: 3, sessions: ['first'] });
      for (const pid of first.pids) assert.ok(!alive(pid), `${pid} was killed`);

      // It keeps running, asking isLive each time: a session that ends is reaped by a later run.
      const second = await startTree(TREE, marker(scope, me, 'second'), 2);
      await results.atLeast(results.items.length + 2);
      for (const pid of second.pids) assert.ok(alive(pid), `${pid} of the live session was left alone`);
      const seen = results.items.length;
      live.delete('second');
      await waitFor('a run that reaps the second tree', () => results.items.slice(seen).some((r) => r.killed > 0));
      assert.deepEqual(results.items.slice(seen).find((r) => r.killed > 0), { killed: 3, sessions: ['second'] });
      for (const pid of second.pids) assert.ok(!alive(pid), `${pid} was killed`);
    } finally {
      reaper.stop();
    }
    const count = results.items.length;
    // No event marks the absence of runs: give a stopped reaper ten intervals to misbehave.
    const third = await startTree(TREE, marker(scope, old, 'third'), 2);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(results.items.length, count, 'no run after stop()');
    for (const pid of third.pids) assert.ok(alive(pid), `${pid} was not reaped after stop()`);
    assert.deepEqual(errors.items, []);
  });

  it('reports a failed run to onError and keeps running', { timeout: 20_000 }, async () => {
    const scope = newScope();
    const me = newInstanceId();
    const tree = await startTree(TREE, marker(scope, me, 'mine'), 2);
    const errors = recorder<Error>();
    const reaper = startPeriodicReaper({
      scope,
      instance: me,
      isLive: () => {
        throw new Error('registry unavailable');
      },
      graceMs: 2000,
      intervalMs: 25,
      onResult: () => assert.fail('no run can succeed'),
      onError: (e) => errors.push(e),
    });
    try {
      await errors.atLeast(2);
    } finally {
      reaper.stop();
    }
    assert.equal(errors.items[0]!.message, 'registry unavailable');
    for (const pid of tree.pids) assert.ok(alive(pid), `${pid} was left alone by the failed runs`);
  });

  it('refuses an interval that is not a positive number', () => {
    const options = { scope: newScope(), instance: newInstanceId(), isLive: () => false, graceMs: 100 };
    for (const intervalMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => startPeriodicReaper({ ...options, intervalMs }), RangeError);
    }
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => startPeriodicReaper({ ...options, intervalMs: 1000, soonDelayMs: bad }), RangeError);
      assert.throws(() => startPeriodicReaper({ ...options, intervalMs: 1000, minSpacingMs: bad }), RangeError);
    }
  });

  it('soon(): a run after soonDelayMs, long before the interval, and never closer than minSpacingMs to the last', { timeout: 20_000 }, async () => {
    const scope = newScope();
    const me = newInstanceId();
    const live = new Set<string>(['ending']);
    const tree = await startTree(TREE, marker(scope, me, 'ending'), 2);
    const runs = recorder<{ at: number; result: ReapResult }>();
    const reaper = startPeriodicReaper({
      scope,
      instance: me,
      isLive: (s) => live.has(s),
      graceMs: 2000,
      intervalMs: 3_600_000,
      soonDelayMs: 20,
      minSpacingMs: 300,
      onResult: (result) => runs.push({ at: performance.now(), result }),
    });
    try {
      // The session ends: what it left is reaped by the run soon() asks for, not in an hour.
      live.delete('ending');
      const asked = performance.now();
      reaper.soon();
      await runs.atLeast(1);
      assert.ok(runs.items[0]!.at - asked >= 19, `the run waited soonDelayMs (${(runs.items[0]!.at - asked).toFixed(1)} ms)`);
      assert.deepEqual(runs.items[0]!.result, { killed: 3, sessions: ['ending'] });
      for (const pid of tree.pids) assert.ok(!alive(pid), `${pid} was killed`);
      // Asked again at once: the run waits until minSpacingMs after the previous one.
      reaper.soon();
      await runs.atLeast(2);
      const spacing = runs.items[1]!.at - runs.items[0]!.at;
      assert.ok(spacing >= 295, `runs at least minSpacingMs apart (${spacing.toFixed(1)} ms)`);
    } finally {
      reaper.stop();
    }
  });
});
