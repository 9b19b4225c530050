// Single-use, short-lived stream tokens: the CRI `GetExec` pattern, where an authorized request is
// answered with a one-time URL and the stream is later opened by presenting the token in that URL.
// Entries are keyed by the token's SHA-256 so the map (in a heap dump or a debug print) holds no
// usable tokens; a token is only ever compared through that map lookup.
import { createHash, randomBytes } from 'node:crypto';

/** Milliseconds since some fixed point; injectable so tests can move time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

const DEFAULT_TTL_MS = 60_000;
const DEFAULT_MAX_OUTSTANDING = 1000;
/** 32 bytes = 256 bits of randomness, comfortably above the 128-bit floor. */
const TOKEN_BYTES = 32;

export class TooManyStreamTokens extends Error {
  constructor(readonly limit: number) {
    super(`too many outstanding stream tokens: the limit of ${limit} unexpired tokens is reached`);
    this.name = 'TooManyStreamTokens';
  }
}

interface StreamTokenEntry<T> {
  value: T;
  expiresAt: number;
}

function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class StreamTokenCache<T> {
  readonly #ttlMs: number;
  readonly #maxOutstanding: number;
  readonly #clock: Clock;
  /** SHA-256 hex of the token → entry. Never holds the token itself. */
  readonly #entries = new Map<string, StreamTokenEntry<T>>();

  constructor(options: { ttlMs?: number; maxOutstanding?: number; clock?: Clock } = {}) {
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    const maxOutstanding = options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`stream token ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
    if (!Number.isInteger(maxOutstanding) || maxOutstanding < 1) {
      throw new RangeError(`stream token maxOutstanding must be a positive integer, got ${maxOutstanding}`);
    }
    this.#ttlMs = ttlMs;
    this.#maxOutstanding = maxOutstanding;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Stores `value` under a fresh random token and returns the token (32 random bytes, base64url
   * without padding: 43 characters of [A-Za-z0-9_-]) and its expiry time in ms on the cache's clock.
   * Expired entries are swept first; throws TooManyStreamTokens when `maxOutstanding` unexpired
   * tokens are already held.
   */
  issue(value: T): { token: string; expiresAt: number } {
    const now = this.#clock.now();
    this.#sweep(now);
    if (this.#entries.size >= this.#maxOutstanding) throw new TooManyStreamTokens(this.#maxOutstanding);
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    this.#entries.set(tokenDigest(token), { value, expiresAt });
    return { token, expiresAt };
  }

  /**
   * Single use: the first lookup of a token removes its entry, even when it has expired.
   * Returns null when the token is unknown, already taken, or expired (expired means now >= expiresAt).
   */
  take(token: string): T | null {
    if (typeof token !== 'string' || token.length === 0) return null;
    const key = tokenDigest(token);
    const entry = this.#entries.get(key);
    if (entry === undefined) return null;
    this.#entries.delete(key);
    return this.#clock.now() >= entry.expiresAt ? null : entry.value;
  }

  /** Outstanding tokens that have not expired. */
  get size(): number {
    const now = this.#clock.now();
    let count = 0;
    for (const entry of this.#entries.values()) if (now < entry.expiresAt) count++;
    return count;
  }

  /**
   * Drops every expired entry. The whole map is scanned (it is at most `maxOutstanding` long) rather
   * than stopping at the first live entry, so a wall clock that steps backwards cannot strand entries.
   */
  #sweep(now: number): void {
    for (const [key, entry] of this.#entries) if (now >= entry.expiresAt) this.#entries.delete(key);
  }
}
