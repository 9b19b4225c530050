// Scenario 1: exec round trip of `true` — the agent over v5 vs a raw Engine API client vs the docker
// CLI. The agent is timed from the request until the client holds the exit Status (the raw client's
// equivalent is its inspect answer), each exec on a new TLS connection: once with a full handshake
// (what kubectl does) and once resuming the client's last TLS session (what a browser console or
// any long-lived client does). The close handshake after the Status is reported beside it, and so
// is a bare TLS WebSocket endpoint (ws-endpoint.ts) timed with the same client: what opening the
// stream costs by itself, which the raw client over the engine's unix socket does not pay.
import { AgentLatencies, agentExec, execUrl, rawEngineExec, type RawPhases } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { runInRounds } from '../lib/rounds.js';
import { withWebSocketEndpoint } from '../lib/ws-endpoint.js';
import { meanMsBetween, scrapeMetrics } from '../lib/agent-metrics.js';
import { medianDifferenceInterval, percentile, round, summarize } from '../lib/stats.js';

export async function execLatency(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = ctx.quick ? 20 : 120;
  // The CLI, ~90 ms a run and only a ratio, in every other round: time for the paths the goal compares.
  let cliTurn = 0;
  const agent = new AgentLatencies();
  const bare = new AgentLatencies();
  const raw: number[] = [];
  const rawPhases: RawPhases[] = [];
  const cli: number[] = [];
  const url = execUrl(ctx.agent, 'default', 'bench', 'app', ['true']);
  const startMs = await withWebSocketEndpoint(ctx.agent, async (endpoint) => {
    const bareUrl = execUrl(endpoint, 'default', 'bench', 'app', ['true']);
    // Warm-up: TLS session, engine connections, page cache.
    await agentExec(ctx.agent, url);
    await agentExec(endpoint, bareUrl);
    await rawEngineExec(ctx.dockerode, ctx.app.id, ['true']);
    const metricsBefore = await scrapeMetrics(ctx.agent);
    await runInRounds(runs, [
      ...agent.paths(ctx.agent, url),
      ...bare.paths(endpoint, bareUrl),
      async () => {
        const rawRun = await rawEngineExec(ctx.dockerode, ctx.app.id, ['true']);
        raw.push(rawRun.ms);
        rawPhases.push(rawRun.phases);
      },
      async () => {
        if (cliTurn++ % 2 === 0) cli.push((await ctx.timeProcess(ctx.dockerCli, ['exec', ctx.app.id, 'true'], ctx.dockerEnv)).ms);
      },
    ]);
    // The agent's own part, from its metrics: the request received (after TLS and HTTP parsing) until the process runs.
    return meanMsBetween(metricsBefore, await scrapeMetrics(ctx.agent), 'execlet_session_start_seconds', 'mode="exec"');
  });
  const f = summarize(agent.full);
  const s = summarize(agent.resumed);
  const r = summarize(raw);
  const c = summarize(cli);
  const bf = summarize(bare.full);
  const bs = summarize(bare.resumed);
  const median = (values: number[]) => round(percentile(values, 50), 1);
  const rawTimeline = [median(rawPhases.map((p) => p.created)), median(rawPhases.map((p) => p.started)), median(rawPhases.map((p) => p.ended)), median(raw)].join(' / ');
  const interval = (values: number[]) => medianDifferenceInterval(values, raw).map((v) => round(v, 1)).join(' … ');
  const goal = (label: string, p50: number, bareP50: number) => ({
    text: `agent p50 ≤ raw Engine API p50 + 3 ms (${label})`,
    met: p50 <= r.p50 + 3,
    detail: `${round(p50)} ms vs ${round(r.p50)} + 3 ms; a bare TLS WebSocket endpoint ${round(bareP50)} ms`,
  });
  return {
    id: 'exec-latency',
    title: 'Exec round trip (busybox true)',
    figures: {
      'agent p50 ms, full TLS handshake': round(f.p50),
      'agent p90 ms, full TLS handshake': round(f.p90),
      'agent p50 ms, full handshake, to the closed connection': round(summarize(agent.fullClosed).p50),
      'agent p50 ms, resumed TLS session': round(s.p50),
      'agent p90 ms, resumed TLS session': round(s.p90),
      'raw Engine API p50 ms': round(r.p50),
      'raw Engine API p90 ms': round(r.p90),
      'docker CLI p50 ms': round(c.p50),
      'docker CLI p90 ms': round(c.p90),
      'agent − raw (p50) ms, full handshake': round(f.p50 - r.p50),
      'agent − raw (p50) ms, full handshake, 95 % interval': interval(agent.full),
      'agent − raw (p50) ms, resumed session': round(s.p50 - r.p50),
      'agent − raw (p50) ms, resumed session, 95 % interval': interval(agent.resumed),
      'agent / docker CLI (p50), full handshake': round(f.p50 / c.p50),
      'bare TLS WebSocket endpoint p50 ms, full handshake / resumed': `${round(bf.p50)} / ${round(bs.p50)}`,
      // Where the time goes (medians of each step): opening the stream is the client's and the
      // agent's; after the 101 the agent drives the engine as the raw client does, minus its inspect.
      ...agent.timelineFigures(),
      ...bare.timelineFigures('bare endpoint'),
      'agent request → process started, mean ms (the agent\'s own metric)': round(startMs),
      'agent p50 ms from the 101 to the Status, full handshake': median(agent.fullPhases.map((p, i) => agent.full[i]! - p.upgraded)),
      'raw Engine API timeline p50 ms: created / started / output ended / inspected': rawTimeline,
      'runs (the docker CLI: every other round)': `${runs} (${cli.length})`,
    },
    goals: [goal('full TLS handshake', f.p50, bf.p50), goal('resumed TLS session', s.p50, bs.p50)],
    chart: {
      kind: 'latency',
      unit: 'ms',
      series: [
        ...agent.series('agent'),
        { label: 'raw Engine API', values: raw },
        { label: 'docker exec CLI', values: cli },
      ],
    },
  };
}
