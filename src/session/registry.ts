// Every live session of this agent: what runs where for whom, so limits can be enforced and the
// agent knows what to end when it shuts down.
import type { ExecMode } from '../target/modes.js';

export interface SessionEntry {
  id: string;
  user: string;
  /** The policy rule that granted it; limits count per user and rule. */
  rule: string;
  mode: ExecMode;
  startedAt: number;
  /** Ends the session's process; resolves when it is gone. */
  end(reason: string): Promise<void>;
}

export class SessionRegistry {
  readonly #sessions = new Map<string, SessionEntry>();

  add(entry: SessionEntry): () => void {
    this.#sessions.set(entry.id, entry);
    return () => {
      this.#sessions.delete(entry.id);
    };
  }

  countFor(user: string, rule: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.user === user && session.rule === rule) count++;
    return count;
  }

  get size(): number {
    return this.#sessions.size;
  }

  list(): SessionEntry[] {
    return [...this.#sessions.values()];
  }
}
