// The nsenter helper as a running process, an ExecProcess: with a terminal or with separate stdio,
// started by posix_spawn (posix-spawn.ts) or, where that module does not load, by node-pty and
// child_process. Each way reports the exit only once the output is read to the end, and ends the
// process and whatever it started by process tree.
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { closeSync, readSync, writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { ReadStream as TerminalReadStream } from 'node:tty';
import * as pty from 'node-pty';
import { OutputStream } from './output-stream.js';
import { SpawnError, type PosixSpawner, type SpawnedProcess } from './posix-spawn.js';
import { killProcessGroup, killProcessTree, ticksSinceBoot } from '../process-tree.js';
import { BackendError, type ExecProcess, type ExecSpec, type ExitStatus, type TerminalSize } from './types.js';

/** After the process exits, how long the pty is read for output still buffered (or held by children). */
const PTY_DRAIN_LIMIT_MS = 2000;

function signalName(signal: number | undefined | null): string | null {
  if (!signal) return null;
  const entry = Object.entries(osConstants.signals).find(([, number]) => number === signal);
  return entry ? entry[0] : `SIG${signal}`;
}

/** How a process started by posix_spawn ended, as an ExitStatus. */
function exitStatusOf({ code, signal }: { code: number | null; signal: number | null }, program: string, pid: number): ExitStatus {
  if (code === null && signal === null) return { code: null, signal: null, error: `the exit status of ${program} (pid ${pid}) was lost: another process reaped it` };
  return { code, signal: signalName(signal) };
}

/**
 * kill() of an ExecProcess: the process tree once (later calls get the same promise); once the
 * process has exited, what is left of its process group (it led one: started in a session of its
 * own) — what it started in the background, which may still hold its output open. `exitedAt` is
 * ticksSinceBoot() at its exit, null while it runs.
 */
function treeKiller(pid: () => number | undefined, exitedAt: () => number | null, killGraceMs: number): () => Promise<void> {
  let killing: Promise<void> | null = null;
  return () => {
    const target = pid();
    if (!target) return Promise.resolve();
    const exited = exitedAt();
    return (killing ??= exited === null ? killProcessTree(target, killGraceMs) : killProcessGroup(target, killGraceMs, exited));
  };
}

/**
 * After the helper exits without a TTY, how long its output may stay quiet while something it left
 * in the background holds it open; then the output ends (as the engine ends an exec's stream
 * about as long after its process exits), and the session with it.
 */
const OUTPUT_AFTER_EXIT_MS = 2000;

/**
 * Resolves once `streams` have closed, or — after `exited` — once they have been read from without
 * a byte for OUTPUT_AFTER_EXIT_MS: whatever still holds them open is no reason to wait, and they
 * are destroyed. While the session holds a stream paused (its client is behind), it is waited for:
 * what the process wrote before it exited is all delivered.
 */
function outputEnded(exited: Promise<unknown>, streams: Array<Socket | null>): Promise<void> {
  const open = streams.filter((stream): stream is Socket => stream !== null && !stream.destroyed);
  const closed = Promise.all(open.map((stream) => new Promise<void>((resolve) => stream.once('close', () => resolve())))).then(() => undefined);
  // Bytes read so far: progress is seen without a 'data' listener (which would set a stream flowing).
  const read = () => open.reduce((sum, stream) => sum + stream.bytesRead, 0);
  void exited.then(() => {
    let timer: NodeJS.Timeout | undefined;
    let readBefore = read();
    const check = () => {
      const readNow = read();
      const quiet = readNow === readBefore && !open.some((stream) => stream.isPaused());
      readBefore = readNow;
      if (quiet) {
        for (const stream of open) stream.destroy();
        return;
      }
      timer = setTimeout(check, OUTPUT_AFTER_EXIT_MS);
      timer.unref();
    };
    timer = setTimeout(check, OUTPUT_AFTER_EXIT_MS);
    timer.unref();
    void closed.then(() => clearTimeout(timer));
  });
  return closed;
}

/** The size a terminal starts at when the client gave none. */
const DEFAULT_TERMINAL_SIZE: TerminalSize = { width: 80, height: 24 };

/**
 * The helper without a TTY, started with posix_spawn in a session of its own (out of reach of
 * signals meant for the agent). Its exit is reported, like child_process's 'close', once it has
 * exited and its output is read to the end.
 */
export function startWithPosixSpawn(spawner: PosixSpawner, argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): ExecProcess {
  let child;
  try {
    child = spawner.spawn(argv, { env, cwd: '/', stdin: spec.stdin, stdout: spec.stdout, stderr: spec.stderr });
  } catch (err) {
    if (!(err instanceof SpawnError)) throw err;
    throw new BackendError(`cannot run ${argv[0]}: ${err.message}`, 'Unavailable', { cause: err });
  }
  return spawnedExecProcess(child, argv[0]!, killGraceMs);
}

/** A helper already running without a TTY (spawned, or a standby given its session), as an ExecProcess. */
export function spawnedExecProcess(child: SpawnedProcess, program: string, killGraceMs: number): ExecProcess {
  const { pid, stdin, stdout, stderr } = child;
  let exitedAt: number | null = null;
  const exit = Promise.all([child.exited, outputEnded(child.exited, [stdout, stderr])]).then(([outcome]) => exitStatusOf(outcome, program, pid));
  void child.exited.then(() => {
    exitedAt = ticksSinceBoot();
    // As child_process does: the process is gone, and so is the use of its stdin (and its fd).
    stdin?.destroy();
  });
  // The process closed its stdin; what the client still sends has nowhere to go.
  stdin?.on('error', () => undefined);
  return {
    stdin,
    stdout: stdout ?? Readable.from([]),
    stderr,
    resize: async () => {
      // No terminal, nothing to resize.
    },
    kill: treeKiller(() => pid, () => exitedAt, killGraceMs),
    exit,
  };
}

export function startWithChildProcess(argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): Promise<ExecProcess> {
  return new Promise((resolve, reject) => {
    // detached: its own process group and session, out of reach of signals meant for the agent.
    const child: ChildProcess = spawnChild(argv[0]!, argv.slice(1), {
      cwd: '/',
      env,
      detached: true,
      stdio: [spec.stdin ? 'pipe' : 'ignore', spec.stdout ? 'pipe' : 'ignore', spec.stderr ? 'pipe' : 'ignore'],
    });
    const exit = new Promise<ExitStatus>((resolveExit) => {
      child.once('error', (err) => resolveExit({ code: null, signal: null, error: `cannot run ${argv[0]}: ${err.message}` }));
      // 'close' comes after the process exited and its output pipes are drained.
      child.once('close', (code, signal) => resolveExit({ code, signal }));
    });
    let exitedAt: number | null = null;
    const exited = new Promise<void>((resolveExited) =>
      child.once('exit', () => {
        exitedAt = ticksSinceBoot();
        resolveExited();
      }),
    );
    // 'close' waits for the output pipes, which something left in the background may hold open.
    void outputEnded(exited, [(child.stdout as Socket | null) ?? null, (child.stderr as Socket | null) ?? null]); // pipes are net.Sockets
    child.once('spawn', () => {
      child.stdin?.on('error', () => {
        // The process closed its stdin; what the client still sends has nowhere to go.
      });
      resolve({
        stdin: child.stdin ?? null,
        stdout: child.stdout ?? Readable.from([]),
        stderr: child.stderr ?? null,
        resize: async () => {
          // No terminal, nothing to resize.
        },
        kill: treeKiller(() => child.pid, () => exitedAt, killGraceMs),
        exit,
      });
    });
    child.once('error', (err) => reject(new BackendError(`cannot run ${argv[0]}: ${err.message}`, 'Unavailable', { cause: err })));
  });
}

/** After the helper exits, how long a terminal still held by something it started is read before it is torn down. */
const PTY_TEARDOWN_AFTER_EXIT_MS = 200;
/** While the terminal's input is full (the process does not read), how often writing is retried. */
const PTY_WRITE_RETRY_MS = 5;

/**
 * The helper on a pseudo-terminal started with posix_spawn. The master is read through a
 * tty.ReadStream, which owns the fd; the exit is reported once the process has exited and the
 * terminal is read to the end: EIO (nothing holds it any more), or, when something the process
 * started still holds it, PTY_TEARDOWN_AFTER_EXIT_MS after the exit, with the tail drained (below).
 * Input is written straight to the master from the event loop (non-blocking: a full terminal is
 * retried, never waited on), never after the fd is closed.
 */
export function startInPosixPty(spawner: PosixSpawner, argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): ExecProcess {
  const size = spec.initialSize ?? DEFAULT_TERMINAL_SIZE;
  const dimension = (value: number, otherwise: number) => Math.min(value || otherwise, 65535);
  let terminal;
  try {
    terminal = spawner.spawnPty(argv, { env, cwd: '/', cols: dimension(size.width, 80), rows: dimension(size.height, 24) });
  } catch (err) {
    if (!(err instanceof SpawnError)) throw err;
    throw new BackendError(`cannot start ${argv[0]} on a pseudo-terminal: ${err.message}`, 'Unavailable', { cause: err });
  }
  const { pid, master } = terminal;
  let reader: TerminalReadStream;
  try {
    reader = new TerminalReadStream(master);
  } catch (err) {
    closeSync(master);
    void killProcessTree(pid, 0);
    throw new BackendError(`cannot read the pseudo-terminal of ${argv[0]}: ${(err as Error).message}`, 'Internal', { cause: err });
  }
  const open = () => !reader.destroyed;
  const stdout = new OutputStream(() => reader.resume());
  const deliver = (data: Buffer) => {
    if (!stdout.push(data)) reader.pause();
  };
  reader.on('data', deliver);
  // EIO: nothing holds the terminal any more; the stream closes either way.
  reader.on('error', () => undefined);
  drainBeforeDestroy(reader, master, deliver);
  const readToEnd = new Promise<void>((resolve) => reader.once('close', () => resolve()));
  let exited = false;
  let exitedAt: number | null = null;
  void terminal.exited.then(() => {
    exited = true;
    exitedAt = ticksSinceBoot();
    setTimeout(() => reader.destroy(), PTY_TEARDOWN_AFTER_EXIT_MS).unref();
  });
  const exit = Promise.all([terminal.exited, readToEnd]).then(([outcome]) => {
    stdout.push(null);
    return exitStatusOf(outcome, argv[0]!, pid);
  });
  const stdin = spec.stdin
    ? new Writable({
        write(chunk: Buffer, _encoding, callback) {
          let offset = 0;
          const writeSome = () => {
            while (offset < chunk.length && open() && !exited) {
              try {
                offset += writeSync(master, chunk, offset);
              } catch (err) {
                if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
                  setTimeout(writeSome, PTY_WRITE_RETRY_MS);
                  return;
                }
                break; // EIO: the terminal is gone, and what was typed with it
              }
            }
            callback();
          };
          writeSome();
        },
        // A terminal has no half-close: input ending leaves the session to the process.
      })
    : null;
  return {
    stdin,
    stdout,
    stderr: null,
    resize: async (next) => {
      if (exited || !open() || next.width <= 0 || next.height <= 0) return;
      try {
        terminal.resize(dimension(next.width, 80), dimension(next.height, 24));
      } catch {
        // The terminal went away meanwhile.
      }
    },
    kill: treeKiller(() => pid, () => exitedAt, killGraceMs),
    exit,
  };
}

export async function startInNodePty(argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): Promise<ExecProcess> {
  const size = spec.initialSize ?? DEFAULT_TERMINAL_SIZE;
  let term: pty.IPty;
  try {
    term = pty.spawn(argv[0]!, argv.slice(1), { name: 'xterm', cols: size.width || 80, rows: size.height || 24, cwd: '/', env, encoding: null });
  } catch (err) {
    throw new BackendError(`cannot start a pseudo-terminal for ${argv[0]}: ${(err as Error).message}`, 'Unavailable', { cause: err });
  }
  const stdout = new OutputStream(() => term.resume());
  const deliver = (data: Buffer) => {
    if (!stdout.push(data)) term.pause();
  };
  (term.onData as unknown as (listener: (data: Buffer) => void) => void)(deliver);
  // node-pty destroys its read stream 200 ms after the child exits.
  const socket = (term as unknown as { _socket?: Socket })._socket;
  const fd = (term as unknown as { _fd?: number })._fd;
  if (socket && typeof fd === 'number') drainBeforeDestroy(socket, fd, deliver);
  const exit = new Promise<ExitStatus>((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      stdout.push(null);
      const name = signalName(signal);
      resolve(name ? { code: null, signal: name } : { code: exitCode, signal: null });
    });
  });
  let exited = false;
  let exitedAt: number | null = null;
  void exit.then(() => {
    exited = true;
    exitedAt = ticksSinceBoot();
  });
  const stdin = spec.stdin
    ? new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (!exited) term.write(chunk);
          callback();
        },
        // A terminal has no half-close: input ending leaves the session to the process.
      })
    : null;
  return {
    stdin,
    stdout,
    stderr: null,
    resize: async (next) => {
      if (!exited && next.width > 0 && next.height > 0) term.resize(next.width, next.height);
    },
    kill: treeKiller(() => term.pid, () => exitedAt, killGraceMs),
    exit,
  };
}

/**
 * Makes sure everything the process wrote reaches `deliver`, in order, before the pty's read stream
 * (`socket`, which owns the master `fd`) is torn down. Two things lose the tail otherwise: the
 * stream is destroyed a while after the child exits (output still held back by backpressure is
 * dropped), and the pty read stream can see a spurious EOF while the kernel still holds output
 * (measured: up to ~14 KB of a 20 MB write). So whenever the stream is about to be destroyed, the
 * bytes it buffered are delivered first, then the master fd is read directly until the kernel
 * reports EIO (all writers gone, buffer empty); while it reports EAGAIN (a child still holds the
 * terminal), reading is retried for up to PTY_DRAIN_LIMIT_MS.
 */
function drainBeforeDestroy(socket: Socket, fd: number, deliver: (chunk: Buffer) => void): void {
  const destroy = socket.destroy.bind(socket);
  const scratch = Buffer.allocUnsafe(64 * 1024);
  let drained = false;

  /** Reads the master fd until EIO (true) or EAGAIN (false). */
  const readKernelBuffer = (): boolean => {
    for (;;) {
      let bytes: number;
      try {
        bytes = readSync(fd, scratch);
      } catch (err) {
        return (err as NodeJS.ErrnoException).code !== 'EAGAIN';
      }
      if (bytes <= 0) return true;
      deliver(Buffer.from(scratch.subarray(0, bytes)));
    }
  };

  // Once the stream is really destroyed its fd is closed, and the number may be another session's.
  let retry: NodeJS.Timeout | null = null;
  const destroyNow = (error?: Error) => {
    if (retry) clearTimeout(retry);
    retry = null;
    return destroy(error);
  };
  socket.destroy = ((error?: Error) => {
    if (drained || socket.destroyed) return destroyNow(error);
    drained = true;
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      // read() in paused mode emits 'data' too: the stream's listener delivers it.
    }
    if (readKernelBuffer()) return destroyNow(error);
    const deadline = Date.now() + PTY_DRAIN_LIMIT_MS;
    const readAgain = () => {
      retry = null;
      if (socket.destroyed) return;
      if (readKernelBuffer() || Date.now() > deadline) destroyNow(error);
      else retry = setTimeout(readAgain, 10);
    };
    retry = setTimeout(readAgain, 10);
    return socket;
  }) as typeof socket.destroy;
}
