// The contract every backend implements: start one process, expose its streams, resize, kill, exit.
// Nothing above backend/ knows how a process is run; nothing in backend/ knows about WebSockets.
import type { Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

/** The Linux namespaces nsenter can enter, by the names of its options. */
export const LINUX_NAMESPACES = ['mount', 'uts', 'ipc', 'net', 'pid', 'user', 'cgroup'] as const;
export type LinuxNamespace = (typeof LINUX_NAMESPACES)[number];

/**
 * Where the process runs, already resolved by target/: inside a container through the engine, or
 * in the namespaces of a host process (outside any container cgroup). With `toolbox`, the node's
 * filesystem is kept and a fresh /proc shows the target's PID namespace.
 */
export type ExecPlace =
  | { kind: 'container'; containerId: string }
  | {
      kind: 'namespaces';
      pid: number;
      namespaces: LinuxNamespace[];
      toolbox: boolean;
      /**
       * The process's start time (/proc/PID/stat) when the target was resolved: a session started
       * later (a stream URL is opened up to a minute after it was issued) is refused if the PID
       * belongs to another process by then.
       */
      startTime?: string;
    };

/** What to run and where. */
export interface ExecSpec {
  place: ExecPlace;
  command: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Size of the terminal at start (TTY only); later sizes arrive through resize(). */
  initialSize?: TerminalSize;
  /** Extra environment for the process, `KEY=value`. */
  env?: string[];
}

/** How a process ended. `code` is the exit code (0–255); `signal` is set when it was killed by one. */
export interface ExitStatus {
  code: number | null;
  signal: string | null;
  /** Set when the backend could not determine the outcome or the process failed to run. */
  error?: string;
}

export interface ExecProcess {
  /** null when the caller asked for no stdin. end() half-closes the process's stdin. */
  stdin: Writable | null;
  /** With a TTY: the only output stream. Emits Buffers. */
  stdout: Readable;
  /** null with a TTY or when not requested. */
  stderr: Readable | null;
  resize(size: TerminalSize): Promise<void>;
  /** Ends the process and everything it started; idempotent. */
  kill(): Promise<void>;
  /** Resolves once, when the process has ended and its output is drained; never rejects. */
  readonly exit: Promise<ExitStatus>;
}

export interface Backend {
  readonly name: string;
  start(spec: ExecSpec): Promise<ExecProcess>;
}

/** A refusal the backend can name precisely (unknown container, container not running, …). */
export class BackendError extends Error {
  constructor(
    message: string,
    readonly kind: 'NotFound' | 'Conflict' | 'Unavailable' | 'Internal',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackendError';
  }
}

/** One container as the engine lists it; what target/ needs to synthesize pods. */
export interface ContainerSummary {
  id: string;
  /** Without the engine's leading slash. */
  name: string;
  image: string;
  labels: Record<string, string>;
  /** Engine state: running, exited, created, paused, restarting, dead. */
  state: string;
  /** Unix seconds. */
  created: number;
}

/** The engine's view of containers, as target/ needs it. */
export interface ContainerCatalog {
  listContainers(): Promise<ContainerSummary[]>;
  /** Host PID of the container's init process; 0 when it is not running. */
  containerPid(containerId: string): Promise<number>;
}

/** How each kind of backend refusal reads as HTTP: the code and the Kubernetes Status reason. */
export const BACKEND_ERROR_HTTP: Readonly<Record<BackendError['kind'], { code: number; reason: string }>> = {
  NotFound: { code: 404, reason: 'NotFound' },
  Conflict: { code: 409, reason: 'Conflict' },
  Unavailable: { code: 503, reason: 'ServiceUnavailable' },
  Internal: { code: 500, reason: 'InternalError' },
};

/** What the target resolver needs to know of container changes: whether it may trust the feed, and a number that moves on every change. */
export interface ContainerChangeFeed {
  /** True while every change is heard. */
  readonly live: boolean;
  /** Moves on every change, and whenever the stream connects or drops (changes may have been missed). */
  readonly generation: number;
}
