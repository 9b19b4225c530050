// Starts a program through execlet-spawn.node (native/execlet-spawn.c, compiled into dist/native/
// by `npm run build`): posix_spawn with vfork semantics, so the agent is not forked for each
// session as child_process and node-pty do (a copy of its page tables on the event loop, longer the
// more memory the agent holds). The child's stdio are unix socket pairs, as child_process makes
// them, or a new pseudo-terminal, its controlling terminal, of which the agent keeps the master.
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the module (beside dist/native/execlet-nsenter; see nsenter.ts). */
export const DEFAULT_SPAWN_MODULE_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/native/execlet-spawn.node' : '../native/execlet-spawn.node', import.meta.url));

type OnExit = (code: number | null, signal: number | null) => void;
/** What the module returns for a process on socket pairs: its pid, and the agent's ends (-1: none). */
type Started = { pid: number; fds: [number, number, number] };
/** file, argv, envp, cwd, which of stdin/stdout/stderr are socket pairs, onExit. */
type PipeSpawnArgs = [file: string, argv: string[], envp: string[], cwd: string, stdio: [boolean, boolean, boolean], onExit: OnExit];

interface SpawnModule {
  spawn(...args: PipeSpawnArgs): Started;
  spawnAsync(...args: [...PipeSpawnArgs, onStarted: (error: (Error & { errno?: number }) | null, started?: Started) => void]): void;
  spawnPty(file: string, argv: string[], envp: string[], cwd: string, cols: number, rows: number, onExit: OnExit): { pid: number; master: number };
  resize(master: number, cols: number, rows: number): void;
}

export type ExitOutcome = { code: number | null; signal: number | null };

export interface SpawnedProcess {
  pid: number;
  /** Null for a stream that was not asked for (/dev/null in the child). */
  stdin: Socket | null;
  stdout: Socket | null;
  stderr: Socket | null;
  /** Once the process has exited and been reaped; both null when its outcome is unknown. */
  exited: Promise<ExitOutcome>;
}

/** A process from spawnWithFds: the agent's ends of its stdin, stdout and stderr, -1 where there is none. */
export interface SpawnedFds {
  pid: number;
  fds: [number, number, number];
  exited: Promise<ExitOutcome>;
}

/** The streams over a spawnWithFds process's fds, which they own from then on. */
export function streamsOf({ pid, fds: [stdin, stdout, stderr], exited }: SpawnedFds): SpawnedProcess {
  return {
    pid,
    stdin: stdin >= 0 ? new Socket({ fd: stdin, readable: false, writable: true }) : null,
    stdout: stdout >= 0 ? new Socket({ fd: stdout, readable: true, writable: false }) : null,
    stderr: stderr >= 0 ? new Socket({ fd: stderr, readable: true, writable: false }) : null,
    exited,
  };
}

export interface SpawnedTerminal {
  pid: number;
  /**
   * The terminal's master fd (close-on-exec), the caller's to read, write and close. Reading it
   * gives what the process wrote, then EIO once nothing holds the terminal any more.
   */
  master: number;
  exited: Promise<ExitOutcome>;
  /** The terminal's new size; the process's foreground group gets SIGWINCH. Only while `master` is open. */
  resize(cols: number, rows: number): void;
}

export interface SpawnOptions {
  env: Record<string, string>;
  cwd: string;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** Thrown when the program cannot be started; `errno` is posix_spawn's (ENOENT, EACCES, …). */
export class SpawnError extends Error {
  constructor(
    message: string,
    readonly errno: number | undefined,
  ) {
    super(message);
    this.name = 'SpawnError';
  }
}

export class PosixSpawner {
  private constructor(private readonly module: SpawnModule) {}

  /** The spawner, or why it cannot be used (the module is missing or does not load here). */
  static load(path = DEFAULT_SPAWN_MODULE_PATH): PosixSpawner | { unavailable: string } {
    try {
      return new PosixSpawner(createRequire(import.meta.url)(path) as SpawnModule);
    } catch (err) {
      return { unavailable: `${path} does not load: ${(err as Error).message.split('\n')[0]}` };
    }
  }

  spawn(argv: string[], options: SpawnOptions): SpawnedProcess {
    return streamsOf(this.spawnWithFds(argv, options));
  }

  /**
   * As spawn, but the agent's ends of the socket pairs stay plain blocking fds (close-on-exec, -1
   * for a stream not asked for), which nothing reads until streamsOf() makes streams of them. The
   * child itself holds the event loop until it is reaped, as every child of this module does.
   */
  spawnWithFds(argv: string[], options: SpawnOptions): SpawnedFds {
    const [exited, onExit] = exitPromise();
    const started = attempt(() => this.module.spawn(argv[0]!, argv, envp(options.env), options.cwd, [options.stdin, options.stdout, options.stderr], onExit));
    return { pid: started.pid, fds: started.fds, exited };
  }

  /**
   * As spawnWithFds, but posix_spawn runs on a libuv worker thread: the event loop does not pause
   * while the child is started (0.5-1 ms on a busy machine), for a process started ahead of need.
   */
  spawnWithFdsAsync(argv: string[], options: SpawnOptions): Promise<SpawnedFds> {
    const [exited, onExit] = exitPromise();
    return new Promise((resolve, reject) => {
      attempt(() =>
        this.module.spawnAsync(argv[0]!, argv, envp(options.env), options.cwd, [options.stdin, options.stdout, options.stderr], onExit, (error, started) => {
          if (error || !started) reject(new SpawnError(error?.message ?? 'spawnAsync: no process', error?.errno));
          else resolve({ pid: started.pid, fds: started.fds, exited });
        }),
      );
    });
  }

  /** The program on a new pseudo-terminal of `cols` × `rows`, its stdin, stdout, stderr and controlling terminal. */
  spawnPty(argv: string[], options: TerminalOptions): SpawnedTerminal {
    const [exited, onExit] = exitPromise();
    const started = attempt(() => this.module.spawnPty(argv[0]!, argv, envp(options.env), options.cwd, options.cols, options.rows, onExit));
    return { pid: started.pid, master: started.master, exited, resize: (cols, rows) => this.module.resize(started.master, cols, rows) };
  }
}

export interface TerminalOptions {
  env: Record<string, string>;
  cwd: string;
  cols: number;
  rows: number;
}

function exitPromise(): [Promise<ExitOutcome>, (code: number | null, signal: number | null) => void] {
  let resolve!: (outcome: ExitOutcome) => void;
  const exited = new Promise<ExitOutcome>((r) => (resolve = r));
  return [exited, (code, signal) => resolve({ code, signal })];
}

function attempt<T>(start: () => T): T {
  try {
    return start();
  } catch (err) {
    throw new SpawnError((err as Error).message, (err as { errno?: number }).errno);
  }
}

const envp = (env: Record<string, string>) => Object.entries(env).map(([key, value]) => `${key}=${value}`);
