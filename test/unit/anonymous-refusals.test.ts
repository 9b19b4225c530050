// Refusals with no identity behind them are audited at a bounded rate: a burst, then a steady rate,
// and what is left out is summed up (by reason and address) in one record per summary interval —
// a flood from anyone who can reach the port cannot rotate real records out of the audit log.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../../src/auth/audit.js';
import { AnonymousRefusals } from '../../src/server/anonymous-refusals.js';

function setUp(options: { burst: number; perMinute: number }) {
  const written: AuditRecord[] = [];
  let now = 0;
  const refusals = new AnonymousRefusals({ write: (record) => (written.push(record), true) }, { ...options, summaryEveryMs: 60_000, now: () => now });
  return { written, refusals, advance: (ms: number) => (now += ms) };
}

const unauthorized = (address: string) => ({ code: 401, reason: 'Unauthorized', message: `invalid bearer token (from ${address})`, address });

describe('AnonymousRefusals', () => {
  it('writes a burst whole, then at the rate; what is left out comes in one summary by reason and address', () => {
    const { written, refusals, advance } = setUp({ burst: 3, perMinute: 60 });
    for (let i = 0; i < 10; i++) refusals.record(unauthorized('10.0.0.1'));
    refusals.record({ code: 403, reason: 'Forbidden', message: 'cross-origin', address: '10.0.0.2' });
    assert.equal(written.length, 3, 'the burst');
    assert.ok(written.every((r) => r.event === 'access.denied' && r.identity === null && r.code === 401));
    advance(1000); // one more a second
    refusals.record(unauthorized('10.0.0.3'));
    assert.equal(written.length, 4);
    refusals.flush();
    assert.equal(written.length, 5);
    assert.deepEqual({ ...written[4], since: 'x' }, {
      event: 'access.denied.summary',
      since: 'x',
      count: 8,
      byReason: { Unauthorized: 7, Forbidden: 1 },
      byAddress: { '10.0.0.1': 7, '10.0.0.2': 1 },
    });
    refusals.flush();
    assert.equal(written.length, 5, 'nothing left out since: no summary');
  });

  it('a flood of a minute writes no more than the burst, the rate and a summary', () => {
    const { written, refusals, advance } = setUp({ burst: 60, perMinute: 60 });
    for (let ms = 0; ms < 60_000; ms += 1) {
      refusals.record(unauthorized(`10.0.${ms % 200}.1`));
      advance(1);
    }
    refusals.flush();
    const denied = written.filter((r) => r.event === 'access.denied').length;
    assert.ok(denied <= 121, `${denied} refusals written of 60000`);
    const summaries = written.filter((r) => r.event === 'access.denied.summary');
    assert.equal(summaries.length, 1);
    const summary = summaries[0] as Extract<AuditRecord, { event: 'access.denied.summary' }>;
    assert.equal(summary.count + denied, 60_000, 'every refusal written or counted');
    assert.equal(Object.keys(summary.byAddress).length, 51, 'at most 50 addresses, the rest as "other"');
    assert.ok(summary.byAddress['other']! > 0);
  });
});
