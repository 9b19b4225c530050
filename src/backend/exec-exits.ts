// Learns exec exit codes from the engine's `exec_die` events, so a finished exec costs no inspect
// round trip. Listens to the agent's one event stream; whenever it cannot vouch for an exec (the
// stream was not connected when the exec started, dropped meanwhile, or the event is late), the
// caller is told "unknown" and inspects the exec as before.
import type { EngineEvent } from './engine-client.js';
import type { EngineEventStream } from './engine-events.js';

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

/** The event this module needs from the stream (a `container` event). */
export const EXEC_EXIT_ACTION = 'exec_die';

export class ExecExitEvents {
  readonly #waiters = new Map<string, Waiter>();

  constructor(private readonly stream: EngineEventStream) {
    stream.listen({
      event: (event) => this.#onEvent(event),
      // Events may have been missed: every exec waiting now is told "unknown".
      stateChange: (connected) => {
        if (!connected) this.#loseAll();
      },
    });
  }

  /** Call after the exec is created and before it starts; null when the stream cannot vouch for it. */
  expect(execId: string): ExitExpectation | null {
    if (!this.stream.connected) return null;
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

  #onEvent(event: EngineEvent): void {
    if (event.Action !== EXEC_EXIT_ACTION) return;
    const execId = event.Actor?.Attributes?.execID;
    const exitCode = Number(event.Actor?.Attributes?.exitCode);
    if (!execId || !Number.isInteger(exitCode)) return;
    const waiter = this.#waiters.get(execId);
    if (!waiter) return;
    waiter.code = exitCode;
    waiter.deliver?.(exitCode);
  }

  #loseAll(): void {
    for (const waiter of this.#waiters.values()) {
      waiter.lost = true;
      waiter.deliver?.(null);
    }
    this.#waiters.clear();
  }
}
