// Learns exec exit codes from the engine's `exec_die` events, so a finished exec costs no inspect
// round trip. One long-lived event stream for the whole agent; whenever it cannot vouch for an exec
// (not connected when the exec started, the stream dropped meanwhile, the event is late), the
// caller is told "unknown" and inspects the exec as before.
import type { EngineEvent } from './engine-client.js';

/** Opens the event stream; resolves once the engine answered, with a handle that ends it. */
export type OpenEventStream = (onEvent: (event: EngineEvent) => void, onEnd: (err: Error) => void) => Promise<{ close(): void }>;

export interface ExitExpectation {
  /** The exit code from the event, waiting at most `graceMs` for it; null when unknown. */
  exitCode(graceMs: number): Promise<number | null>;
  /** No longer interested (the exec never started, or the caller learned its exit otherwise). */
  cancel(): void;
}

interface Waiter {
  code: number | null;
  lost: boolean;
  deliver: ((code: number | null) => void) | null;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

export const EXEC_DIE_FILTERS = { type: ['container'], event: ['exec_die'] };

export class ExecExitEvents {
  /** The open event stream; set exactly while connected. */
  #stream: { close(): void } | null = null;
  #closed = false;
  #connecting = false;
  #retryMs = RETRY_MIN_MS;
  #retryTimer: NodeJS.Timeout | null = null;
  readonly #waiters = new Map<string, Waiter>();

  constructor(
    private readonly open: OpenEventStream,
    private readonly onStateChange: (connected: boolean, err?: Error) => void = () => undefined,
  ) {}

  /** Connects now and keeps reconnecting (with backoff) until close(). */
  start(): void {
    if (this.#closed || this.#connecting || this.connected) return;
    this.#connecting = true;
    this.open(
      (event) => this.#onEvent(event),
      (err) => this.#onEnd(err),
    ).then(
      (stream) => {
        this.#connecting = false;
        if (this.#closed) {
          stream.close();
          return;
        }
        this.#stream = stream;
        this.#retryMs = RETRY_MIN_MS;
        this.onStateChange(true);
      },
      () => {
        this.#connecting = false;
        this.#scheduleRetry();
      },
    );
  }

  get connected(): boolean {
    return this.#stream !== null;
  }

  /** Call after the exec is created and before it starts; null when the stream cannot vouch for it. */
  expect(execId: string): ExitExpectation | null {
    if (!this.connected) return null;
    const waiter: Waiter = { code: null, lost: false, deliver: null };
    this.#waiters.set(execId, waiter);
    return {
      exitCode: (graceMs) => {
        if (waiter.code !== null || waiter.lost) {
          this.#waiters.delete(execId);
          return Promise.resolve(waiter.code);
        }
        return new Promise((resolve) => {
          const timer = setTimeout(() => finish(null), graceMs);
          const finish = (code: number | null) => {
            clearTimeout(timer);
            waiter.deliver = null;
            this.#waiters.delete(execId);
            resolve(code);
          };
          waiter.deliver = finish;
        });
      },
      cancel: () => {
        waiter.deliver?.(null);
        this.#waiters.delete(execId);
      },
    };
  }

  close(): void {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#stream?.close();
    this.#stream = null;
    this.#loseAll();
  }

  #onEvent(event: EngineEvent): void {
    if (event.Action !== 'exec_die') return;
    const execId = event.Actor?.Attributes?.execID;
    const exitCode = Number(event.Actor?.Attributes?.exitCode);
    if (!execId || !Number.isInteger(exitCode)) return;
    const waiter = this.#waiters.get(execId);
    if (!waiter) return;
    waiter.code = exitCode;
    waiter.deliver?.(exitCode);
  }

  #onEnd(err: Error): void {
    const wasConnected = this.connected;
    this.#stream = null;
    this.#loseAll();
    if (this.#closed) return;
    if (wasConnected) this.onStateChange(false, err);
    this.#scheduleRetry();
  }

  /** Events may have been missed: every exec waiting now is told "unknown". */
  #loseAll(): void {
    for (const waiter of this.#waiters.values()) {
      waiter.lost = true;
      waiter.deliver?.(null);
    }
    this.#waiters.clear();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    const delay = this.#retryMs;
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.start();
    }, delay);
    this.#retryTimer.unref();
  }
}
