// The nsenter backend: runs a process in the namespaces of a host process (a container's init, or
// PID 1 for a node shell) but outside its cgroup, so it escapes a starved container's limits. The
// namespaces are entered by one small static helper, execlet-nsenter (native/execlet-nsenter.c,
// compiled into dist/native/ by `npm run build`), in a single exec. With a TTY it runs in a
// pseudo-terminal, without one as a child with separate stdio; both are started with posix_spawn
// (posix-spawn.ts) where that module loads, else with node-pty and child_process, which fork the agent.
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readSync, statSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';
import { ReadStream as TerminalReadStream } from 'node:tty';
import { fileURLToPath } from 'node:url';
import * as pty from 'node-pty';
import { OutputStream } from './output-stream.js';
import { PosixSpawner, SpawnError } from './posix-spawn.js';
import { killProcessTree } from './process-tree.js';
import { BackendError, type Backend, type ExecPlace, type ExecProcess, type ExecSpec, type ExitStatus, type LinuxNamespace, type TerminalSize } from './types.js';

export interface NsenterBackendOptions {
  killGraceMs: number;
  /** The execlet-nsenter helper; by default the one `npm run build` puts in dist/native/. */
  helperPath?: string;
  /**
   * How sessions start the helper: `posix` (execlet-spawn.node, no fork of the agent) unless that
   * module does not load, or `node` (node-pty with a TTY, child_process without) always. Default: posix.
   */
  spawner?: 'posix' | 'node';
  /** The execlet-spawn.node module; by default the one `npm run build` puts in dist/native/. */
  spawnModulePath?: string;
}

/** The environment of every nsenter'd process: nothing of the agent's own leaks into it. */
const BASE_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };
/** After the process exits, how long the pty is read for output still buffered (or held by children). */
const PTY_DRAIN_LIMIT_MS = 2000;

/**
 * Where `npm run build` puts the helper: beside the compiled code (dist/backend/nsenter.js →
 * dist/native/execlet-nsenter), and for the TypeScript sources run directly (tsx, in tests)
 * src/backend/nsenter.ts → dist/native/execlet-nsenter as well.
 */
export const DEFAULT_HELPER_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/native/execlet-nsenter' : '../native/execlet-nsenter', import.meta.url));

/** The agent's namespace names (nsenter's options) as the helper takes them (/proc/PID/ns files). */
const NS_FILE: Record<LinuxNamespace, string> = { mount: 'mnt', uts: 'uts', ipc: 'ipc', net: 'net', pid: 'pid', user: 'user', cgroup: 'cgroup' };

type NamespacePlace = Extract<ExecPlace, { kind: 'namespaces' }>;

/**
 * The argv that runs `command` in the place's namespaces, never through a shell:
 *
 *   execlet-nsenter --target PID --ns mnt,uts,ipc,net,pid [--toolbox] -- COMMAND [ARG...]
 *
 * One exec: the helper opens every /proc/PID/ns file, enters them in nsenter's order, forks into
 * the PID namespace when `pid` is entered (the parent waits and reports the child's exit or
 * signal), with --toolbox mounts a fresh /proc in a new mount namespace (unshare --mount-proc),
 * then execs COMMAND. Every process it makes carries PR_SET_PDEATHSIG=SIGKILL, so if the agent is
 * killed, the command dies with it. It runs from the node's filesystem, before the mount namespace
 * is entered, so the target needs no tools of its own.
 */
export function nsenterArgv(helper: string, place: NamespacePlace, command: string[]): string[] {
  if (place.namespaces.length === 0) throw new BackendError('no namespaces to enter', 'Internal');
  if (command.length === 0) throw new BackendError('no command to run', 'Internal');
  const namespaces = place.namespaces.map((ns) => NS_FILE[ns]).join(',');
  return [helper, '--target', String(place.pid), '--ns', namespaces, ...(place.toolbox ? ['--toolbox'] : []), '--', ...command];
}

function signalName(signal: number | undefined | null): string | null {
  if (!signal) return null;
  const entry = Object.entries(osConstants.signals).find(([, number]) => number === signal);
  return entry ? entry[0] : `SIG${signal}`;
}

export class NsenterBackend implements Backend {
  readonly name = 'nsenter';
  #helper: string | null = null;
  readonly #spawner: PosixSpawner | null;
  /** Why sessions start the helper with node-pty and child_process, when they do; null otherwise. */
  readonly spawnerFallback: string | null;

  constructor(private readonly options: NsenterBackendOptions) {
    if (options.spawner === 'node') {
      this.#spawner = null;
      this.spawnerFallback = 'child_process was chosen';
      return;
    }
    const loaded = PosixSpawner.load(options.spawnModulePath);
    this.#spawner = loaded instanceof PosixSpawner ? loaded : null;
    this.spawnerFallback = loaded instanceof PosixSpawner ? null : loaded.unavailable;
  }

  /** How sessions start the helper. */
  get spawner(): 'posix' | 'node' {
    return this.#spawner ? 'posix' : 'node';
  }

  /** The execlet-nsenter helper, checked once; a clear error when it is missing or not executable. */
  helper(): string {
    if (this.#helper) return this.#helper;
    const helper = this.options.helperPath ?? DEFAULT_HELPER_PATH;
    let problem: string | null = null;
    try {
      if (!statSync(helper).isFile()) problem = 'not a file';
      else accessSync(helper, fsConstants.X_OK);
    } catch (err) {
      problem = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not executable';
    }
    if (problem) {
      throw new BackendError(`the nsenter mode needs its helper ${helper}, ${problem}: \`npm run build\` compiles it from native/execlet-nsenter.c (with cc)`, 'Unavailable');
    }
    this.#helper = helper;
    return helper;
  }

  async start(spec: ExecSpec): Promise<ExecProcess> {
    const place = spec.place;
    if (place.kind !== 'namespaces') throw new BackendError(`the nsenter backend enters namespaces of a host process, not a ${place.kind}`, 'Internal');
    if (!existsSync(`/proc/${place.pid}/ns`)) throw new BackendError(`process ${place.pid} does not exist (it may have exited)`, 'NotFound');
    const argv = nsenterArgv(this.helper(), place, spec.command);
    const env = { ...BASE_ENV, ...(spec.tty ? { TERM: 'xterm' } : {}), ...Object.fromEntries((spec.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
    const killGraceMs = this.options.killGraceMs;
    if (this.#spawner) return spec.tty ? startInPosixPty(this.#spawner, argv, env, spec, killGraceMs) : startWithPosixSpawn(this.#spawner, argv, env, spec, killGraceMs);
    return spec.tty ? startInPty(argv, env, spec, killGraceMs) : startWithPipes(argv, env, spec, killGraceMs);
  }
}

/**
 * The helper without a TTY, started with posix_spawn in a session of its own (out of reach of
 * signals meant for the agent). Its exit is reported, like child_process's 'close', once it has
 * exited and its output is read to the end.
 */
function startWithPosixSpawn(spawner: PosixSpawner, argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): ExecProcess {
  let child;
  try {
    child = spawner.spawn(argv, { env, cwd: '/', stdin: spec.stdin, stdout: spec.stdout, stderr: spec.stderr });
  } catch (err) {
    if (!(err instanceof SpawnError)) throw err;
    throw new BackendError(`cannot run ${argv[0]}: ${err.message}`, 'Unavailable', { cause: err });
  }
  const { pid, stdin, stdout, stderr } = child;
  const drained = (stream: Socket | null) => (stream ? new Promise<void>((resolve) => stream.once('close', () => resolve())) : Promise.resolve());
  let exited = false;
  const exit = Promise.all([child.exited, drained(stdout), drained(stderr)]).then(([{ code, signal }]): ExitStatus => {
    if (code === null && signal === null) return { code: null, signal: null, error: `the exit status of ${argv[0]} (pid ${pid}) was lost: another process reaped it` };
    return { code, signal: signalName(signal) };
  });
  void child.exited.then(() => (exited = true));
  // The process closed its stdin; what the client still sends has nowhere to go.
  stdin?.on('error', () => undefined);
  let killing: Promise<void> | null = null;
  return {
    stdin,
    stdout: stdout ?? Readable.from([]),
    stderr,
    resize: async () => {
      // No terminal, nothing to resize.
    },
    kill: () => (killing ??= exited ? Promise.resolve() : killProcessTree(pid, killGraceMs)),
    exit,
  };
}

function startWithPipes(argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): Promise<ExecProcess> {
  return new Promise((resolve, reject) => {
    // detached: its own process group and session, out of reach of signals meant for the agent.
    const child: ChildProcess = spawnChild(argv[0]!, argv.slice(1), {
      cwd: '/',
      env,
      detached: true,
      stdio: [spec.stdin ? 'pipe' : 'ignore', spec.stdout ? 'pipe' : 'ignore', spec.stderr ? 'pipe' : 'ignore'],
    });
    let killing: Promise<void> | null = null;
    const exit = new Promise<ExitStatus>((resolveExit) => {
      child.once('error', (err) => resolveExit({ code: null, signal: null, error: `cannot run ${argv[0]}: ${err.message}` }));
      // 'close' comes after the process exited and its output pipes are drained.
      child.once('close', (code, signal) => resolveExit({ code, signal }));
    });
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
        kill: () => (killing ??= child.exitCode === null && child.signalCode === null && child.pid ? killProcessTree(child.pid, killGraceMs) : Promise.resolve()),
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
function startInPosixPty(spawner: PosixSpawner, argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): ExecProcess {
  const size: TerminalSize = spec.initialSize ?? { width: 80, height: 24 };
  const dimension = (value: number, otherwise: number) => Math.min(value || otherwise, 65535);
  let terminal;
  try {
    terminal = spawner.spawnPty(argv, { env, cwd: '/', cols: dimension(size.width, 80), rows: dimension(size.height, 24) });
  } catch (err) {
    if (!(err instanceof SpawnError)) throw err;
    throw new BackendError(`cannot start ${argv[0]} on a pseudo-terminal: ${err.message}`, 'Unavailable', { cause: err });
  }
  const { pid, master } = terminal;
  const reader = new TerminalReadStream(master);
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
  void terminal.exited.then(() => {
    exited = true;
    setTimeout(() => reader.destroy(), PTY_TEARDOWN_AFTER_EXIT_MS).unref();
  });
  const exit = Promise.all([terminal.exited, readToEnd]).then(([{ code, signal }]): ExitStatus => {
    stdout.push(null);
    if (code === null && signal === null) return { code: null, signal: null, error: `the exit status of ${argv[0]} (pid ${pid}) was lost: another process reaped it` };
    return { code, signal: signalName(signal) };
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
  let killing: Promise<void> | null = null;
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
    kill: () => (killing ??= exited ? Promise.resolve() : killProcessTree(pid, killGraceMs)),
    exit,
  };
}

async function startInPty(argv: string[], env: Record<string, string>, spec: ExecSpec, killGraceMs: number): Promise<ExecProcess> {
  const size: TerminalSize = spec.initialSize ?? { width: 80, height: 24 };
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
  void exit.then(() => (exited = true));
  const stdin = spec.stdin
    ? new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (!exited) term.write(chunk);
          callback();
        },
        // A terminal has no half-close: input ending leaves the session to the process.
      })
    : null;
  let killing: Promise<void> | null = null;
  return {
    stdin,
    stdout,
    stderr: null,
    resize: async (next) => {
      if (!exited && next.width > 0 && next.height > 0) term.resize(next.width, next.height);
    },
    kill: () => (killing ??= exited ? Promise.resolve() : killProcessTree(term.pid, killGraceMs)),
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

  socket.destroy = ((error?: Error) => {
    if (drained || socket.destroyed) return destroy(error);
    drained = true;
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      // read() in paused mode emits 'data' too: node-pty's listener delivers it.
    }
    if (readKernelBuffer()) return destroy(error);
    const deadline = Date.now() + PTY_DRAIN_LIMIT_MS;
    const retry = () => {
      if (readKernelBuffer() || Date.now() > deadline) destroy(error);
      else setTimeout(retry, 10);
    };
    setTimeout(retry, 10);
    return socket;
  }) as typeof socket.destroy;
}
