// Checks a request's bearer token against the agent's token in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthResult = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'invalid' };

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

export class BearerTokenAuthenticator {
  readonly #expected: Buffer;

  constructor(token: string) {
    this.#expected = digest(token);
  }

  /** `header` is the raw Authorization header value. The token itself never leaves this function. */
  check(header: string | undefined): AuthResult {
    if (header === undefined || header.length === 0) return { ok: false, reason: 'missing' };
    const match = /^Bearer +(\S+)\s*$/i.exec(header);
    if (!match) return { ok: false, reason: 'malformed' };
    // Comparing fixed-length digests keeps the comparison time independent of the token's length.
    return timingSafeEqual(digest(match[1]!), this.#expected) ? { ok: true } : { ok: false, reason: 'invalid' };
  }
}
