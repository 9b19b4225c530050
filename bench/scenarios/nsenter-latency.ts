// Scenario 2: nsenter round trip — the agent's nsenter mode vs `nsenter … true` as a process vs
// docker exec. The agent is timed until the client holds the exit Status, each exec on a new TLS
// connection, with a full handshake and with a resumed TLS session (see exec-latency.ts). The
// agent's own helper, run as a process the same way, shows what of the agent's time is the helper;
// a bare TLS WebSocket endpoint (ws-endpoint.ts), timed with the same client, what of it is only
// opening the stream.
import { DEFAULT_HELPER_PATH, nsenterArgv } from '../../src/backend/nsenter.js';
import { DEFAULT_NSENTER_NAMESPACES } from '../../src/target/modes.js';
import { AgentLatencies, agentExec, execUrl } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { runInRounds } from '../lib/rounds.js';
import { withWebSocketEndpoint } from '../lib/ws-endpoint.js';
import { meanMsBetween, scrapeMetrics } from '../lib/agent-metrics.js';
import { round, summarize } from '../lib/stats.js';

export async function nsenterLatency(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = ctx.quick ? 20 : 100;
  const agent = new AgentLatencies();
  const bare = new AgentLatencies();
  const direct: number[] = [];
  const helper: number[] = [];
  const cli: number[] = [];
  const url = execUrl(ctx.agent, 'default', 'bench', 'app.nsenter', ['true']);
  const pid = ctx.app.hostPid;
  const nsenterArgs = ['--target', String(pid), '--mount', '--uts', '--ipc', '--net', '--pid', '--', 'true'];
  const [helperFile, ...helperArgs] = nsenterArgv(DEFAULT_HELPER_PATH, { kind: 'namespaces', pid, namespaces: [...DEFAULT_NSENTER_NAMESPACES], toolbox: false }, ['true']);
  const startMs = await withWebSocketEndpoint(ctx.agent, async (endpoint) => {
    const bareUrl = execUrl(endpoint, 'default', 'bench', 'app.nsenter', ['true']);
    await agentExec(ctx.agent, url);
    await agentExec(endpoint, bareUrl);
    const metricsBefore = await scrapeMetrics(ctx.agent);
    await runInRounds(runs, [
      ...agent.paths(ctx.agent, url),
      ...bare.paths(endpoint, bareUrl),
      async () => void direct.push(await succeeded(ctx.timeProcess('nsenter', nsenterArgs), 'nsenter')),
      async () => void helper.push(await succeeded(ctx.timeProcess(helperFile!, helperArgs), 'execlet-nsenter')),
      async () => void cli.push((await ctx.timeProcess(ctx.dockerCli, ['exec', ctx.app.id, 'true'], ctx.dockerEnv)).ms),
    ]);
    // The agent's own part, from its metrics: the request received (after TLS and HTTP parsing) until the process runs.
    return meanMsBetween(metricsBefore, await scrapeMetrics(ctx.agent), 'execlet_session_start_seconds', 'mode="nsenter"');
  });
  const f = summarize(agent.full);
  const s = summarize(agent.resumed);
  const d = summarize(direct);
  const h = summarize(helper);
  const c = summarize(cli);
  const bf = summarize(bare.full);
  const bs = summarize(bare.resumed);
  const goals = (label: string, p50: number, bareP50: number) => [
    { text: `agent nsenter p50 ≤ 5 ms (${label})`, met: p50 <= 5, detail: `${round(p50)} ms; a bare TLS WebSocket endpoint ${round(bareP50)} ms` },
    { text: `agent nsenter ≥ 10× faster than docker exec, p50 (${label})`, met: c.p50 / p50 >= 10, detail: `${round(c.p50 / p50)}×` },
  ];
  return {
    id: 'nsenter-latency',
    title: 'nsenter round trip (true in the container namespaces)',
    figures: {
      'agent nsenter p50 ms, full TLS handshake': round(f.p50),
      'agent nsenter p90 ms, full TLS handshake': round(f.p90),
      'agent nsenter p50 ms, full handshake, to the closed connection': round(summarize(agent.fullClosed).p50),
      'agent nsenter p50 ms, resumed TLS session': round(s.p50),
      'agent nsenter p90 ms, resumed TLS session': round(s.p90),
      'util-linux nsenter process p50 ms': round(d.p50),
      'execlet-nsenter helper process p50 ms': round(h.p50),
      'docker CLI p50 ms': round(c.p50),
      'bare TLS WebSocket endpoint p50 ms, full handshake / resumed': `${round(bf.p50)} / ${round(bs.p50)}`,
      'agent nsenter − bare endpoint (p50) ms, full handshake / resumed': `${round(f.p50 - bf.p50)} / ${round(s.p50 - bs.p50)}`,
      ...agent.timelineFigures(),
      ...bare.timelineFigures('bare endpoint'),
      'agent nsenter request → process started, mean ms (the agent\'s own metric)': round(startMs),
      'docker CLI / agent nsenter (p50), full handshake': round(c.p50 / f.p50),
      'docker CLI / agent nsenter (p50), resumed session': round(c.p50 / s.p50),
      runs,
    },
    goals: [...goals('full TLS handshake', f.p50, bf.p50), ...goals('resumed TLS session', s.p50, bs.p50)],
    chart: {
      kind: 'latency',
      unit: 'ms',
      series: [
        ...agent.series('agent nsenter'),
        ...bare.series('bare TLS WebSocket endpoint'),
        { label: 'nsenter process', values: direct },
        { label: 'execlet-nsenter helper process', values: helper },
        { label: 'docker exec CLI', values: cli },
      ],
    },
  };
}

/** A baseline that failed would time an error message: refuse it. */
async function succeeded(run: Promise<{ ms: number; code: number | null }>, what: string): Promise<number> {
  const { ms, code } = await run;
  if (code !== 0) throw new Error(`bench: ${what} exited with ${String(code)}`);
  return ms;
}
