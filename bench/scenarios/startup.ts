// Scenario 6: agent start-up — process start until /readyz answers 200 — and its idle memory,
// next to a bare `node -e 0` start measured in the same run.
import { request } from 'node:https';
import { timeProcess } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { percentile, round, rssBytes } from '../lib/stats.js';

function readyz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

export async function startup(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = ctx.quick ? 2 : 5;
  const agentMs: number[] = [];
  const nodeMs: number[] = [];
  const idleRss: number[] = [];
  for (let i = 0; i < runs; i++) {
    nodeMs.push((await timeProcess(process.execPath, ['-e', '0'])).ms);
    const started = performance.now();
    const agent = await ctx.startAgent();
    while ((await readyz(agent.port)) !== 200) await new Promise((resolve) => setTimeout(resolve, 5));
    agentMs.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    idleRss.push(rssBytes(agent.process.pid!));
    await agent.stop();
  }
  const ms = percentile(agentMs, 50);
  const rss = percentile(idleRss, 50);
  return {
    id: 'startup',
    title: 'Start-up until /readyz 200, and idle memory',
    figures: {
      'agent start → /readyz ms (p50)': round(ms),
      'node -e 0 ms (p50)': round(percentile(nodeMs, 50)),
      'agent / bare node start': round(ms / percentile(nodeMs, 50)),
      'agent idle RSS MB': round(rss / 1048576, 1),
    },
    goals: [
      { text: 'start → /readyz < 1 s', met: ms < 1000, detail: `${round(ms)} ms` },
      { text: 'idle RSS < 80 MB', met: rss < 80 * 1048576, detail: `${round(rss / 1048576, 1)} MB` },
    ],
    chart: { kind: 'bars', unit: 'ms', series: [{ label: 'agent → /readyz', values: [ms] }, { label: 'node -e 0', values: [percentile(nodeMs, 50)] }] },
  };
}
