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
  /** `owner`: the owner's share is used up; `all`: the cache's limit is reached. */
  constructor(
    readonly limit: number,
    readonly scope: 'owner' | 'all' = 'all',
  ) {
    super(
      scope === 'owner'
        ? `too many outstanding stream tokens for one owner: its share of ${limit} unexpired tokens is used up`
        : `too many outstanding stream tokens: the limit of ${limit} unexpired tokens is reached`,
    );
    this.name = 'TooManyStreamTokens';
  }
}

interface StreamTokenEntry<T> {
  value: T;
  expiresAt: number;
  /** Whose token it is (a user), for its share of the limit. */
  owner: string | undefined;
}

function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class StreamTokenCache<T> {
  readonly #ttlMs: number;
  readonly #maxOutstanding: number;
  readonly #maxPerOwner: number;
  readonly #clock: Clock;
  /** SHA-256 hex of the token → entry. Never holds the token itself. */
  readonly #entries = new Map<string, StreamTokenEntry<T>>();

  /**
   * `maxPerOwner`: unexpired tokens one owner may hold at most (default: no share), so that one
   * user cannot take every token there is and lock the others out of opening streams.
   */
  constructor(options: { ttlMs?: number; maxOutstanding?: number; maxPerOwner?: number; clock?: Clock } = {}) {
    const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    const maxOutstanding = options.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING;
    const maxPerOwner = options.maxPerOwner ?? Infinity;
    if (maxPerOwner !== Infinity && (!Number.isInteger(maxPerOwner) || maxPerOwner < 1)) {
      throw new RangeError(`stream token maxPerOwner must be a positive integer, got ${maxPerOwner}`);
    }
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`stream token ttlMs must be a positive number of milliseconds, got ${ttlMs}`);
    if (!Number.isInteger(maxOutstanding) || maxOutstanding < 1) {
      throw new RangeError(`stream token maxOutstanding must be a positive integer, got ${maxOutstanding}`);
    }
    this.#ttlMs = ttlMs;
    this.#maxOutstanding = maxOutstanding;
    this.#maxPerOwner = maxPerOwner;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Stores `value` under a fresh random token and returns the token (32 random bytes, base64url
   * without padding: 43 characters of [A-Za-z0-9_-]) and its expiry time in ms on the cache's clock.
   * Expired entries are swept first; throws TooManyStreamTokens when `owner` already holds its
   * share (`maxPerOwner`) of unexpired tokens, or when `maxOutstanding` are held in all.
   */
  issue(value: T, owner?: string): { token: string; expiresAt: number } {
    const now = this.#clock.now();
    const owned = this.#sweep(now, owner);
    if (owned >= this.#maxPerOwner) throw new TooManyStreamTokens(this.#maxPerOwner, 'owner');
    if (this.#entries.size >= this.#maxOutstanding) throw new TooManyStreamTokens(this.#maxOutstanding);
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const expiresAt = now + this.#ttlMs;
    this.#entries.set(tokenDigest(token), { value, expiresAt, owner });
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
   * Drops every expired entry, and returns how many of the rest `owner` holds (0 without one). The
   * whole map is scanned (it is at most `maxOutstanding` long) rather than stopping at the first
   * live entry, so a wall clock that steps backwards cannot strand entries.
   */
  #sweep(now: number, owner?: string): number {
    let owned = 0;
    for (const [key, entry] of this.#entries) {
      if (now >= entry.expiresAt) this.#entries.delete(key);
      else if (owner !== undefined && entry.owner === owner) owned++;
    }
    return owned;
  }
}
