// One long-lived subscription to the engine's event stream for the whole agent, reconnecting with
// back-off while the agent runs. Its consumers (exit codes without an inspect, the freshness of the
// container list) listen to its events and to its state: while it is down, events may go by
// unheard, so a consumer must stop vouching for what it learns from them until it is back.
import type { EngineEvent } from './engine-client.js';

/** Opens the event stream; resolves once the engine answered, with a handle that ends it. */
export type OpenEventStream = (onEvent: (event: EngineEvent) => void, onEnd: (err: Error) => void) => Promise<{ close(): void }>;

export interface EventStreamListener {
  event?(event: EngineEvent): void;
  /** Connected, or no longer: dropped (`err` says why) or closed by close() (no `err`). */
  stateChange?(connected: boolean, err?: Error): void;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

export class EngineEventStream {
  /** The open event stream; set exactly while connected. */
  #stream: { close(): void } | null = null;
  #closed = false;
  #connecting = false;
  #retryMs = RETRY_MIN_MS;
  #retryTimer: NodeJS.Timeout | null = null;
  readonly #listeners: EventStreamListener[] = [];

  constructor(private readonly open: OpenEventStream) {}

  listen(listener: EventStreamListener): void {
    this.#listeners.push(listener);
  }

  get connected(): boolean {
    return this.#stream !== null;
  }

  /** Connects now and keeps reconnecting (with back-off) until close(). */
  start(): void {
    if (this.#closed || this.#connecting || this.connected) return;
    this.#connecting = true;
    let ended = false;
    this.open(
      (event) => {
        for (const listener of this.#listeners) listener.event?.(event);
      },
      (err) => {
        ended = true;
        this.#onEnd(err);
      },
    ).then(
      (stream) => {
        this.#connecting = false;
        // Closed meanwhile, or a stream that ended before it was handed over (its retry is scheduled).
        if (this.#closed || ended) {
          stream.close();
          return;
        }
        this.#stream = stream;
        this.#retryMs = RETRY_MIN_MS;
        this.#notifyState(true);
      },
      () => {
        this.#connecting = false;
        this.#scheduleRetry();
      },
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const wasConnected = this.connected;
    this.#stream?.close();
    this.#stream = null;
    if (wasConnected) this.#notifyState(false);
  }

  #onEnd(err: Error): void {
    if (this.#closed) return;
    const wasConnected = this.connected;
    this.#stream = null;
    if (wasConnected) this.#notifyState(false, err);
    this.#scheduleRetry();
  }

  #notifyState(connected: boolean, err?: Error): void {
    for (const listener of this.#listeners) listener.stateChange?.(connected, err);
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
