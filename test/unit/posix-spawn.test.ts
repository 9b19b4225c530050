// Starting the nsenter helper without forking the agent: the posix_spawn module itself
// (native/execlet-spawn.c through src/backend/posix-spawn.ts) — exit codes, signals, stdio as
// socket pairs with stdin half-close, a new session, default signal dispositions, no inherited fds,
// errors from posix_spawn, a pseudo-terminal as the controlling terminal — and the nsenter backend,
// with and without a TTY, behaving the same with it and with node-pty and child_process (its
// fallback). Entering namespaces needs root; those tests skip without it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { NsenterBackend } from '../../src/backend/nsenter.js';
import { DEFAULT_SPAWN_MODULE_PATH, PosixSpawner, SpawnError, streamsOf, type SpawnedProcess } from '../../src/backend/posix-spawn.js';
import type { ExecProcess } from '../../src/backend/types.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';

const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
const needsRoot = process.getuid?.() === 0 ? false : 'entering namespaces needs root';

const started: number[] = [];
after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function loadSpawner(): PosixSpawner {
  const loaded = PosixSpawner.load();
  assert.ok(loaded instanceof PosixSpawner, `execlet-spawn.node must load here (npm run build): ${'unavailable' in loaded ? loaded.unavailable : ''}`);
  return loaded;
}

async function readAll(stream: Readable | null): Promise<string> {
  if (!stream) return '';
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(stream, 'close');
  return Buffer.concat(chunks).toString('utf8');
}

function run(spawner: PosixSpawner, script: string, stdio = { stdin: false, stdout: true, stderr: true }): SpawnedProcess {
  const child = spawner.spawn(['/bin/sh', '-c', script], { env: ENV, cwd: '/', ...stdio });
  started.push(child.pid);
  return child;
}

describe('posix_spawn module', () => {
  test('exit codes and signals come back as numbers', async () => {
    const spawner = loadSpawner();
    assert.deepEqual(await run(spawner, 'exit 7').exited, { code: 7, signal: null });
    assert.deepEqual(await run(spawner, 'kill -TERM $$').exited, { code: null, signal: 15 });
  });

  test('stdout and stderr apart; stdin half-closed reaches the program as end of input', async () => {
    const spawner = loadSpawner();
    const child = run(spawner, 'cat; echo done >&2', { stdin: true, stdout: true, stderr: true });
    const out = readAll(child.stdout);
    const err = readAll(child.stderr);
    child.stdin!.end('typed\n');
    assert.equal(await out, 'typed\n');
    assert.equal(await err, 'done\n');
    assert.deepEqual(await child.exited, { code: 0, signal: null });
  });

  test('a stream not asked for is /dev/null, and the cwd and environment are the given ones', async () => {
    const spawner = loadSpawner();
    const child = spawner.spawn(['/bin/sh', '-c', 'readlink /proc/self/fd/0 /proc/self/fd/2; pwd; env'], { env: { ...ENV, ONLY: 'this' }, cwd: '/tmp', stdin: false, stdout: true, stderr: false });
    started.push(child.pid);
    assert.equal(child.stdin, null);
    assert.equal(child.stderr, null);
    const lines = (await readAll(child.stdout)).trim().split('\n');
    assert.deepEqual(lines.slice(0, 3), ['/dev/null', '/dev/null', '/tmp']);
    assert.deepEqual(lines.slice(3).filter((l) => !l.startsWith('PWD=') && !l.startsWith('SHLVL=')).sort(), [`PATH=${ENV.PATH}`, 'ONLY=this'].sort());
  });

  test('the child leads a new session, with no signal ignored or blocked and no fd of the agent but its stdio', async () => {
    const spawner = loadSpawner();
    // The agent (this process) ignores SIGPIPE, as every Node.js process does.
    const child = run(spawner, 'cat /proc/self/stat; grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd');
    const [stat, blk, ign, ...fds] = (await readAll(child.stdout)).trim().split('\n');
    const fields = stat!.split(') ')[1]!.split(' ');
    // Fields after the name: state, ppid, pgrp, session. `cat` is the shell's child, in its session.
    assert.equal(Number(fields[3]), child.pid, 'the session is led by the spawned process');
    // None of signals 1-31 ignored (the agent ignores SIGPIPE and SIGXFSZ); glibc's posix_spawn
    // ignores its own reserved 32 and 33 in the child, which every glibc program reinstalls.
    assert.equal(BigInt(`0x${ign!.split('\t')[1]}`) & 0x7fffffffn, 0n, ign);
    assert.equal(blk, 'SigBlk:\t0000000000000000');
    // 0-2, and the directory ls itself opened.
    assert.deepEqual(fds.map(Number).sort(), [0, 1, 2, 3]);
  });

  test('spawning from a worker thread is refused with an error, not a crash', async () => {
    const worker = new Worker(
      `const { createRequire } = require('node:module');
       const spawner = createRequire(${JSON.stringify(import.meta.url)})(${JSON.stringify(DEFAULT_SPAWN_MODULE_PATH)});
       try { spawner.spawn('/bin/true', ['true'], [], '/', [false, false, false], () => {}); require('node:worker_threads').parentPort.postMessage('spawned'); }
       catch (err) { require('node:worker_threads').parentPort.postMessage(err.message); }`,
      { eval: true },
    );
    const [message] = (await once(worker, 'message')) as [string];
    await once(worker, 'exit');
    assert.match(message, /watching SIGCHLD \(from the main thread only\)/);
  });

  test('a pseudo-terminal\'s master is non-blocking: reading or writing it never stalls the event loop', async () => {
    const terminal = loadSpawner().spawnPty(['/bin/sh', '-c', 'exit 0'], { env: ENV, cwd: '/', cols: 80, rows: 24 });
    started.push(terminal.pid);
    const flags = Number.parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${terminal.master}`, 'utf8'))![1]!, 8);
    closeSync(terminal.master);
    await terminal.exited;
    assert.equal(flags & 0o4000, 0o4000, `O_NONBLOCK in ${flags.toString(8)}`);
  });

  test('a program that cannot be started: a SpawnError with posix_spawn\'s errno, and no fd left open', async () => {
    const spawner = loadSpawner();
    const openFds = () => readdirSync('/proc/self/fd').length;
    const before = openFds();
    assert.throws(
      () => spawner.spawn(['/nonexistent/program'], { env: ENV, cwd: '/', stdin: true, stdout: true, stderr: true }),
      (err: unknown) => err instanceof SpawnError && err.errno === 2 && /\/nonexistent\/program: No such file or directory/.test(err.message),
    );
    assert.equal(openFds(), before);
  });

  test('spawnWithFdsAsync: the same process and streams as spawn, started off the event loop', async () => {
    const spawner = loadSpawner();
    const pending = spawner.spawnWithFdsAsync(['/bin/sh', '-c', 'cat; echo "$ONLY" >&2; exit 3'], { env: { ...ENV, ONLY: 'this' }, cwd: '/', stdin: true, stdout: true, stderr: true });
    const startedAsync = await pending;
    started.push(startedAsync.pid);
    const child = streamsOf(startedAsync);
    const out = readAll(child.stdout);
    const err = readAll(child.stderr);
    child.stdin!.end('typed\n');
    assert.equal(await out, 'typed\n');
    assert.equal(await err, 'this\n');
    assert.deepEqual(await child.exited, { code: 3, signal: null });
  });

  test('spawnWithFdsAsync: a child that has exited before the event loop learns it started is still reaped and reported', async () => {
    const spawner = loadSpawner();
    const children = await Promise.all(Array.from({ length: 40 }, () => spawner.spawnWithFdsAsync(['/bin/true'], { env: ENV, cwd: '/', stdin: false, stdout: false, stderr: false })));
    started.push(...children.map((c) => c.pid));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('an exit was never reported')), 10_000)));
    try {
      const outcomes = await Promise.race([Promise.all(children.map((c) => c.exited)), deadline]);
      assert.ok(outcomes.every((o) => o.code === 0 && o.signal === null), JSON.stringify(outcomes));
    } finally {
      clearTimeout(timer);
    }
    for (const { pid } of children) assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} is reaped`);
  });

  test('spawnWithFdsAsync: a program that cannot be started rejects with a SpawnError, and no fd is left open', async () => {
    const spawner = loadSpawner();
    const openFds = () => readdirSync('/proc/self/fd').length;
    const before = openFds();
    await assert.rejects(
      spawner.spawnWithFdsAsync(['/nonexistent/program'], { env: ENV, cwd: '/', stdin: true, stdout: true, stderr: true }),
      (err: unknown) => err instanceof SpawnError && err.errno === 2 && /\/nonexistent\/program: No such file or directory/.test(err.message),
    );
    assert.equal(openFds(), before);
  });
});

/** The helper in this process's own net and PID namespaces (the PID namespace makes it fork). */
function startInOwnNamespaces(backend: NsenterBackend, command: string[], stdin = false, tty = false): Promise<ExecProcess> {
  return backend.start({
    place: { kind: 'namespaces', pid: process.pid, namespaces: ['net', 'pid'], toolbox: false },
    command,
    tty,
    stdin,
    stdout: true,
    stderr: !tty,
    ...(tty ? { initialSize: { width: 80, height: 24 } } : {}),
  });
}

/** A terminal's output as it arrives, and a way to wait for some of it. */
function terminalOutput(proc: ExecProcess): { text(): string; waitFor(what: string): Promise<void> } {
  let text = '';
  proc.stdout.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  return { text: () => text, waitFor: (what) => waitUntil(() => text.includes(what), 5000, JSON.stringify(what)).then(() => undefined) };
}

describe('the nsenter backend', () => {
  test('starts its helper with posix_spawn here; with node-pty and child_process when told to or when the module does not load', () => {
    assert.equal(new NsenterBackend({ killGraceMs: 100 }).spawner, 'posix');
    assert.equal(new NsenterBackend({ killGraceMs: 100 }).spawnerFallback, null);
    assert.equal(new NsenterBackend({ killGraceMs: 100, spawner: 'node' }).spawner, 'node');
    const missing = new NsenterBackend({ killGraceMs: 100, spawnModulePath: '/nonexistent/execlet-spawn.node' });
    assert.equal(missing.spawner, 'node');
    assert.match(missing.spawnerFallback ?? '', /\/nonexistent\/execlet-spawn\.node does not load/);
  });

  for (const spawner of ['posix', 'node'] as const) {
    describe(`started with ${spawner === 'posix' ? 'posix_spawn' : 'child_process'}`, { skip: needsRoot }, () => {
      const backend = new NsenterBackend({ killGraceMs: 200, spawner });

      test('exit codes, signals, and stdout and stderr apart', async () => {
        const exited = await startInOwnNamespaces(backend, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
        const [out, err] = [readAll(exited.stdout), readAll(exited.stderr)];
        assert.deepEqual(await exited.exit, { code: 3, signal: null });
        assert.equal(await out, 'out\n');
        assert.equal(await err, 'err\n');
        const killed = await startInOwnNamespaces(backend, ['sh', '-c', 'kill -KILL $$']);
        void readAll(killed.stdout);
        void readAll(killed.stderr);
        assert.deepEqual(await killed.exit, { code: null, signal: 'SIGKILL' });
      });

      test('stdin, half-closed, and output read to the end before the exit is reported', async () => {
        const proc = await startInOwnNamespaces(backend, ['sh', '-c', 'cat; head -c 3000000 /dev/zero'], true);
        let bytes = 0;
        proc.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
        void readAll(proc.stderr);
        proc.stdin!.end('abc');
        assert.deepEqual(await proc.exit, { code: 0, signal: null });
        assert.equal(bytes, 3 + 3_000_000);
      });

      test('with a TTY: its controlling terminal at the initial size, resized, input echoed, Ctrl-C reaching the command', async () => {
        const script = 'cut -d" " -f7 /proc/self/stat; stty size; trap "echo interrupted; exit 7" INT; read line; echo "got:$line"; stty size; echo ready; while :; do sleep 0.05; done';
        const proc = await startInOwnNamespaces(backend, ['sh', '-c', script], true, true);
        const output = terminalOutput(proc);
        await output.waitFor('24 80\r\n');
        assert.notEqual(output.text().split('\r\n')[0], '0', 'a controlling terminal (tty_nr of /proc/self/stat)');
        await proc.resize({ width: 100, height: 30 });
        proc.stdin!.write('hello\r');
        await output.waitFor('ready');
        proc.stdin!.write('\x03');
        assert.deepEqual(await proc.exit, { code: 7, signal: null });
        assert.match(output.text(), /hello\r\ngot:hello\r\n30 100\r\nready\r\n.*interrupted\r\n$/s);
      });

      test('with a TTY: output written just before the exit arrives whole', async () => {
        const proc = await startInOwnNamespaces(backend, ['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x; exit 2'], false, true);
        let bytes = 0;
        proc.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
        assert.deepEqual(await proc.exit, { code: 2, signal: null });
        await new Promise((resolve) => (proc.stdout.readableEnded ? resolve(null) : proc.stdout.once('end', resolve)));
        assert.equal(bytes, 3_000_000);
      });

      test('with a TTY: a job that outlives the command holds the terminal without stalling the event loop', async () => {
        let longestGap = 0;
        let last = performance.now();
        const ticker = setInterval(() => {
          const now = performance.now();
          longestGap = Math.max(longestGap, now - last);
          last = now;
        }, 5);
        try {
          // The background sleep keeps the terminal open for 1.5 s after the command exits.
          const proc = await startInOwnNamespaces(backend, ['sh', '-c', "trap '' HUP; sleep 1.5 & echo started"], false, true);
          const output = terminalOutput(proc);
          assert.deepEqual(await proc.exit, { code: 0, signal: null });
          assert.match(output.text(), /started/);
        } finally {
          clearInterval(ticker);
        }
        assert.ok(longestGap < 500, `the event loop stalled for ${Math.round(longestGap)} ms`);
      });

      test('without a TTY: stdin the client never ends is closed with the process (no fd left per session)', async () => {
        const openFds = () => readdirSync('/proc/self/fd').length;
        const run = async () => {
          const proc = await startInOwnNamespaces(backend, ['true'], true);
          void readAll(proc.stdout);
          void readAll(proc.stderr);
          await proc.exit;
          if (proc.stdin && !proc.stdin.destroyed) await once(proc.stdin, 'close');
        };
        await run();
        const before = openFds();
        for (let i = 0; i < 5; i++) await run();
        assert.equal(openFds(), before);
      });

      test('kill() ends the helper and what the command started', async () => {
        // Durations no other process here has, to find the two sleeps by their command lines.
        const [background, foreground] = spawner === 'posix' ? [400001, 400002] : [400003, 400004];
        const proc = await startInOwnNamespaces(backend, ['sh', '-c', `sleep ${background} & exec sleep ${foreground}`]);
        void readAll(proc.stdout);
        void readAll(proc.stderr);
        const running = (seconds: number) => pidsWithCommandLine(`sleep ${seconds}`).length > 0;
        await waitUntil(() => running(background) && running(foreground), 5000, 'both sleeps to start');
        await proc.kill();
        const exit = await proc.exit;
        assert.ok(exit.signal !== null || (exit.code ?? 0) > 128, JSON.stringify(exit));
        await waitUntil(() => !running(background) && !running(foreground), 5000, 'the process tree to be gone');
      });
    });
  }
});
