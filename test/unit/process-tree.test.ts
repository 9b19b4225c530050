// Unit tests for host process-tree handling through /proc (src/process-tree.ts), on real
// processes: `sh -c 'sleep 1000 & sleep 1001 & wait'` trees, found, snapshotted and killed — also
// after their parent is gone — while a PID whose start time changed is left alone, also when the
// kernel really gives the PID to another process (through ns_last_pid). Every process a test starts
// is recorded and killed in `after` (checked against its start time, so no reused PID is hit).

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { runCommand } from '../helpers/run-command.js';
import { descendantsOf, isAlive, killProcessGroup, killProcessTree, readProcStat, signalProcessTree, snapshotProcessTree, ticksSinceBoot } from '../../src/process-tree.js';

/** Every process started here, with its start time read independently of the code under test. */
const started = new Map<number, string>();
const tempDirs: string[] = [];

function startTimeOf(pid: number): string | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function remember(pid: number): void {
  const startTime = startTimeOf(pid);
  if (startTime !== null && !started.has(pid)) started.set(pid, startTime);
}

after(() => {
  for (const [pid, startTime] of started) {
    if (startTimeOf(pid) !== startTime) continue; // gone, or the PID now belongs to someone else
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
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

/** Starts `sh -c script` and waits until it has `expected` descendants; records them all. */
async function startTree(script: string, expected: number, detached: boolean): Promise<{ child: ChildProcess; root: number; descendants: number[] }> {
  const child = spawn('sh', ['-c', script], { detached, stdio: 'ignore' });
  const root = child.pid!;
  remember(root);
  child.on('error', () => undefined);
  let descendants: number[] = [];
  await waitFor(`${expected} descendants of ${root}`, () => {
    descendants = descendantsOf(root);
    descendants.forEach(remember);
    return descendants.length >= expected;
  });
  return { child, root, descendants };
}

function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

describe('readProcStat', () => {
  it('reads state, ppid, pgrp and start time of this process', () => {
    const stat = readProcStat(process.pid)!;
    assert.equal(stat.pid, process.pid);
    assert.equal(stat.ppid, process.ppid);
    assert.equal(stat.pgrp, Number(readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ')[2]));
    assert.match(stat.state, /^[RSD]$/);
    assert.match(stat.startTime, /^\d+$/);
  });

  it('is null for a PID that does not exist', () => {
    assert.equal(readProcStat(99_999_999), null);
  });

  it('parses a command name holding spaces and parentheses', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'execlet-proc-'));
    tempDirs.push(dir);
    const odd = join(dir, 'a) b (c) d');
    copyFileSync('/bin/sleep', odd);
    const child = spawn(odd, ['1000'], { stdio: 'ignore' });
    remember(child.pid!);
    try {
      await waitFor('the odd process to exec', () => commOf(child.pid!) === 'a) b (c) d');
      const stat = readProcStat(child.pid!)!;
      assert.equal(stat.ppid, process.pid);
      // A process just exec'd may still be paging its binary in (D), or be running or asleep.
      assert.match(stat.state, /^[RSD]$/);
      assert.equal(stat.startTime, startTimeOf(child.pid!));
    } finally {
      child.kill('SIGKILL');
      await exited(child);
    }
  });
});

describe('descendantsOf', () => {
  it('finds both sleeps of a shell, not the shell itself', async () => {
    const { child, root, descendants } = await startTree('sleep 1000 & sleep 1001 & wait', 2, false);
    try {
      assert.equal(descendants.length, 2);
      assert.ok(!descendants.includes(root));
      await waitFor('both children to exec sleep', () => descendants.every((pid) => commOf(pid) === 'sleep'));
      for (const pid of descendants) assert.equal(readProcStat(pid)!.ppid, root);
    } finally {
      child.kill('SIGKILL');
      await exited(child);
      signalProcessTree(descendants.map((pid) => ({ pid, startTime: started.get(pid)! })), 'SIGKILL');
    }
  });

  it('lists parents before their children in a nested tree', async () => {
    const { child, root, descendants } = await startTree('sh -c "sleep 1002 & wait" & sleep 1003 & wait', 3, true);
    try {
      assert.equal(descendants.length, 3);
      for (const [index, pid] of descendants.entries()) {
        const ppid = readProcStat(pid)!.ppid;
        if (ppid !== root) assert.ok(descendants.indexOf(ppid) < index, `parent ${ppid} of ${pid} comes first`);
      }
      const grandchild = descendants.find((pid) => readProcStat(pid)!.ppid !== root);
      assert.ok(grandchild !== undefined, 'one process is a grandchild');
    } finally {
      signalProcessTree(snapshotProcessTree(root), 'SIGKILL');
      await exited(child);
    }
  });

  it('is empty for a process without children and for a PID that does not exist', () => {
    assert.deepEqual(descendantsOf(99_999_999), []);
    const { pid } = spawn('sleep', ['1000'], { stdio: 'ignore' });
    remember(pid!);
    try {
      assert.deepEqual(descendantsOf(pid!), []);
    } finally {
      process.kill(pid!, 'SIGKILL');
    }
  });
});

/** A /proc of files: each key is a path under it. */
function fakeProc(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'execlet-fake-proc-'));
  tempDirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** PID/stat as the kernel writes it: state, ppid, pgrp, and the start time as field 22. */
function statLine(pid: number, ppid: number): string {
  const fields = ['S', String(ppid), String(pid), ...Array.from({ length: 16 }, () => '0'), '4242'];
  return `${pid} (sh) ${fields.join(' ')}\n`;
}

describe('descendantsOf, from the kernel’s children lists', () => {
  // 100 has two threads, each of which started a child; 101 has a child; 200 claims 100 as its
  // parent in its stat, but no children list names it.
  const tree = {
    '100/stat': statLine(100, 1),
    '100/task/100/children': '101 102 ',
    '100/task/105/children': '103 ',
    '101/stat': statLine(101, 100),
    '101/task/101/children': '104 ',
    '102/stat': statLine(102, 100),
    '102/task/102/children': '',
    '103/stat': statLine(103, 100),
    '104/stat': statLine(104, 101),
    '200/stat': statLine(200, 100),
  };

  it('reads every thread’s list, parents before children, and scans nothing else', () => {
    const proc = fakeProc({ ...tree, 'thread-self/children': '' });
    assert.deepEqual(descendantsOf(100, proc), [101, 102, 103, 104]);
    assert.deepEqual(descendantsOf(101, proc), [104]);
    assert.deepEqual(descendantsOf(999, proc), []);
  });

  it('falls back to a scan of every process on a kernel without them', () => {
    const proc = fakeProc(tree);
    assert.deepEqual(descendantsOf(100, proc), [101, 102, 103, 200, 104]);
  });

  it('finds a child that a thread other than the main one started', async () => {
    assert.ok(existsSync('/proc/thread-self/children'), 'this kernel lists children (CONFIG_PROC_CHILDREN)');
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const child = require('node:child_process').spawn('sleep', ['1000'], { stdio: 'ignore' });
       parentPort.postMessage(child.pid);
       parentPort.once('message', () => { child.kill('SIGKILL'); parentPort.close(); });`,
      { eval: true },
    );
    try {
      const [pid] = (await once(worker, 'message')) as [number];
      remember(pid);
      // The main thread's own list does not hold it: the worker's thread does.
      assert.ok(!readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'latin1').split(' ').includes(String(pid)));
      assert.ok(descendantsOf(process.pid).includes(pid), `${pid} among ${descendantsOf(process.pid).join(' ')}`);
    } finally {
      worker.postMessage('done');
      await once(worker, 'exit');
    }
  });
});

describe('snapshotProcessTree', () => {
  it('holds the root first, then every descendant, with their start times', async () => {
    const { child, root, descendants } = await startTree('sleep 1000 & sleep 1001 & wait', 2, true);
    try {
      const snapshot = snapshotProcessTree(root);
      assert.equal(snapshot[0]!.pid, root);
      assert.deepEqual(snapshot.slice(1).map((e) => e.pid).sort(), [...descendants].sort());
      for (const entry of snapshot) assert.equal(entry.startTime, startTimeOf(entry.pid));
    } finally {
      signalProcessTree(snapshotProcessTree(root), 'SIGKILL');
      await exited(child);
    }
  });

  it('refuses pid 1, 0 and negative PIDs', () => {
    for (const pid of [1, 0, -1, -12345]) {
      assert.throws(() => snapshotProcessTree(pid), /refusing to act on the process tree of pid/, String(pid));
    }
  });

  it('is empty for a PID that does not exist', () => {
    assert.deepEqual(snapshotProcessTree(99_999_999), []);
  });
});

describe('signalProcessTree', () => {
  it('SIGKILL ends the whole tree of a process-group leader', async () => {
    const { child, root, descendants } = await startTree('sleep 1000 & sleep 1001 & wait', 2, true);
    const snapshot = snapshotProcessTree(root);
    assert.equal(readProcStat(root)!.pgrp, root, 'detached: the shell leads its group');
    signalProcessTree(snapshot, 'SIGKILL');
    await exited(child);
    await waitFor('every member to die', () => [root, ...descendants].every((pid) => !isAlive(pid)));
  });

  it('reaches children re-parented after their parent died (no process group to lean on)', async () => {
    const { child, root, descendants } = await startTree('sleep 1000 & sleep 1001 & wait', 2, false);
    const snapshot = snapshotProcessTree(root);
    assert.notEqual(readProcStat(root)!.pgrp, root, 'not detached: the shell shares our process group');
    child.kill('SIGKILL');
    await exited(child);
    for (const pid of descendants) {
      assert.ok(isAlive(pid), `orphan ${pid} outlived its parent`);
      assert.notEqual(readProcStat(pid)!.ppid, root, `orphan ${pid} was re-parented`);
    }
    assert.deepEqual(descendantsOf(root), [], 'the dead parent has no descendants any more');
    signalProcessTree(snapshot, 'SIGKILL');
    await waitFor('the orphans to die', () => descendants.every((pid) => !isAlive(pid)));
  });

  it('leaves alone a PID whose start time differs from the snapshot (a reused PID)', async () => {
    const { child, root, descendants } = await startTree('sleep 1000 & sleep 1001 & wait', 2, false);
    const [spared, killed] = descendants as [number, number];
    const snapshot = snapshotProcessTree(root).map((entry) => (entry.pid === spared ? { ...entry, startTime: `${entry.startTime}1` } : entry));
    signalProcessTree(snapshot, 'SIGKILL');
    await exited(child);
    await waitFor('the matching members to die', () => !isAlive(root) && !isAlive(killed));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(isAlive(spared), 'the process with another start time was not signalled');
    signalProcessTree([{ pid: spared, startTime: started.get(spared)! }], 'SIGKILL');
    await waitFor('the spared process to die', () => !isAlive(spared));
  });

  it('skips snapshot entries whose process is gone', () => {
    assert.doesNotThrow(() => signalProcessTree([{ pid: 99_999_999, startTime: '1' }], 'SIGKILL'));
  });

  it('a signal the tree ignores leaves it running (no escalation here)', async () => {
    const { child, root, descendants } = await startTree("trap '' HUP; sleep 1000 & wait", 1, true);
    try {
      // sleep inherits the ignored SIGHUP disposition; the shell ignores it too.
      signalProcessTree(snapshotProcessTree(root), 'SIGHUP');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(isAlive(root));
      assert.ok(descendants.every(isAlive));
    } finally {
      signalProcessTree(snapshotProcessTree(root), 'SIGKILL');
      await exited(child);
    }
  });
});

describe('isAlive', () => {
  it('is true for a running process and false once it is dead and reaped', async () => {
    const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
    remember(child.pid!);
    assert.equal(isAlive(child.pid!), true);
    child.kill('SIGKILL');
    await exited(child);
    await waitFor('the reaped process to vanish', () => !isAlive(child.pid!));
    assert.equal(isAlive(99_999_999), false);
  });

  it('is false for a zombie', async () => {
    // The shell forks `sleep 0`, then becomes `sleep 1000`, which never reaps it: a zombie child.
    const { child, root, descendants } = await startTree('sleep 0 & exec sleep 1000', 1, true);
    try {
      const zombie = descendants[0]!;
      await waitFor('the zombie', () => readProcStat(zombie)?.state === 'Z');
      assert.equal(isAlive(zombie), false);
      assert.equal(isAlive(root), true);
    } finally {
      signalProcessTree(snapshotProcessTree(root), 'SIGKILL');
      await exited(child);
    }
  });
});

describe('ticksSinceBoot', () => {
  it('is the clock that start times are given in: a process started now started at it', async () => {
    const before = ticksSinceBoot();
    const { child, root } = await startTree('sleep 1006', 0, false);
    const after = ticksSinceBoot();
    const started = Number(readProcStat(root)!.startTime);
    assert.ok(started >= before - 1 && started <= after, `started at ${started}, between ${before} and ${after}`);
    child.kill('SIGKILL');
    await exited(child);
  });

  it('needs no file descriptor: it works in a process that has none left (where a helper exits)', async () => {
    const fixture = fileURLToPath(new URL('../fixtures/ticks-without-fds.ts', import.meta.url));
    const before = ticksSinceBoot();
    const result = await runCommand('prlimit', ['--nofile=256:256', process.execPath, '--import', 'tsx', fixture], { timeoutMs: 20_000 });
    assert.equal(result.code, 0, result.stderr.toString());
    const { exhausted, opened, ticks, error } = JSON.parse(result.stdout.toString()) as { exhausted: string; opened: number; ticks?: number; error?: string };
    assert.equal(exhausted, 'EMFILE');
    assert.ok(opened > 0);
    assert.equal(error, undefined);
    assert.ok(ticks! >= before - 1 && ticks! <= ticksSinceBoot() + 1, `${ticks} between ${before} and now`);
  });
});

describe('killProcessGroup', () => {
  it("ends what a group's leader left running when it exited, and nothing when the group is not the one that was", async () => {
    // The leader (a detached shell: its own group) starts two sleeps in the background and waits; it is then killed alone.
    const { child, root, descendants } = await startTree('sleep 1002 & sleep 1003 & wait', 2, true);
    await waitFor('both children to exec sleep', () => descendants.every((pid) => commOf(pid) === 'sleep'));
    child.kill('SIGKILL');
    await exited(child);
    const exitedAt = ticksSinceBoot();
    assert.ok(descendants.every(isAlive), 'the sleeps outlived their leader');
    // A group whose members all started after that moment is another group under the same id: left alone.
    const oldestStart = Math.min(...descendants.map((pid) => Number(readProcStat(pid)!.startTime)));
    await killProcessGroup(root, 100, oldestStart - 1);
    assert.ok(descendants.every(isAlive), 'not signalled: no member had started by then');
    await killProcessGroup(root, 100, exitedAt);
    await waitFor('the sleeps to be gone', () => !descendants.some(isAlive));
  });
});

describe('killProcessTree', () => {
  it('neither waits for nor kills the tree of a process that got the PID of the one it was ending (a reused PID)', async () => {
    // A ignores SIGHUP (nohup), so killProcessTree waits out its grace for it, then would SIGKILL
    // what the PID's process started meanwhile. A is a shell's child, so that its death and the
    // reaping of it happen outside this process, while this test holds the event loop.
    const { child: shell, descendants } = await startTree('nohup sleep 1004 & wait', 1, false);
    const pid = descendants[0]!;
    await waitFor('nohup to exec sleep', () => commOf(pid) === 'sleep');
    const startOfA = Number(startTimeOf(pid));
    const ending = killProcessTree(pid, 2000);
    // Without giving killProcessTree a turn: A dies of something else and is reaped, and its PID
    // goes to another process B (the kernel hands out the PID after ns_last_pid next), in a later
    // clock tick (start times tell processes apart by the tick).
    while (ticksSinceBoot() <= startOfA + 1);
    process.kill(pid, 'SIGKILL');
    while (readProcStat(pid) !== null);
    let b: ChildProcess | undefined;
    const others: ChildProcess[] = [];
    for (let attempt = 0; attempt < 20 && b?.pid !== pid; attempt++) {
      if (b) others.push(b);
      writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      b = spawn('sh', ['-c', "trap '' HUP; sleep 1005 & wait"], { stdio: 'ignore', detached: true });
    }
    // Attempts that got another PID: each a process group of its own, ended whole.
    for (const other of others) process.kill(-other.pid!, 'SIGKILL');
    assert.equal(b!.pid, pid, 'the PID was given to B');
    const startOfB = startTimeOf(pid);
    assert.notEqual(startOfB, String(startOfA));
    let children: number[] = [];
    await waitFor("B's child", () => (children = descendantsOf(pid)).length === 1);
    children.forEach(remember);
    await ending;
    assert.ok(isAlive(pid) && startTimeOf(pid) === startOfB, 'B still runs');
    assert.ok(isAlive(children[0]!), "B's child still runs: it was never part of the tree being ended");
    signalProcessTree(snapshotProcessTree(pid), 'SIGKILL');
    await Promise.all([exited(b!), exited(shell), ...others.map(exited)]);
  });
});
