// Unit tests for bearer-token checking (src/auth/bearer.ts): missing, malformed, invalid and valid
// Authorization headers, scheme case and spacing, near-miss tokens, and that no result leaks the token.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { BearerTokenAuthenticator, type AuthResult } from '../../src/auth/bearer.js';

const TOKEN = 'Zk3-q_9xYtokenVALUE0123456789abcdef';
const auth = new BearerTokenAuthenticator(TOKEN);

function reason(result: AuthResult): string {
  return result.ok ? 'ok' : result.reason;
}

describe('BearerTokenAuthenticator', () => {
  it('accepts the right token', () => {
    assert.deepEqual(auth.check(`Bearer ${TOKEN}`), { ok: true });
  });

  it('missing: no header or an empty one', () => {
    assert.equal(reason(auth.check(undefined)), 'missing');
    assert.equal(reason(auth.check('')), 'missing');
  });

  it('the scheme is case-insensitive', () => {
    for (const scheme of ['bearer', 'BEARER', 'bEaReR']) assert.equal(reason(auth.check(`${scheme} ${TOKEN}`)), 'ok', scheme);
  });

  it('tolerates several spaces after the scheme and trailing whitespace', () => {
    assert.equal(reason(auth.check(`Bearer    ${TOKEN}`)), 'ok');
    assert.equal(reason(auth.check(`Bearer ${TOKEN}   `)), 'ok');
    assert.equal(reason(auth.check(`Bearer ${TOKEN}\t`)), 'ok');
  });

  it('malformed: another scheme, no token, no separator, leading space, two tokens', () => {
    const malformed = [
      `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
      'Bearer',
      'Bearer ',
      'Bearer    ',
      `Bearer${TOKEN}`,
      ` Bearer ${TOKEN}`,
      `Bearer ${TOKEN} extra`,
      `Token ${TOKEN}`,
      TOKEN,
    ];
    for (const header of malformed) assert.equal(reason(auth.check(header)), 'malformed', JSON.stringify(header));
  });

  it('invalid: a prefix, an extension, a case variant or a neighbour of the token', () => {
    const near = [TOKEN.slice(0, -1), TOKEN.slice(0, 1), `${TOKEN}x`, `${TOKEN}${TOKEN}`, TOKEN.toLowerCase(), TOKEN.toUpperCase(), `x${TOKEN.slice(1)}`];
    for (const token of near) {
      assert.notEqual(token, TOKEN);
      assert.equal(reason(auth.check(`Bearer ${token}`)), 'invalid', token);
    }
  });

  it('a trailing newline is trailing whitespace; more text after it is malformed', () => {
    assert.equal(reason(auth.check(`Bearer ${TOKEN}\n`)), 'ok');
    assert.equal(reason(auth.check(`Bearer ${TOKEN}\nx`)), 'malformed');
  });

  it('another authenticator with another token does not accept this one', () => {
    const other = new BearerTokenAuthenticator(`${TOKEN}-other`);
    assert.equal(reason(other.check(`Bearer ${TOKEN}`)), 'invalid');
    assert.equal(reason(other.check(`Bearer ${TOKEN}-other`)), 'ok');
  });

  it('never returns the token, whatever the outcome', () => {
    const headers = [undefined, '', `Bearer ${TOKEN}`, `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer ${TOKEN.slice(0, 8)}`];
    for (const header of headers) {
      const result = auth.check(header);
      const keys = Object.keys(result).sort();
      assert.ok(JSON.stringify(keys) === '["ok"]' || JSON.stringify(keys) === '["ok","reason"]', `unexpected keys ${keys.join(',')}`);
      assert.ok(!JSON.stringify(result).includes(TOKEN.slice(0, 8)), 'no part of the token in the result');
    }
  });

  it('does not expose the token as a property of the authenticator', () => {
    const seen = JSON.stringify(auth) + Object.values(auth as object).map(String).join('');
    assert.ok(!seen.includes(TOKEN));
  });
});
