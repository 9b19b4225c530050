// Scenario 2: nsenter round trip — the agent's nsenter mode vs `nsenter … true` as a process vs docker exec.
import { agentExec, execUrl, timeProcess } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { round, summarize } from '../lib/stats.js';

export async function nsenterLatency(ctx: BenchContext): Promise<ScenarioResult> {
  const runs = ctx.quick ? 20 : 60;
  const agent: number[] = [];
  const direct: number[] = [];
  const cli: number[] = [];
  const url = execUrl(ctx.agent, 'default', 'bench', 'app.nsenter', ['true']);
  const pid = ctx.app.hostPid;
  const nsenterArgs = ['--target', String(pid), '--mount', '--uts', '--ipc', '--net', '--pid', '--', 'true'];
  await agentExec(ctx.agent, url);
  for (let i = 0; i < runs; i++) {
    agent.push((await agentExec(ctx.agent, url)).ms);
    direct.push((await timeProcess('nsenter', nsenterArgs)).ms);
    cli.push((await timeProcess(ctx.dockerCli, ['exec', ctx.app.id, 'true'], ctx.dockerEnv)).ms);
  }
  const a = summarize(agent);
  const d = summarize(direct);
  const c = summarize(cli);
  return {
    id: 'nsenter-latency',
    title: 'nsenter round trip (true in the container namespaces)',
    figures: {
      'agent nsenter p50 ms': round(a.p50),
      'agent nsenter p90 ms': round(a.p90),
      'nsenter process p50 ms': round(d.p50),
      'docker CLI p50 ms': round(c.p50),
      'docker CLI / agent nsenter (p50)': round(c.p50 / a.p50),
      runs,
    },
    goals: [
      { text: 'agent nsenter p50 ≤ 5 ms', met: a.p50 <= 5, detail: `${round(a.p50)} ms` },
      { text: 'agent nsenter ≥ 10× faster than docker exec (p50)', met: c.p50 / a.p50 >= 10, detail: `${round(c.p50 / a.p50)}×` },
    ],
    chart: { kind: 'latency', unit: 'ms', series: [{ label: 'agent nsenter', values: agent }, { label: 'nsenter process', values: direct }, { label: 'docker exec CLI', values: cli }] },
  };
}
