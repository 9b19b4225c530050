// The client side of one channel.k8s.io exec WebSocket (what `execlet exec` speaks): opens it
// offering v5 then v4, streams stdin to channel 0 with backpressure and the v5 close signal at EOF,
// sends terminal sizes on channel 4, writes channels 1 and 2 to stdout and stderr with
// backpressure, and turns the final Status on channel 3 into the remote command's exit code.
// It knows nothing about kubeconfigs or the process it runs in: the command wires those up.
import type { Readable, Writable } from 'node:stream';
import WebSocket from 'ws';
import { decodeClientMessage } from '../protocol/framing.js';
import type { TerminalSize } from '../protocol/resize.js';
import { CHANNEL, protocolTraits, type ProtocolTraits, type Subprotocol } from '../protocol/subprotocols.js';
import { refusalMessage, type ClientTls } from './client-config.js';

/** What execlet exec offers, in order of preference (kubectl 1.30+ offers the same two first). */
export const CLIENT_SUBPROTOCOLS: readonly Subprotocol[] = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

/** Stdin is paused while more than this is queued towards the agent. */
export const STDIN_HIGH_WATER_MARK = 1024 * 1024;
/** Stdin is sent in messages of at most this size, as kubectl does. */
const STDIN_MESSAGE_BYTES = 32 * 1024;
/** After the Status arrives, how long to wait for the agent's close before reporting anyway. */
const CLOSE_AFTER_STATUS_MS = 2_000;
const HANDSHAKE_TIMEOUT_MS = 30_000;

const STDIN_CLOSE_SIGNAL = Buffer.from([CHANNEL.close, CHANNEL.stdin]);

export type ExecOutcome =
  /** The remote command ran and exited with this code (0–255). */
  | { kind: 'exited'; code: number }
  /** The agent refused or failed the session, or the connection failed: nothing says how the command ended. */
  | { kind: 'failed'; message: string }
  /** This side ended the session (a signal, stdout closed); `exitCode` is what to exit with. */
  | { kind: 'aborted'; reason: string; exitCode: number };

/** Where the terminal size comes from with a TTY, and when it changes. */
export interface TerminalSizeSource {
  size(): TerminalSize | undefined;
  /** Calls `listener` on every change; returns the unsubscribe function. */
  onResize(listener: () => void): () => void;
}

export interface ExecStreamOptions {
  /** `wss://…/exec?…` */
  url: string;
  headers: Record<string, string>;
  tls: ClientTls;
  protocols?: readonly string[];
  /** Read and sent on channel 0 when given (-i); never touched otherwise. */
  stdin: Readable | null;
  stdout: Writable;
  stderr: Writable;
  /** With a TTY: the first size is sent as soon as the stream opens, then one per change. */
  terminal?: TerminalSizeSource;
  /** Called once the agent accepted the stream (raw mode goes on here, not before). */
  onOpen?(protocol: string): void;
}

export interface ExecStream {
  /** Settles once: the remote exit, a failure, or an abort. */
  readonly outcome: Promise<ExecOutcome>;
  /** Resolves when the connection is closed (or never was opened). */
  readonly closed: Promise<void>;
  /** Ends the session from this side: closes the WebSocket, which makes the agent end the process. */
  abort(reason: string, exitCode: number): void;
}

/**
 * Maps the Status of channel 3 to an outcome: Success → exit 0; a NonZeroExitCode Failure → its
 * ExitCode cause (an integer 1–255); any other Failure → a failure with its message.
 */
export function outcomeOfStatus(status: unknown): ExecOutcome {
  if (typeof status !== 'object' || status === null || !('status' in status)) {
    return { kind: 'failed', message: `the agent sent an invalid exit status: ${JSON.stringify(status)}` };
  }
  const s = status as { status?: unknown; reason?: unknown; message?: unknown; details?: { causes?: unknown } };
  if (s.status === 'Success') return { kind: 'exited', code: 0 };
  const message = typeof s.message === 'string' && s.message !== '' ? s.message : undefined;
  if (s.reason === 'NonZeroExitCode') {
    const causes = Array.isArray(s.details?.causes) ? (s.details.causes as unknown[]) : [];
    const cause = causes.find((c): c is { reason: string; message: string } => typeof c === 'object' && c !== null && (c as { reason?: unknown }).reason === 'ExitCode');
    const code = cause && /^\d{1,3}$/.test(cause.message) ? Number(cause.message) : NaN;
    if (Number.isInteger(code) && code >= 1 && code <= 255) return { kind: 'exited', code };
    return { kind: 'failed', message: `the agent reported a non-zero exit without a valid exit code (${message ?? 'no message'})` };
  }
  if (s.status === 'Failure') {
    const reason = typeof s.reason === 'string' && s.reason !== '' ? s.reason : undefined;
    return { kind: 'failed', message: message ?? (reason ? `the session failed (${reason})` : 'the session failed without a message') };
  }
  return { kind: 'failed', message: `the agent sent an exit status that is neither Success nor Failure: ${JSON.stringify(status)}` };
}

/** Resolves once everything written to `target` so far has been handed on (or it failed). */
function flushed(target: Writable): Promise<void> {
  if (target.destroyed || !target.writable || target.writableLength === 0) return Promise.resolve();
  return new Promise((resolve) => target.write(Buffer.alloc(0), () => resolve()));
}

/** One binary channel message: the channel byte, then the payload. */
export function channelMessage(channel: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), payload]);
}

/** The resize message for `size`, as kubectl sends it. */
export function resizeMessage(size: TerminalSize): Buffer {
  return channelMessage(CHANNEL.resize, Buffer.from(JSON.stringify({ Width: size.width, Height: size.height })));
}

/** Opens the stream and runs it until the remote command ends, the agent refuses, or abort(). */
export function openExecStream(options: ExecStreamOptions): ExecStream {
  const ws = new WebSocket(options.url, [...(options.protocols ?? CLIENT_SUBPROTOCOLS)], {
    headers: options.headers,
    perMessageDeflate: false,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    ...options.tls,
  });

  let settle!: (outcome: ExecOutcome) => void;
  const outcome = new Promise<ExecOutcome>((resolve) => (settle = resolve));
  let settled = false;
  /** Undone as soon as the outcome is known: stdin, resizes, timers. */
  const cleanups: Array<() => void> = [];
  /** Undone once the output is flushed: the stdout/stderr error listeners. */
  const outputCleanups: Array<() => void> = [];
  const finish = (result: ExecOutcome) => {
    if (settled) return;
    settled = true;
    for (const cleanup of cleanups.splice(0)) cleanup();
    // What was received is written out before the outcome is reported (unless this side gave up).
    const flushedOutputs = result.kind === 'aborted' ? Promise.resolve() : Promise.all([flushed(options.stdout), flushed(options.stderr)]);
    void flushedOutputs.then(() => {
      for (const cleanup of outputCleanups.splice(0)) cleanup();
      settle(result);
    });
  };

  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));

  let opened = false;
  let traits: ProtocolTraits | undefined;
  const statusParts: Buffer[] = [];
  let statusTimer: NodeJS.Timeout | undefined;
  cleanups.push(() => clearTimeout(statusTimer));

  const statusOutcome = (): ExecOutcome => {
    const text = Buffer.concat(statusParts).toString('utf8');
    try {
      return outcomeOfStatus(JSON.parse(text));
    } catch (err) {
      return { kind: 'failed', message: `the agent sent an exit status that is not JSON (${err instanceof Error ? err.message : String(err)}): ${text.slice(0, 200)}` };
    }
  };

  const protocolError = (message: string) => {
    finish({ kind: 'failed', message: `protocol error: ${message}` });
    ws.close(1002, message.slice(0, 120));
  };

  // Output backpressure: while stdout or stderr is full, the socket is not read. (Frames ws had
  // already received still come meanwhile: a writer waits for one 'drain', however many there are.)
  const blockedWriters = new Set<Writable>();
  const deliver = (target: Writable, payload: Buffer) => {
    if (payload.length === 0 || settled) return;
    if (!target.write(payload) && !blockedWriters.has(target)) {
      if (blockedWriters.size === 0) ws.pause();
      blockedWriters.add(target);
      target.once('drain', () => {
        blockedWriters.delete(target);
        if (blockedWriters.size === 0) ws.resume();
      });
    }
  };
  for (const [target, name] of [
    [options.stdout, 'stdout'],
    [options.stderr, 'stderr'],
  ] as const) {
    const onError = (err: NodeJS.ErrnoException) => {
      // A closed pipe (`| head`) ends the session the way a shell would: quietly, as SIGPIPE.
      if (err.code === 'EPIPE') abort(`${name} was closed`, 141);
      else failAndClose(`writing ${name} failed: ${err.message}`);
    };
    target.on('error', onError);
    outputCleanups.push(() => target.off('error', onError));
  }

  ws.on('unexpected-response', (_req, res) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => {
      finish({ kind: 'failed', message: refusalMessage(res.statusCode, Buffer.concat(chunks).toString('utf8')) });
      ws.terminate();
    });
    res.on('error', (err) => {
      finish({ kind: 'failed', message: `the agent refused the stream (HTTP ${res.statusCode}) and its answer could not be read: ${err.message}` });
      ws.terminate();
    });
  });

  ws.on('open', () => {
    opened = true;
    if (settled) {
      ws.close(1000);
      return;
    }
    traits = protocolTraits(ws.protocol as Subprotocol);
    if (traits.base64) {
      protocolError(`the agent chose ${ws.protocol}, which execlet exec did not offer`);
      return;
    }
    try {
      options.onOpen?.(ws.protocol);
    } catch (err) {
      failAndClose(`preparing the terminal failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (options.terminal) startResizing(options.terminal);
    if (options.stdin) startStdin(options.stdin, traits);
  });

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (settled || !traits) return;
    const message = decodeClientMessage(data, isBinary, traits);
    switch (message.kind) {
      case 'empty':
      case 'close': // servers do not half-close; nothing to do
        return;
      case 'invalid':
        protocolError(message.reason);
        return;
      case 'data':
        if (message.channel === CHANNEL.stdout) deliver(options.stdout, message.payload);
        else if (message.channel === CHANNEL.stderr) deliver(options.stderr, message.payload);
        else if (message.channel === CHANNEL.error && message.payload.length > 0) {
          statusParts.push(Buffer.from(message.payload));
          // The agent closes right after the Status; do not hang if it does not.
          clearTimeout(statusTimer);
          statusTimer = setTimeout(() => {
            finish(statusOutcome());
            ws.terminate();
          }, CLOSE_AFTER_STATUS_MS);
        }
        return;
    }
  });

  ws.on('error', (err: Error) => {
    finish({
      kind: 'failed',
      message: opened ? `connection to the agent failed: ${err.message}` : `cannot connect to ${new URL(options.url).host}: ${err.message}`,
    });
  });

  ws.on('close', (code: number, reason: Buffer) => {
    markClosed();
    if (statusParts.length > 0) {
      finish(statusOutcome());
      return;
    }
    const why = reason.length > 0 ? `: ${reason.toString('utf8')}` : '';
    finish({ kind: 'failed', message: `the agent closed the stream without an exit status (close code ${code}${why})` });
  });

  function startResizing(terminal: TerminalSizeSource): void {
    const sendSize = () => {
      const size = terminal.size();
      if (size && size.width > 0 && size.height > 0 && ws.readyState === WebSocket.OPEN) ws.send(resizeMessage(size));
    };
    sendSize();
    cleanups.push(terminal.onResize(sendSize));
  }

  function startStdin(stdin: Readable, negotiated: ProtocolTraits): void {
    let pausedForSocket = false;
    const afterSend = () => {
      if (pausedForSocket && ws.bufferedAmount <= STDIN_HIGH_WATER_MARK) {
        pausedForSocket = false;
        if (!settled) stdin.resume();
      }
    };
    const onData = (chunk: Buffer | string) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      for (let offset = 0; offset < bytes.length; offset += STDIN_MESSAGE_BYTES) {
        ws.send(channelMessage(CHANNEL.stdin, bytes.subarray(offset, offset + STDIN_MESSAGE_BYTES)), afterSend);
      }
      if (ws.bufferedAmount > STDIN_HIGH_WATER_MARK && !pausedForSocket) {
        pausedForSocket = true;
        stdin.pause();
      }
    };
    const onEnd = () => {
      // v5 half-closes stdin; v4 has no way to say so, so the socket simply stays open.
      if (negotiated.closeSignal && ws.readyState === WebSocket.OPEN) ws.send(STDIN_CLOSE_SIGNAL);
    };
    const onError = (err: Error) => failAndClose(`reading stdin failed: ${err.message}`);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.on('error', onError);
    cleanups.push(() => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
    });
  }

  function closeSocket(): void {
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
  }

  function abort(reason: string, exitCode: number): void {
    if (settled) return;
    finish({ kind: 'aborted', reason, exitCode });
    closeSocket();
  }

  /** A local failure (stdin, stdout, terminal): reported like an agent-side one. */
  function failAndClose(message: string): void {
    if (settled) return;
    finish({ kind: 'failed', message });
    closeSocket();
  }

  return { outcome, closed, abort };
}
