// The life of one exec stream: starts the process through a backend, pumps bytes both ways with
// backpressure, reports the exit as a Status, and makes sure the process is gone when it ends.
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import { BACKEND_ERROR_HTTP, BackendError, type Backend, type ExecProcess, type ExecSpec, type ExitStatus, type TerminalSize } from '../backend/types.js';
import type { ClientChannels, OutputStreamName } from '../protocol/channel-connection.js';
import { exitCodeStatus, failureStatus, type Status } from '../protocol/status.js';
import type { SessionProgress } from './registry.js';

export interface SessionLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export type SessionOutcome = 'exited' | 'disconnect' | 'error' | 'idle' | 'maxDuration' | 'killed' | 'shutdown';

/** Why the owner ends a session from outside (agent shutdown, policy change), given as an AbortSignal's reason. */
export interface SessionStop {
  outcome: 'killed' | 'shutdown';
  message: string;
}

export interface SessionResult {
  outcome: SessionOutcome;
  exit: ExitStatus | null;
  status: Status | null;
  bytesIn: number;
  bytesOut: number;
}

export interface ExecSessionOptions {
  channels: ClientChannels;
  backend: Backend;
  spec: Omit<ExecSpec, 'initialSize'>;
  log: SessionLogger;
  /** With a TTY, how long to wait for the client's first terminal size before starting anyway. */
  initialSizeWaitMs?: number;
  /** A terminal size known before the stream opened; no need to wait for the client's. */
  initialSize?: TerminalSize;
  /** Stdin buffered before the process is running; input is paused beyond this. */
  maxPendingStdin?: number;
  /** Ends the session when neither input nor output moved for this long. */
  idleTimeoutMs?: number;
  /** Ends the session this long after it started. */
  maxDurationMs?: number;
  /** Ends the session from outside; the signal's reason is a SessionStop. */
  stop?: AbortSignal;
  /** Kept up to date with bytes and activity, for the registry. */
  progress?: SessionProgress;
  /** Called once the process runs. */
  onProcessStarted?: () => void;
  /**
   * The process, already starting (a session without a TTY, started before its WebSocket opened):
   * used instead of `backend.start`, and ended like any other if the session ends first.
   */
  started?: Promise<ExecProcess>;
}

/** A TTY user is told this long before a timeout ends the session. */
const NOTICE_BEFORE_END_MS = 60_000;
/** The longest delay setTimeout keeps (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds % 3600 === 0 && seconds >= 3600) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds >= 60) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The Status a client gets for how the process ended; a missing code is never reported as success. */
export function statusForExit(exit: ExitStatus): Status {
  if (exit.code !== null) return exitCodeStatus(exit.code);
  if (exit.signal !== null) {
    // The shell convention: killed by signal n is exit status 128+n.
    const number = (osConstants.signals as Record<string, number | undefined>)[exit.signal];
    if (number !== undefined) return exitCodeStatus(128 + number);
    return failureStatus('InternalError', `error executing command in container: the process was killed by ${exit.signal}`, 500);
  }
  return failureStatus('InternalError', `error executing command in container: ${exit.error ?? 'the process ended without an exit status'}`, 500);
}

/**
 * Ends a process whose output nobody will read and returns how it ended. Its output is dropped:
 * the backends report an exit only once the output is read to the end.
 */
export async function endUnusedProcess(process: ExecProcess, log: SessionLogger): Promise<ExitStatus> {
  process.stdout.resume();
  process.stderr?.resume();
  await process.kill().catch((err: Error) => log.warn({ err: err.message }, 'ending the process failed'));
  return process.exit;
}

export function statusForStartError(err: unknown): Status {
  if (err instanceof BackendError) {
    const { code, reason } = BACKEND_ERROR_HTTP[err.kind];
    return failureStatus(reason, `error executing command in container: ${err.message}`, code);
  }
  return failureStatus('InternalError', `error executing command in container: ${(err as Error).message}`, 500);
}

export async function runExecSession(options: ExecSessionOptions): Promise<SessionResult> {
  const { channels, backend, spec, log } = options;
  const maxPendingStdin = options.maxPendingStdin ?? 1024 * 1024;
  let process: ExecProcess | null = null;
  let clientGone = false;
  let stdinEnded = false;
  let pendingStdin: Buffer[] = [];
  let pendingStdinBytes = 0;
  let latestSize: TerminalSize | undefined = options.initialSize;
  let sizeArrived: (() => void) | null = null;
  let goneArrived: (() => void) | null = null;
  const result: SessionResult = { outcome: 'exited', exit: null, status: null, bytesIn: 0, bytesOut: 0 };

  // Input is paused while the process's stdin is full (one drain listener at a time) or while too
  // much arrived before the process started; it resumes only when neither holds.
  let stdinFull = false;
  let pendingFull = false;
  const updateInputFlow = (wasPaused: boolean) => {
    const paused = stdinFull || pendingFull;
    if (paused && !wasPaused) channels.pauseInput();
    if (!paused && wasPaused) channels.resumeInput();
  };
  const writeStdin = (data: Buffer) => {
    const stdin = process!.stdin!;
    if (stdin.write(data) || stdinFull) return;
    const wasPaused = pendingFull;
    stdinFull = true;
    updateInputFlow(wasPaused);
    stdin.once('drain', () => {
      stdinFull = false;
      updateInputFlow(true);
    });
  };
  const logRejection = (what: string) => (err: unknown) => log.warn({ err: (err as Error).message }, what);

  // Ending from the agent's side (timeouts, stop): the process is killed and this Status is sent instead of its exit.
  let endStatus: Status | null = null;
  let endArrived: (() => void) | null = null;
  const endSession = (outcome: SessionOutcome, status: Status) => {
    if (endStatus || clientGone) return;
    endStatus = status;
    result.outcome = outcome;
    log.info({ outcome, reason: status.message }, 'ending the session');
    endArrived?.();
    if (process) process.kill().catch(logRejection('ending the process failed'));
  };
  const progress: SessionProgress = options.progress ?? { bytesIn: 0, bytesOut: 0, lastActivity: Date.now() };
  progress.lastActivity = Date.now();
  // A one-line notice on the terminal (not counted as activity) before a timeout ends the session.
  const notice = (text: string) => {
    if (spec.tty && spec.stdout && process && !channels.closed) channels.write('stdout', Buffer.from(`\r\n[execlet] ${text}\r\n`));
  };
  /** The notice of a resize message that was not valid, sent before the process ran. */
  let resizeNotice: string | null = null;
  const timers = new Set<NodeJS.Timeout>();
  // Node.js runs a timer of more than 2^31 - 1 ms after 1 ms: a longer wait is taken in steps.
  const schedule = (fn: () => void, ms: number) => {
    const step = Math.min(ms, MAX_TIMER_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (ms > step) schedule(fn, ms - step);
      else fn();
    }, step);
    timers.add(timer);
  };
  if (options.maxDurationMs !== undefined) {
    const limit = options.maxDurationMs;
    if (limit > 2 * NOTICE_BEFORE_END_MS) {
      schedule(() => notice(`This session will be ended in 1 minute: it reaches its maximum duration of ${formatDuration(limit)}.`), limit - NOTICE_BEFORE_END_MS);
    }
    schedule(() => endSession('maxDuration', failureStatus('Timeout', `session ended: it reached its maximum duration of ${formatDuration(limit)}`, 504)), limit);
  }
  if (options.idleTimeoutMs !== undefined) {
    const limit = options.idleTimeoutMs;
    const noticeAt = limit > 2 * NOTICE_BEFORE_END_MS ? limit - NOTICE_BEFORE_END_MS : Infinity;
    let noticed = false;
    const checkIdle = () => {
      const quiet = Date.now() - progress.lastActivity;
      if (quiet >= limit) {
        endSession('idle', failureStatus('Timeout', `session ended: no input or output for ${formatDuration(limit)} (idle timeout)`, 504));
        return;
      }
      if (quiet < noticeAt) noticed = false;
      else if (!noticed) {
        noticed = true;
        notice(`This session will be ended in 1 minute: no input or output for ${formatDuration(quiet)} (idle timeout ${formatDuration(limit)}).`);
      }
      // Without a notice (a limit of 2 minutes or less), noticeAt is Infinity: wait for the limit.
      schedule(checkIdle, (quiet < noticeAt ? Math.min(noticeAt, limit) : limit) - quiet);
    };
    schedule(checkIdle, Math.min(noticeAt, limit));
  }
  const onStop = () => {
    const reason = options.stop!.reason as SessionStop;
    endSession(reason.outcome, failureStatus(reason.outcome === 'shutdown' ? 'ServiceUnavailable' : 'Forbidden', reason.message, reason.outcome === 'shutdown' ? 503 : 403));
  };
  options.stop?.addEventListener('abort', onStop, { once: true });
  // Stopped while it was being set up (the process may be starting already): ended as soon as it runs.
  if (options.stop?.aborted) onStop();
  try {
    return await run();
  } finally {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    options.stop?.removeEventListener('abort', onStop);
  }

  async function run(): Promise<SessionResult> {

    channels.attach({
      stdin(data) {
        result.bytesIn += data.length;
        progress.bytesIn += data.length;
        progress.lastActivity = Date.now();
        if (!spec.stdin) return;
        if (process?.stdin) {
          writeStdin(data);
          return;
        }
        pendingStdin.push(data);
        pendingStdinBytes += data.length;
        if (pendingStdinBytes > maxPendingStdin && !pendingFull) {
          pendingFull = true;
          updateInputFlow(false);
        }
      },
      stdinEnd() {
        stdinEnded = true;
        process?.stdin?.end();
      },
      resize(size) {
        // As kubectl's own handling: a terminal with no rows or no columns is no size (a client
        // whose terminal reported 0×0, or a resize message missing a dimension).
        if (size.width < 1 || size.height < 1) return;
        latestSize = size;
        if (process && spec.tty) process.resize(size).catch(logRejection('resizing the terminal failed'));
        sizeArrived?.();
      },
      resizeRefused(problem) {
        log.warn({ problem }, 'the client sent a resize message that is not valid: its resizes are ignored from now on, as the kubelet ignores them');
        // The problem may quote what the client sent: no control character of it reaches the terminal.
        const shown = problem.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
        const text = `The terminal size the client sent is not valid (${shown}): the terminal keeps its size, and later sizes are ignored.`;
        // Before the process runs there is no terminal to say it on yet: it is said once there is.
        if (process) notice(text);
        else resizeNotice = text;
      },
      clientGone(reason) {
        clientGone = true;
        result.outcome = 'disconnect';
        log.info({ reason }, 'client left the session');
        goneArrived?.();
        if (process) process.kill().catch(logRejection('ending the process failed'));
      },
      protocolError(message) {
        log.warn({ err: message }, 'client broke the stream protocol');
      },
    });
    channels.sendReady();

    if (spec.tty && latestSize === undefined) {
      // kubectl sends the size as its first frame; starting after it gives the process the right size.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.initialSizeWaitMs ?? 300);
        sizeArrived = goneArrived = endArrived = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      sizeArrived = goneArrived = endArrived = null;
    }
    // A process started already is awaited and ended below, like one that started as the session ended.
    if (clientGone && !options.started) return result;
    if (endStatus && !options.started) {
      result.status = endStatus;
      channels.finish(endStatus);
      return result;
    }

    const sizeAtStart = latestSize;
    try {
      process = await (options.started ?? backend.start({ ...spec, ...(spec.tty && sizeAtStart ? { initialSize: sizeAtStart } : {}) }));
    } catch (err) {
      result.outcome = 'error';
      result.status = statusForStartError(err);
      log.warn({ err: (err as Error).message }, 'process did not start');
      channels.finish(result.status);
      return result;
    }
    if (clientGone || endStatus) {
      result.exit = await endUnusedProcess(process, log);
      if (endStatus && !clientGone) {
        result.status = endStatus;
        channels.finish(endStatus);
      }
      return result;
    }

    options.onProcessStarted?.();
    if (resizeNotice !== null) notice(resizeNotice);
    // A size that arrived while the process was starting.
    if (spec.tty && latestSize && latestSize !== sizeAtStart) process.resize(latestSize).catch(logRejection('resizing the terminal failed'));
    if (process.stdin) {
      process.stdin.on('error', (err) => log.warn({ err: err.message }, 'writing to the process stdin failed'));
      for (const chunk of pendingStdin) writeStdin(chunk);
      if (stdinEnded) process.stdin.end();
    }
    pendingStdin = [];
    if (pendingFull) {
      pendingFull = false;
      updateInputFlow(true);
    }

    const pumps = [pump(process.stdout, 'stdout'), pump(process.stderr, 'stderr')];
    result.exit = await process.exit;
    await Promise.all(pumps);
    if (!clientGone) {
      result.status = endStatus ?? statusForExit(result.exit);
      channels.finish(result.status);
    }
    return result;

    function pump(stream: Readable | null, name: OutputStreamName): Promise<void> {
      if (!stream) return Promise.resolve();
      return new Promise((resolve) => {
        stream.on('data', (chunk: Buffer) => {
          result.bytesOut += chunk.length;
          progress.bytesOut += chunk.length;
          progress.lastActivity = Date.now();
          if (!channels.write(name, chunk)) {
            stream.pause();
            channels.onceDrained(() => stream.resume());
          }
        });
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', (err) => {
          log.warn({ err: err.message, stream: name }, 'reading process output failed');
          resolve();
        });
      });
    }
  }
}
