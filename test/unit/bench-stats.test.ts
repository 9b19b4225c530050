// The bench's small statistics: percentiles, and the burst count that tells a stall of everything
// in flight from slow echoes one by one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inFlightDuring, percentile, slowEchoBursts } from '../../bench/lib/stats.js';

describe('bench statistics', () => {
  test('percentile takes the nearest rank, whatever the order of the values', () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    assert.equal(percentile(values, 50), 5);
    assert.equal(percentile(values, 90), 9);
    assert.equal(percentile(values, 99), 10);
    assert.equal(percentile(values, 0), 1);
    assert.ok(Number.isNaN(percentile([], 50)));
  });

  test('slow echoes in flight at the same time count as a burst; slow echoes apart do not', () => {
    // sent at (ms), latency (ms): two slow ones overlapping (100–120, 110–125), one slow alone
    // (500–508), one fast one overlapping the burst (105–106) that is not counted.
    const sentAt = [100, 105, 110, 500, 900];
    const latencies = [20, 1, 15, 8, 2];
    assert.deepEqual(slowEchoBursts(latencies, sentAt, 5), { slow: 3, inBursts: 2 });
  });

  test('a slow echo that starts after another ended is not in its burst, and a long one spans several', () => {
    // 0–10 and 10–20 touch but do not overlap; 30–60 overlaps 35–41 and 50–57.
    const sentAt = [0, 10, 30, 35, 50];
    const latencies = [10, 10, 30, 6, 7];
    assert.deepEqual(slowEchoBursts(latencies, sentAt, 5), { slow: 5, inBursts: 3 });
    assert.deepEqual(slowEchoBursts([], [], 5), { slow: 0, inBursts: 0 });
    // In the order they came back (as the client threads report them), not the order they were sent.
    const order = [4, 2, 0, 3, 1];
    assert.deepEqual(slowEchoBursts(order.map((i) => latencies[i]!), order.map((i) => sentAt[i]!), 5), { slow: 5, inBursts: 3 });
  });

  test('an echo is in flight during a pause that overlaps it, not one that ends before it or begins after', () => {
    const echoes = { sentAt: [100, 200, 300, 400], latencies: [10, 10, 10, 10] };
    // 95–101 overlaps the first; 205–206 lies inside the second; 290–300 ends as the third begins;
    // 410–420 begins as the fourth ends.
    const pauses = [
      { from: 95, to: 101 },
      { from: 205, to: 206 },
      { from: 290, to: 300 },
      { from: 410, to: 420 },
    ];
    assert.deepEqual(inFlightDuring(echoes, pauses), [true, true, false, false]);
    assert.deepEqual(inFlightDuring(echoes, []), [false, false, false, false]);
  });
});
