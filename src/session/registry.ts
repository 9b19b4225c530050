// Every live session of this agent — who, where, since when, how much, last activity — with the
// admission limits (per node, per user, starts per user per minute), and a way to end them all.
import type { SessionStop } from './exec-session.js';

/** Counters a running session keeps up to date. */
export interface SessionProgress {
  bytesIn: number;
  bytesOut: number;
  lastActivity: number;
}

export interface SessionEntry {
  id: string;
  user: string;
  /** The policy rule that granted it, by name (`rules[N]` when unnamed); the current one after a reload. */
  rule: string;
  /** What its rule's maxSessions counts against (Grant.budget): per user and budget; the current one after a reload. */
  budget: string;
  /** How it runs: exec, nsenter, toolbox or node (target/modes.ts). */
  mode: string;
  /** namespace/pod/container, for operators listing sessions. */
  target: string;
  startedAt: number;
  progress: SessionProgress;
  /** Asks the session to end (its process is killed, the client gets a Status saying why). */
  end(stop: SessionStop): void;
  /** What grants this session now (checked after a reload of the policy or the token file); null when nothing does. */
  currentGrant(): SessionGrant | null;
}

/** The rule a session runs under, as far as the registry counts it (a Grant). */
export interface SessionGrant {
  rule: string;
  budget: string;
}

export interface SessionLimits {
  maxPerNode: number;
  maxPerUser: number;
  ratePerUserPerMinute: number;
}

export class SessionLimitExceeded extends Error {
  constructor(
    message: string,
    readonly reason: 'limit' | 'rate',
  ) {
    super(message);
    this.name = 'SessionLimitExceeded';
  }
}

const MINUTE_MS = 60_000;

export class SessionRegistry {
  readonly #sessions = new Map<string, SessionEntry>();
  /** Admission times per user within the last minute. */
  readonly #recentStarts = new Map<string, number[]>();
  #emptyWaiters: Array<() => void> = [];

  constructor(
    private readonly limits: SessionLimits = { maxPerNode: Infinity, maxPerUser: Infinity, ratePerUserPerMinute: Infinity },
    private readonly now: () => number = Date.now,
  ) {}

  /** Checks the limits for a new session of `user` and counts it towards the rate; throws when over. */
  admit(user: string): void {
    this.checkCapacity(user);
    const now = this.now();
    const recent = (this.#recentStarts.get(user) ?? []).filter((t) => now - t < MINUTE_MS);
    if (recent.length >= this.limits.ratePerUserPerMinute) {
      this.#recentStarts.set(user, recent);
      throw new SessionLimitExceeded(`user "${user}" started ${this.limits.ratePerUserPerMinute} sessions in the last minute, the limit; slow down`, 'rate');
    }
    recent.push(now);
    this.#recentStarts.set(user, recent);
    if (this.#recentStarts.size > 10_000) this.#sweepRates(now);
  }

  /**
   * Checks only the number of live sessions, on the node and of `user` (not the rate): for a session
   * admitted before, when its stream URL is opened.
   */
  checkCapacity(user: string): void {
    if (this.#sessions.size >= this.limits.maxPerNode) {
      throw new SessionLimitExceeded(`this agent already runs ${this.limits.maxPerNode} sessions, its limit; try again later`, 'limit');
    }
    let userSessions = 0;
    for (const session of this.#sessions.values()) if (session.user === user) userSessions++;
    if (userSessions >= this.limits.maxPerUser) {
      throw new SessionLimitExceeded(`user "${user}" already has ${this.limits.maxPerUser} sessions on this agent, the limit`, 'limit');
    }
  }

  readonly #endedListeners: Array<(entry: SessionEntry) => void> = [];

  /** Calls `listener` with every session that leaves the registry (it ended). */
  onEnded(listener: (entry: SessionEntry) => void): void {
    this.#endedListeners.push(listener);
  }

  add(entry: SessionEntry): () => void {
    this.#sessions.set(entry.id, entry);
    return () => {
      if (!this.#sessions.delete(entry.id)) return;
      for (const listener of this.#endedListeners) {
        try {
          listener(entry);
        } catch {
          // A listener's failure must not keep the session registered or its waiters waiting.
        }
      }
      if (this.#sessions.size === 0) {
        const waiters = this.#emptyWaiters;
        this.#emptyWaiters = [];
        for (const waiter of waiters) waiter();
      }
    };
  }

  has(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** Live sessions of `user` granted under `budget` (Grant.budget). */
  countFor(user: string, budget: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.user === user && session.budget === budget) count++;
    return count;
  }

  get size(): number {
    return this.#sessions.size;
  }

  list(): SessionEntry[] {
    return [...this.#sessions.values()];
  }

  /** Asks every session to end; resolves true once none is left, false after `timeoutMs`. */
  async endAll(message: string, timeoutMs: number): Promise<boolean> {
    for (const session of this.#sessions.values()) session.end({ outcome: 'shutdown', message });
    if (this.#sessions.size === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.#sessions.size === 0), timeoutMs);
      this.#emptyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /**
   * Ends every session the current policy (or token file) no longer allows; returns how many. The
   * others count from now on against the rule that allows them now: a rule that changed is another
   * budget, and the sessions it already allows are in it.
   */
  revokeDisallowed(message: string): number {
    let revoked = 0;
    for (const session of this.#sessions.values()) {
      const grant = session.currentGrant();
      if (grant) {
        session.rule = grant.rule;
        session.budget = grant.budget;
        continue;
      }
      session.end({ outcome: 'killed', message });
      revoked++;
    }
    return revoked;
  }

  #sweepRates(now: number): void {
    for (const [user, times] of this.#recentStarts) if (times.every((t) => now - t >= MINUTE_MS)) this.#recentStarts.delete(user);
  }
}
