// Unit tests for single-use stream tokens (src/auth/stream-tokens.ts): single use, expiry on a fake
// clock, the outstanding-token limit and each owner's share of it, their release on expiry, unknown
// tokens, and the token format.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';

import { StreamTokenCache, TooManyStreamTokens, systemClock, type Clock } from '../../src/auth/stream-tokens.js';

class FakeClock implements Clock {
  constructor(public current = 1_000_000) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

describe('StreamTokenCache', () => {
  it('a token can be taken exactly once', () => {
    const cache = new StreamTokenCache<{ pid: number }>();
    const { token } = cache.issue({ pid: 42 });
    assert.deepEqual(cache.take(token), { pid: 42 });
    assert.equal(cache.take(token), null);
    assert.equal(cache.size, 0);
  });

  it('expiresAt is issue time + ttl, and a token is expired exactly at the ttl', () => {
    const clock = new FakeClock();
    const cache = new StreamTokenCache<string>({ ttlMs: 5_000, clock });
    const first = cache.issue('a');
    const second = cache.issue('b');
    assert.equal(first.expiresAt, 1_000_000 + 5_000);

    clock.advance(4_999);
    assert.equal(cache.take(first.token), 'a', 'still valid 1 ms before the ttl');

    clock.advance(1);
    assert.equal(cache.size, 0, 'not counted once expired');
    assert.equal(cache.take(second.token), null, 'expired at exactly the ttl');
  });

  it('taking an expired token removes it: it stays unusable if the clock goes back', () => {
    const clock = new FakeClock();
    const cache = new StreamTokenCache<string>({ ttlMs: 1_000, clock });
    const { token } = cache.issue('a');
    clock.advance(2_000);
    assert.equal(cache.take(token), null);
    clock.advance(-2_000);
    assert.equal(cache.take(token), null);
  });

  it('the default ttl is 60 s', () => {
    const clock = new FakeClock();
    const cache = new StreamTokenCache<number>({ clock });
    const { token, expiresAt } = cache.issue(1);
    assert.equal(expiresAt - clock.now(), 60_000);
    clock.advance(59_999);
    assert.equal(cache.take(token), 1);
  });

  it('the 1001st outstanding token is refused by default', () => {
    const cache = new StreamTokenCache<number>({ clock: new FakeClock() });
    for (let i = 0; i < 1000; i++) cache.issue(i);
    assert.equal(cache.size, 1000);
    assert.throws(() => cache.issue(1000), (err: unknown) => {
      assert.ok(err instanceof TooManyStreamTokens);
      assert.match(err.message, /1000/);
      return true;
    });
    assert.equal(cache.size, 1000);
  });

  it('taking a token frees its slot', () => {
    const cache = new StreamTokenCache<number>({ maxOutstanding: 2, clock: new FakeClock() });
    const { token } = cache.issue(1);
    cache.issue(2);
    assert.throws(() => cache.issue(3), TooManyStreamTokens);
    cache.take(token);
    assert.doesNotThrow(() => cache.issue(3));
  });

  it('expired tokens are swept, so new ones can be issued', () => {
    const clock = new FakeClock();
    const cache = new StreamTokenCache<number>({ ttlMs: 1_000, maxOutstanding: 3, clock });
    for (let i = 0; i < 3; i++) cache.issue(i);
    assert.throws(() => cache.issue(3), TooManyStreamTokens);
    clock.advance(1_000);
    assert.equal(cache.size, 0);
    const fresh = cache.issue(3);
    assert.equal(cache.size, 1);
    assert.equal(cache.take(fresh.token), 3);
  });

  it("an owner's share: its tokens beyond it are refused, another owner's and an owner-less one are not; taken or expired ones free it", () => {
    const clock = new FakeClock();
    const cache = new StreamTokenCache<number>({ ttlMs: 1_000, maxPerOwner: 2, clock });
    const first = cache.issue(1, 'alice');
    cache.issue(2, 'alice');
    assert.throws(() => cache.issue(3, 'alice'), (err: unknown) => {
      assert.ok(err instanceof TooManyStreamTokens);
      assert.equal(err.scope, 'owner');
      assert.equal(err.limit, 2);
      return true;
    });
    assert.doesNotThrow(() => cache.issue(4, 'bob'));
    assert.doesNotThrow(() => cache.issue(5));
    cache.take(first.token);
    assert.doesNotThrow(() => cache.issue(6, 'alice'), 'a taken token frees its place in the share');
    assert.throws(() => cache.issue(7, 'alice'), TooManyStreamTokens);
    clock.advance(1_000);
    assert.doesNotThrow(() => cache.issue(8, 'alice'), 'so do expired ones');
  });

  it('the limit of all tokens still holds across owners, with its own scope', () => {
    const cache = new StreamTokenCache<number>({ maxOutstanding: 3, maxPerOwner: 2, clock: new FakeClock() });
    cache.issue(1, 'alice');
    cache.issue(2, 'alice');
    cache.issue(3, 'bob');
    assert.throws(() => cache.issue(4, 'carol'), (err: unknown) => err instanceof TooManyStreamTokens && err.scope === 'all' && err.limit === 3);
  });

  it('unknown, empty and non-string tokens give null', () => {
    const cache = new StreamTokenCache<number>();
    const { token } = cache.issue(1);
    assert.equal(cache.take('nope'), null);
    assert.equal(cache.take(''), null);
    assert.equal(cache.take(token.slice(0, -1)), null);
    assert.equal(cache.take(token.toUpperCase() === token ? token.toLowerCase() : token.toUpperCase()), null);
    assert.equal(cache.take(undefined as unknown as string), null);
    assert.equal(cache.take(token), 1, 'failed lookups do not consume the real token');
  });

  it('tokens are 43 base64url characters (256 bits, no padding) and differ', () => {
    const cache = new StreamTokenCache<number>();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { token } = cache.issue(i);
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(token, 'base64url').length, 32);
      seen.add(token);
    }
    assert.equal(seen.size, 200);
    const a = cache.issue(0).token;
    const b = cache.issue(0).token;
    assert.notEqual(a, b);
  });

  it('the same value can be issued twice under different tokens', () => {
    const cache = new StreamTokenCache<string>();
    const a = cache.issue('same');
    const b = cache.issue('same');
    assert.notEqual(a.token, b.token);
    assert.equal(cache.take(a.token), 'same');
    assert.equal(cache.take(b.token), 'same');
  });

  it('an inspected cache does not show the tokens', () => {
    const cache = new StreamTokenCache<string>();
    const { token } = cache.issue('value');
    assert.ok(!inspect(cache, { showHidden: true, depth: 10 }).includes(token));
    assert.ok(!JSON.stringify(cache).includes(token));
  });

  it('rejects invalid options', () => {
    assert.throws(() => new StreamTokenCache({ ttlMs: 0 }), RangeError);
    assert.throws(() => new StreamTokenCache({ ttlMs: Number.NaN }), RangeError);
    assert.throws(() => new StreamTokenCache({ maxOutstanding: 0 }), RangeError);
    assert.throws(() => new StreamTokenCache({ maxOutstanding: 1.5 }), RangeError);
    assert.throws(() => new StreamTokenCache({ maxPerOwner: 0 }), RangeError);
  });

  it('systemClock follows Date.now', () => {
    const before = Date.now();
    const now = systemClock.now();
    assert.ok(now >= before && now <= Date.now());
  });
});
