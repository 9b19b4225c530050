// Scenario 1: exec round trip of `true` — the agent over v5 vs a raw Engine API client vs the docker CLI.
import { agentExec, execUrl, rawEngineExec, timeProcess } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { round, summarize } from '../lib/stats.js';

export async function execLatency(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = ctx.quick ? 20 : 60;
  const agent: number[] = [];
  const raw: number[] = [];
  const cli: number[] = [];
  const url = execUrl(ctx.agent, 'default', 'bench', 'app', ['true']);
  // Warm-up: TLS session, engine connections, page cache.
  await agentExec(ctx.agent, url);
  await rawEngineExec(ctx.dockerode, ctx.app.id, ['true']);
  for (let i = 0; i < runs; i++) {
    // Alternating, so drift in the machine's load hits every path alike.
    agent.push((await agentExec(ctx.agent, url)).ms);
    raw.push(await rawEngineExec(ctx.dockerode, ctx.app.id, ['true']));
    cli.push((await timeProcess(ctx.dockerCli, ['exec', ctx.app.id, 'true'], ctx.dockerEnv)).ms);
  }
  const a = summarize(agent);
  const r = summarize(raw);
  const c = summarize(cli);
  return {
    id: 'exec-latency',
    title: 'Exec round trip (busybox true)',
    figures: {
      'agent p50 ms': round(a.p50),
      'agent p90 ms': round(a.p90),
      'raw Engine API p50 ms': round(r.p50),
      'raw Engine API p90 ms': round(r.p90),
      'docker CLI p50 ms': round(c.p50),
      'docker CLI p90 ms': round(c.p90),
      'agent / raw (p50)': round(a.p50 / r.p50),
      'agent / docker CLI (p50)': round(a.p50 / c.p50),
      runs,
    },
    goals: [{ text: 'agent p50 ≤ raw Engine API p50 + 3 ms', met: a.p50 <= r.p50 + 3, detail: `${round(a.p50)} ms vs ${round(r.p50)} + 3 ms` }],
    chart: { kind: 'latency', unit: 'ms', series: [{ label: 'agent (v5)', values: agent }, { label: 'raw Engine API', values: raw }, { label: 'docker exec CLI', values: cli }] },
  };
}
