// Reads an agent's /metrics (Prometheus text) into name{labels} → value, so a scenario can tell what
// the agent itself did during a window: prom-client resets its event-loop delay histogram at every
// scrape, so two scrapes bracket a window; counters are read as differences.
import { request } from 'node:https';
import type { TestAgent } from '../../test/helpers/agent.js';

/** prom-client samples the event loop with a timer this often; each recorded delay includes it. */
export const EVENT_LOOP_SAMPLE_MS = 10;

export async function scrapeMetrics(agent: TestAgent): Promise<Map<string, number>> {
  const body = await new Promise<string>((resolve, reject) => {
    // A connection of its own, closed after the answer: a kept-alive one would still be open (an fd
    // and a TLS connection) when the scenario counts the agent's memory and descriptors.
    const req = request(`${agent.url}/metrics`, { ca: agent.caPem, agent: false, headers: { authorization: `Bearer ${agent.token}` }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`bench: GET /metrics answered ${String(res.statusCode)}: ${text}`))));
    });
    req.on('timeout', () => req.destroy(new Error('bench: GET /metrics: no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
  const samples = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** The sum of every sample of `name` (all label sets). */
export function total(samples: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [key, value] of samples) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

/**
 * The mean (ms) of what a histogram in seconds observed between two scrapes, for one label set
 * (`mode="nsenter"`); NaN when it observed nothing.
 */
export function meanMsBetween(before: Map<string, number>, after: Map<string, number>, histogram: string, labels: string): number {
  const delta = (suffix: string) => (after.get(`${histogram}_${suffix}{${labels}}`) ?? 0) - (before.get(`${histogram}_${suffix}{${labels}}`) ?? 0);
  const count = delta('count');
  return count > 0 ? (delta('sum') / count) * 1000 : Number.NaN;
}
