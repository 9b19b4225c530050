// The docker backend: runs a process inside a container through the Engine API's exec (create,
// start with the connection hijacked, inspect), demultiplexes its output, and ends it by host PID.
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { EngineClient, EngineError, type EngineExecInspect } from './engine-client.js';
import { CONTAINER_CHANGE_ACTIONS, ContainerChanges } from './container-changes.js';
import { EngineEventStream } from './engine-events.js';
import { EXEC_EXIT_ACTION, ExecExitEvents, type ExitExpectation } from './exec-exits.js';
import { OutputStream } from './output-stream.js';
import { killProcessTree } from '../process-tree.js';
import { StdcopyDemuxer, STDCOPY_STDERR, STDCOPY_STDOUT, STDCOPY_SYSTEMERR } from './stdcopy.js';
import {
  BackendError,
  type Backend,
  type ContainerCatalog,
  type ContainerSummary,
  type ExecProcess,
  type ExecSpec,
  type ExitStatus,
  type TerminalSize,
} from './types.js';

export interface DockerBackendOptions {
  /** `unix:///var/run/docker.sock` or `tcp://host:port`. */
  dockerHost: string;
  /** Time between SIGHUP and SIGKILL when kill() ends a process. */
  killGraceMs: number;
  /** Told about every failed Engine API call, by operation (for metrics). */
  onEngineError?: (operation: string) => void;
  /** Told when the engine's event stream (exit codes without an inspect, container changes) comes and goes. */
  onEventStreamChange?: (connected: boolean, err?: Error) => void;
}

/** The events the agent's one subscription asks for: what ExecExitEvents and ContainerChanges listen to. */
const ENGINE_EVENT_FILTERS = { type: ['container'], event: [EXEC_EXIT_ACTION, ...CONTAINER_CHANGE_ACTIONS] };

/** Errors that mean the engine cannot be reached or does not answer: a 503, not a 500. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Turns an engine error into a BackendError with the engine's own message. */
export function toBackendError(err: unknown, action: string): BackendError {
  const e = err as Partial<EngineError> & Error;
  const message = `${action}: ${e.message}`;
  if (e.statusCode === 404) return new BackendError(message, 'NotFound', { cause: err });
  if (e.statusCode === 409) return new BackendError(message, 'Conflict', { cause: err });
  if (e.code !== undefined && UNREACHABLE_CODES.has(e.code)) {
    return new BackendError(`${action}: the Docker engine is unreachable (${e.code})`, 'Unavailable', { cause: err });
  }
  return new BackendError(message, 'Internal', { cause: err });
}

const EXIT_POLL_LIMIT_MS = 10_000;
/**
 * How long after the output stream ends the exit code is awaited from the `exec_die` event before
 * the exec is inspected instead. The engine sends the event as it closes the stream, so it is
 * usually there first or within a millisecond; a late one only costs this wait.
 */
const EXIT_EVENT_GRACE_MS = 250;
/** How long ending an exec waits for one that was started but is not running yet, and how often it looks. */
const KILL_START_WAIT_MS = 5_000;
const KILL_START_POLL_MS = 20;

export class DockerBackend implements Backend, ContainerCatalog {
  readonly name = 'docker';
  readonly engine: EngineClient;
  readonly #events: EngineEventStream;
  readonly #exits: ExecExitEvents;
  /** When the engine's containers may have changed (for the target resolver's container list). */
  readonly containerChanges: ContainerChanges;

  constructor(private readonly options: DockerBackendOptions) {
    this.engine = new EngineClient(options.dockerHost);
    // From a second before each (re)connect: the engine replays what it logged since, so a change
    // made while the stream was being opened is not missed (a replayed one only costs a new list).
    this.#events = new EngineEventStream((onEvent, onEnd) => this.engine.streamEvents(ENGINE_EVENT_FILTERS, onEvent, onEnd, Math.floor(Date.now() / 1000) - 1));
    if (options.onEventStreamChange) this.#events.listen({ stateChange: options.onEventStreamChange });
    this.#exits = new ExecExitEvents(this.#events);
    this.containerChanges = new ContainerChanges(this.#events);
  }

  /** Subscribes to the engine's events (reconnecting while the agent runs). */
  watchEvents(): void {
    this.#events.start();
  }

  close(): void {
    this.#events.close();
    this.engine.close();
  }

  #failed(operation: string, err: unknown, action: string): BackendError {
    this.options.onEngineError?.(operation);
    return toBackendError(err, action);
  }

  async ping(): Promise<void> {
    try {
      await this.engine.ping();
    } catch (err) {
      throw this.#failed('ping', err, 'ping the Docker engine');
    }
  }

  async listContainers(): Promise<ContainerSummary[]> {
    let list: Awaited<ReturnType<EngineClient['listContainers']>>;
    try {
      list = await this.engine.listContainers();
    } catch (err) {
      throw this.#failed('list_containers', err, 'list containers');
    }
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
      image: c.Image,
      labels: c.Labels ?? {},
      state: c.State,
      created: c.Created,
    }));
  }

  async containerPid(containerId: string): Promise<number> {
    try {
      const info = await this.engine.inspectContainer(containerId);
      return info.State.Running ? info.State.Pid : 0;
    } catch (err) {
      throw this.#failed('inspect_container', err, `inspect container ${containerId.slice(0, 12)}`);
    }
  }

  async start(spec: ExecSpec): Promise<ExecProcess> {
    if (spec.place.kind !== 'container') throw new BackendError(`the docker backend runs processes in containers, not in ${spec.place.kind}`, 'Internal');
    const containerId = spec.place.containerId;
    const consoleSize: [number, number] | undefined = spec.tty && spec.initialSize ? [spec.initialSize.height, spec.initialSize.width] : undefined;
    let execId: string;
    try {
      execId = await this.engine.createExec(containerId, {
        Cmd: spec.command,
        AttachStdin: spec.stdin,
        AttachStdout: spec.stdout,
        AttachStderr: spec.stderr && !spec.tty,
        Tty: spec.tty,
        ...(spec.env ? { Env: spec.env } : {}),
        // Honoured by engines with API ≥ 1.42; older ones get the size through the resize below.
        ...(consoleSize ? { ConsoleSize: consoleSize } : {}),
      });
    } catch (err) {
      const failure = this.#failed('exec_create', err, `create exec in container ${containerId.slice(0, 12)}`);
      // The container is gone or not running where the resolver's list had it running.
      if (failure.kind === 'NotFound' || failure.kind === 'Conflict') this.containerChanges.contradicted();
      throw failure;
    }
    // Engines before API 1.42 ignore ConsoleSize. A resize sent now waits in the engine until the
    // exec starts and lands as the process begins, well before it can ask for its terminal size.
    const earlyResize = consoleSize ? this.engine.resizeExec(execId, consoleSize[0], consoleSize[1]).catch(() => undefined) : null;
    // Registered before the start, so the exec's exec_die event cannot go by unheard.
    const exitEvent = this.#exits.expect(execId);
    let socket: Socket;
    try {
      socket = await this.engine.startExec(execId, { tty: spec.tty, ...(consoleSize ? { consoleSize } : {}) });
    } catch (err) {
      exitEvent?.cancel();
      throw this.#failed('exec_start', err, `start exec in container ${containerId.slice(0, 12)}`);
    }
    const process = new DockerExecProcess(this.engine, execId, socket, spec, this.options.killGraceMs, exitEvent, (operation) => this.options.onEngineError?.(operation));
    // The session forwards stdin only after start() resolves, so typed input meets a sized terminal.
    if (earlyResize) await earlyResize;
    return process;
  }
}

class DockerExecProcess implements ExecProcess {
  readonly stdin: Writable | null;
  readonly stdout: OutputStream;
  readonly stderr: OutputStream | null;
  readonly exit: Promise<ExitStatus>;

  #socketError: Error | null = null;
  #engineError = '';
  #resizeInFlight = false;
  #pendingSize: TerminalSize | null = null;
  #killing: Promise<void> | null = null;

  constructor(
    private readonly engine: EngineClient,
    private readonly execId: string,
    private readonly socket: Socket,
    spec: ExecSpec,
    private readonly killGraceMs: number,
    private readonly exitEvent: ExitExpectation | null,
    private readonly onEngineError: (operation: string) => void,
  ) {
    const resume = () => socket.resume();
    this.stdout = new OutputStream(resume);
    this.stderr = spec.tty || !spec.stderr ? null : new OutputStream(resume);
    this.stdin = spec.stdin ? this.#stdinWriter() : null;

    if (spec.tty) {
      socket.on('data', (chunk: Buffer) => {
        if (!this.stdout.push(chunk)) socket.pause();
      });
    } else {
      let pause = false;
      const demuxer = new StdcopyDemuxer((stream, payload) => {
        if (stream === STDCOPY_STDOUT) {
          if (!this.stdout.push(payload)) pause = true;
        } else if (stream === STDCOPY_STDERR) {
          if (this.stderr && !this.stderr.push(payload)) pause = true;
        } else if (stream === STDCOPY_SYSTEMERR) {
          this.#engineError += payload.toString('utf8');
        }
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          demuxer.push(chunk);
        } catch (err) {
          socket.destroy(err as Error);
          return;
        }
        if (pause) {
          pause = false;
          socket.pause();
        }
      });
    }
    const streamsDone = new Promise<void>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.stdout.push(null);
        this.stderr?.push(null);
        resolve();
      };
      socket.on('end', finish);
      socket.on('close', finish);
      socket.on('error', (err) => {
        this.#socketError = err;
        finish();
      });
    });
    this.exit = streamsDone.then(() => this.#collectExit());
  }

  #stdinWriter(): Writable {
    const socket = this.socket;
    return new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        if (socket.destroyed || socket.writableEnded) return callback();
        socket.write(chunk, (err) => callback(err ?? null));
      },
      final(callback) {
        // Half-close: the engine closes the process's stdin; its output keeps flowing to us.
        if (!socket.destroyed && !socket.writableEnded) socket.end();
        callback();
      },
    });
  }

  async #collectExit(): Promise<ExitStatus> {
    const code = this.exitEvent ? await this.exitEvent.exitCode(EXIT_EVENT_GRACE_MS) : null;
    if (code !== null) return this.#engineError ? { code, signal: null, error: this.#engineError.trim() } : { code, signal: null };
    return this.#inspectExit();
  }

  /** The exit code from inspecting the exec, waiting (a while) for an exec whose stream ended early. */
  async #inspectExit(): Promise<ExitStatus> {
    const deadline = Date.now() + EXIT_POLL_LIMIT_MS;
    let delay = 2;
    for (;;) {
      let info: EngineExecInspect;
      try {
        info = await this.engine.inspectExec(this.execId);
      } catch (err) {
        this.onEngineError('exec_inspect');
        const cause = this.#socketError ? `${this.#socketError.message}; ` : '';
        return { code: null, signal: null, error: `cannot learn the exit code: ${cause}${toBackendError(err, 'inspect exec').message}` };
      }
      if (!info.Running) {
        if (typeof info.ExitCode === 'number') {
          return this.#engineError ? { code: info.ExitCode, signal: null, error: this.#engineError.trim() } : { code: info.ExitCode, signal: null };
        }
        return { code: null, signal: null, error: this.#engineError.trim() || 'the engine reported no exit code' };
      }
      if (Date.now() > deadline) {
        // Not kill(): an earlier kill() may have given up on an exec that was not running then.
        await this.#killTree();
        return { code: null, signal: null, error: 'the output stream ended but the process kept running; it was killed' };
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 200);
    }
  }

  async resize(size: TerminalSize): Promise<void> {
    // Coalesce: at most one request in flight; the latest size wins.
    this.#pendingSize = size;
    if (this.#resizeInFlight) return;
    this.#resizeInFlight = true;
    try {
      while (this.#pendingSize) {
        const next = this.#pendingSize;
        this.#pendingSize = null;
        try {
          // The engine holds this until the exec is running, so early sizes are queued, not lost.
          await this.engine.resizeExec(this.execId, next.height, next.width);
        } catch {
          // The process already ended, or never started: there is no terminal left to resize.
        }
      }
    } finally {
      this.#resizeInFlight = false;
    }
  }

  kill(): Promise<void> {
    this.#killing ??= this.#killTree();
    return this.#killing;
  }

  /**
   * Ends the exec's process tree by host PID. An exec whose start the engine has acknowledged may
   * not be running yet (runc takes tens of milliseconds): it is waited for, as closing its stream
   * would not stop it from starting. One that ended, or never runs within KILL_START_WAIT_MS, only
   * has its stream closed.
   */
  async #killTree(): Promise<void> {
    const deadline = Date.now() + KILL_START_WAIT_MS;
    for (;;) {
      let info: EngineExecInspect;
      try {
        info = await this.engine.inspectExec(this.execId);
      } catch {
        this.socket.destroy();
        return;
      }
      const pid = info.Pid ?? 0;
      if (info.Running && pid > 1) {
        await killProcessTree(pid, this.killGraceMs);
        return;
      }
      if (info.ExitCode !== null || Date.now() >= deadline) {
        this.socket.destroy();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, KILL_START_POLL_MS));
    }
  }
}
