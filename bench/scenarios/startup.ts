// Scenario 6: agent start-up — process start until /readyz answers 200 — and its idle memory,
// next to a bare `node -e 0` start measured in the same run. Idle memory is read on the last start,
// 2 s after /readyz, and once more when the idle agent has settled (V8's memory reducer has run: an
// agent spends most of its life idle).
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { percentile, round, rssBytes, settledRss } from '../lib/stats.js';

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
  const runs = ctx.quick ? 1 : 5;
  const agentMs: number[] = [];
  const nodeMs: number[] = [];
  let rssAfterTwoSeconds = 0;
  // The first start creates the CA, the serving certificate and the token; every later start (a
  // restart, the usual case) finds them in the state dir. Both are reported; the goal is a restart.
  const stateDir = mkdtempSync(join(tmpdir(), 'execlet-bench-startup-'));
  let firstStartMs = 0;
  let settled = { bytes: 0, afterMs: 0 };
  try {
    for (let i = 0; i <= runs; i++) {
      nodeMs.push((await ctx.timeProcess(process.execPath, ['-e', '0'])).ms);
      const started = performance.now();
      const agent = await ctx.startAgent([], stateDir);
      while ((await readyz(agent.port)) !== 200) await new Promise((resolve) => setTimeout(resolve, 5));
      if (i === 0) firstStartMs = performance.now() - started;
      else agentMs.push(performance.now() - started);
      // Idle memory once, on the last start: 2 s after /readyz, then settled.
      if (i === runs) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        rssAfterTwoSeconds = rssBytes(agent.process.pid!);
        settled = await settledRss(agent.process.pid!, { minMs: ctx.quick ? 2_000 : 12_000, limitMs: ctx.quick ? 4_000 : 25_000 });
      }
      await agent.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  const ms = percentile(agentMs, 50);
  return {
    id: 'startup',
    title: 'Start-up until /readyz 200, and idle memory',
    figures: {
      'agent restart → /readyz ms (p50)': round(ms),
      'agent first start (makes the CA, certificate, token) → /readyz ms': round(firstStartMs),
      'node -e 0 ms (p50)': round(percentile(nodeMs, 50)),
      'agent / bare node start': round(ms / percentile(nodeMs, 50)),
      'agent RSS 2 s after /readyz MB': round(rssAfterTwoSeconds / 1048576, 1),
      'agent idle RSS, settled MB': round(settled.bytes / 1048576, 1),
      'settled after s (idle, counted from 2 s after /readyz)': round(settled.afterMs / 1000, 1),
    },
    goals: [
      { text: 'start → /readyz < 1 s (a restart; the first start also makes keys)', met: ms < 1000, detail: `${round(ms)} ms; first start ${round(firstStartMs)} ms` },
      {
        text: 'idle RSS < 80 MB (settled)',
        met: settled.bytes < 80 * 1048576,
        detail: `${round(settled.bytes / 1048576, 1)} MB settled; ${round(rssAfterTwoSeconds / 1048576, 1)} MB 2 s after /readyz`,
      },
    ],
    chart: { kind: 'bars', unit: 'ms', series: [{ label: 'agent → /readyz', values: [ms] }, { label: 'node -e 0', values: [percentile(nodeMs, 50)] }] },
  };
}
