// Scenario 4: many concurrent interactive shells, each echoing a keystroke every second: the agent's
// memory and file descriptors per session, and the echo latency — next to the same echo measured on
// as many raw hijacked Engine API connections (no agent in between), so the engine's and the
// machine's own tail at that load is known; and what the agent's event loop and GC did meanwhile.
// The clients run in worker threads (shell-pool.ts), each with its own event loop.
import type { TestAgent } from '../../test/helpers/agent.js';
import type { TestContainer } from '../../test/helpers/containers.js';
import { EVENT_LOOP_SAMPLE_MS, scrapeMetrics, total } from '../lib/agent-metrics.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { agentShell } from '../lib/echo-shells.js';
import { collectGarbage, INSPECTABLE, memoryUsage } from '../lib/gc.js';
import { openShellPool } from '../lib/shell-pool.js';
import { tlsConnectionFloor } from '../lib/tls-baseline.js';
import { fdCount, percentile, round, rssBytes } from '../lib/stats.js';

export async function concurrency(ctx: BenchContext): Promise<ScenarioResult> {
  const sessions = ctx.quick ? 100 : 500;
  const podCount = ctx.quick ? 4 : 10;
  const rounds = ctx.quick ? 2 : 5;
  /** Client threads: one per core, so that a client's own event loop is not what queues an echo. */
  const threads = 2;
  const pods: string[] = [];
  const containers: TestContainer[] = [];
  const agents: TestAgent[] = [];
  for (let i = 0; i < podCount; i++) {
    const name = `shells-${i}`;
    containers.push(await ctx.startContainer(name));
    pods.push(name);
  }
  try {
    // Baseline: the same echo on as many raw engine connections (no agent), over the same containers.
    const rawShells = await openShellPool({ kind: 'raw', sessions, targets: containers.map((c) => c.id), dockerSocket: ctx.docker.socketPath }, threads);
    const rawLatencies = await rawShells.echo(rounds);
    await rawShells.close();

    // An agent of its own, with the inspector on, so its memory can be read after a full GC.
    const agent = await ctx.startAgent([], undefined, INSPECTABLE);
    agents.push(agent);
    const pid = agent.process.pid!;
    const warm = await agentShell(agent, 'app', pods[0]!);
    await warm.close();
    await collectGarbage(agent);
    const rssBefore = rssBytes(pid);
    const heapBefore = await memoryUsage(agent);
    const fdsBefore = fdCount(pid);
    const shells = await openShellPool({ kind: 'agent', sessions, targets: pods, agent: { port: agent.port, token: agent.token, caPem: agent.caPem } }, threads);
    const metricsBefore = await scrapeMetrics(agent); // also starts a new event-loop delay window
    const latencies = await shells.echo(rounds);
    const metricsAfter = await scrapeMetrics(agent);
    const loopDelay = (name: string) => round(Math.max(0, metricsAfter.get(name)! * 1000 - EVENT_LOOP_SAMPLE_MS), 1);
    const gcPauses = total(metricsAfter, 'nodejs_gc_duration_seconds_count') - total(metricsBefore, 'nodejs_gc_duration_seconds_count');
    const gcMs = (total(metricsAfter, 'nodejs_gc_duration_seconds_sum') - total(metricsBefore, 'nodejs_gc_duration_seconds_sum')) * 1000;
    // After a full GC both times: what a burst left committed (V8's young generation grows under
    // load) or not yet collected is not counted as the sessions' memory.
    await collectGarbage(agent);
    const rssPerSession = (rssBytes(pid) - rssBefore) / sessions;
    const heapAfter = await memoryUsage(agent);
    const heapPerSession = (heapAfter.heapUsed - heapBefore.heapUsed) / sessions;
    const tlsFloor = await tlsConnectionFloor(agent, sessions);
    const externalPerSession = (heapAfter.external - heapBefore.external) / sessions;
    const fdsPerSession = (fdCount(pid) - fdsBefore) / sessions;
    await shells.close();
    const p99 = percentile(latencies, 99);
    return {
      id: 'concurrency',
      title: `${sessions} concurrent interactive sessions over ${podCount} containers`,
      figures: {
        sessions,
        'agent RSS per session KB': round(rssPerSession / 1024, 1),
        'of which JS heap in use KB': round(heapPerSession / 1024, 1),
        'of which external (buffers) KB': round(externalPerSession / 1024, 1),
        'bare Node.js TLS server: RSS per open connection KB': round(tlsFloor / 1024, 1),
        'agent fds per session': round(fdsPerSession, 2),
        'agent echo p50 ms': round(percentile(latencies, 50)),
        'agent echo p99 ms': round(p99),
        'raw engine echo p50 ms': round(percentile(rawLatencies, 50)),
        'raw engine echo p99 ms': round(percentile(rawLatencies, 99)),
        'agent / raw engine echo (p50)': round(percentile(latencies, 50) / percentile(rawLatencies, 50)),
        // The agent's own share of a slow echo: how late its event loop ran, and its GC pauses.
        'agent event-loop delay during the echoes, p99 / max ms': `${loopDelay('nodejs_eventloop_lag_p99_seconds')} / ${loopDelay('nodejs_eventloop_lag_max_seconds')}`,
        'agent GC during the echoes: pauses / total ms': `${gcPauses} / ${round(gcMs, 1)}`,
      },
      goals: [
        { text: '≤ 25 KB agent RSS per session', met: rssPerSession <= 25 * 1024, detail: `${round(rssPerSession / 1024, 1)} KB` },
        { text: '2 fds per session', met: fdsPerSession <= 2.05, detail: `${round(fdsPerSession, 2)}` },
        { text: `p99 echo ≤ 5 ms at ${sessions} sessions`, met: p99 <= 5, detail: `${round(p99)} ms` },
      ],
      chart: { kind: 'latency', unit: 'ms', series: [{ label: 'agent echo', values: latencies }, { label: 'raw engine echo', values: rawLatencies }] },
    };
  } finally {
    for (const agent of agents) await agent.stop();
    for (const c of containers) await c.remove();
  }
}
