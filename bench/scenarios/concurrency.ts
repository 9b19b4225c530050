// Scenario 4: many concurrent interactive shells, each echoing a keystroke every second: the agent's
// memory and file descriptors per session, and the echo latency — next to the same echo measured on
// as many raw hijacked Engine API connections (no agent in between), so the engine's and the
// machine's own tail at that load is known. The raw engine's rounds and the agent's take turns, so
// what the machine does meanwhile hits both. Where a slow echo's time went is reported too: how late
// the agent's and the clients' event loops ran, the agent's GC pauses, whether slow echoes came in
// bursts (a stall of everything in flight) or one by one, which of them were in flight during a GC
// pause of the agent or of their client thread, and how busy the machine was. The least Node.js
// relay (ws-relay.ts) takes its turn too (not with --quick), with as many shells: its memory per
// session, CPU per echo and echo tail are what any agent that terminates TLS in Node.js pays on this
// machine.
// The clients run in worker threads (shell-pool.ts), each with its own event loop.
import type { TestAgent } from '../../test/helpers/agent.js';
import type { TestContainer } from '../../test/helpers/containers.js';
import { EVENT_LOOP_SAMPLE_MS, scrapeMetrics, total } from '../lib/agent-metrics.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { agentShell, type Echoes } from '../lib/echo-shells.js';
import { agentGcPauses, collectGarbage, INSPECT_OPTION, INSPECTABLE, memoryUsage, recordAgentGcPauses } from '../lib/gc.js';
import { openShellPool, type ShellPool } from '../lib/shell-pool.js';
import { stepTimer } from '../lib/steps.js';
import { cpuSeconds, fdCount, inFlightDuring, machineCpu, percentile, round, rssBytes, slowEchoBursts } from '../lib/stats.js';
import { startWebSocketRelay, type WebSocketRelay } from '../lib/ws-relay.js';

/** The goal for an echo at p99 (ms); slower echoes are also counted, and looked at for bursts. */
const ECHO_GOAL_MS = 5;

export async function concurrency(ctx: BenchContext): Promise<ScenarioResult> {
  const sessions = ctx.quick ? 50 : 500;
  const podCount = ctx.quick ? 3 : 10;
  // Rounds per kind: 2000 echoes each, of which the slowest 1 % is 20 (50 in --quick).
  const rounds = ctx.quick ? 1 : 4;
  /** Client threads: one per core, so that a client's own event loop is not what queues an echo. */
  const threads = 2;
  const pods: string[] = [];
  const containers: TestContainer[] = [];
  const agents: TestAgent[] = [];
  const pools: ShellPool[] = [];
  const relays: WebSocketRelay[] = [];
  const step = stepTimer('concurrency');
  // Started (and removed) all at once: one by one, they took ~10 s of a run that must stay under 5 minutes.
  pods.push(...Array.from({ length: podCount }, (_, i) => `shells-${i}`));
  containers.push(...(await Promise.all(pods.map((pod) => ctx.startContainer(pod)))));
  step(`${podCount} containers started`);
  try {
    // Baseline: the same echo on as many raw engine connections (no agent), over the same containers.
    const rawShells = await openShellPool({ kind: 'raw', sessions, targets: containers.map((c) => c.id), dockerSocket: ctx.docker.socketPath }, threads);
    pools.push(rawShells);
    step(`${sessions} raw engine shells opened`);

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
    pools.push(shells);
    step(`an agent started and ${sessions} shells opened through it`);

    // The least relay, with as many shells over the same containers, measured as the agent is; not
    // with --quick, which must stay under a minute.
    const openRelay = async () => {
      const relay = await startWebSocketRelay(agent, {
        socketPath: ctx.docker.socketPath,
        containers: Object.fromEntries(pods.map((pod, i) => [pod, containers[i]!.id])),
        nodeOptions: [INSPECT_OPTION],
      });
      relays.push(relay);
      const warmRelay = await agentShell(relay.target, 'app', pods[0]!);
      await warmRelay.close();
      await collectGarbage(relay);
      const rssBefore = rssBytes(relay.pid);
      const fdsBefore = fdCount(relay.pid);
      const shells = await openShellPool({ kind: 'agent', sessions, targets: pods, agent: relay.target }, threads);
      pools.push(shells);
      return { relay, shells, rssBefore, fdsBefore };
    };
    const relayRun = ctx.quick ? null : await openRelay();
    if (relayRun) step(`the least relay started and ${sessions} shells opened through it`);

    // One round (a keystroke per shell, spread over a second) at a time, the raw engine's, the
    // agent's and the relay's in turn, so that what the machine does meanwhile hits all. The pools
    // stay open throughout; the idle ones cost the machine next to nothing.
    type Kind = 'agent' | 'raw' | 'relay';
    const agentEchoes: Echoes = { latencies: [], sentAt: [] };
    const rawEchoes: Echoes = { latencies: [], sentAt: [] };
    const relayEchoes: Echoes = { latencies: [], sentAt: [] };
    const duringClientGc = { agent: [] as boolean[], raw: [] as boolean[], relay: [] as boolean[] };
    const clientLoop = { agent: { p99: 0, max: 0 }, raw: { p99: 0, max: 0 }, relay: { p99: 0, max: 0 } };
    const agentLoop = { p99: 0, max: 0 };
    let gcPauses = 0;
    let gcMs = 0;
    const record = (kind: Kind, result: Awaited<ReturnType<typeof shells.echo>>) => {
      const into = { agent: agentEchoes, raw: rawEchoes, relay: relayEchoes }[kind];
      const loop = clientLoop[kind];
      into.latencies.push(...result.echoes.latencies);
      into.sentAt.push(...result.echoes.sentAt);
      duringClientGc[kind].push(...result.duringClientGc);
      loop.p99 = Math.max(loop.p99, result.clientLoopDelay.p99);
      loop.max = Math.max(loop.max, result.clientLoopDelay.max);
    };
    const busyShare = { agent: 0, raw: 0, relay: 0 };
    const serverCpu = { agent: 0, raw: 0, relay: 0 };
    const serverPid = { agent: pid, relay: relayRun?.relay.pid };
    /**
     * Runs `work`; adds the machine's busy share (of all its CPUs) to `busyShare`, and the CPU
     * seconds of the agent or the relay in its own rounds to `serverCpu`.
     */
    const measured = async <T>(kind: Kind, work: () => Promise<T>): Promise<T> => {
      const machineBefore = machineCpu();
      const server = kind === 'raw' ? null : serverPid[kind];
      const serverBefore = server ? cpuSeconds(server) : 0;
      const result = await work();
      const machineAfter = machineCpu();
      const busy = machineAfter.busy - machineBefore.busy;
      busyShare[kind] += busy / (busy + machineAfter.idle - machineBefore.idle) / rounds;
      if (server) serverCpu[kind] += cpuSeconds(server) - serverBefore;
      return result;
    };
    await recordAgentGcPauses(agent);
    for (let turn = 0; turn < rounds; turn++) {
      record('raw', await measured('raw', () => rawShells.echo(1)));
      const metricsBefore = await scrapeMetrics(agent); // also starts a new event-loop delay window
      record('agent', await measured('agent', () => shells.echo(1)));
      const metricsAfter = await scrapeMetrics(agent);
      const loopDelay = (name: string) => Math.max(0, metricsAfter.get(name)! * 1000 - EVENT_LOOP_SAMPLE_MS);
      agentLoop.p99 = Math.max(agentLoop.p99, loopDelay('nodejs_eventloop_lag_p99_seconds'));
      agentLoop.max = Math.max(agentLoop.max, loopDelay('nodejs_eventloop_lag_max_seconds'));
      gcPauses += total(metricsAfter, 'nodejs_gc_duration_seconds_count') - total(metricsBefore, 'nodejs_gc_duration_seconds_count');
      gcMs += (total(metricsAfter, 'nodejs_gc_duration_seconds_sum') - total(metricsBefore, 'nodejs_gc_duration_seconds_sum')) * 1000;
      if (relayRun) record('relay', await measured('relay', () => relayRun.shells.echo(1)));
    }
    step(`${rounds} rounds of echoes`);
    const duringAgentGc = inFlightDuring(agentEchoes, await agentGcPauses(agent));
    const latencies = agentEchoes.latencies;
    const rawLatencies = rawEchoes.latencies;
    // After a full GC both times: what a burst left committed (V8's young generation grows under
    // load) or not yet collected is not counted as the sessions' memory.
    await collectGarbage(agent);
    const rssPerSession = (rssBytes(pid) - rssBefore) / sessions;
    const heapAfter = await memoryUsage(agent);
    const heapPerSession = (heapAfter.heapUsed - heapBefore.heapUsed) / sessions;
    step('memory read');
    const externalPerSession = (heapAfter.external - heapBefore.external) / sessions;
    const fdsPerSession = (fdCount(pid) - fdsBefore) / sessions;
    if (relayRun) await collectGarbage(relayRun.relay);
    const relayRssPerSession = relayRun ? (rssBytes(relayRun.relay.pid) - relayRun.rssBefore) / sessions : NaN;
    const relayFdsPerSession = relayRun ? (fdCount(relayRun.relay.pid) - relayRun.fdsBefore) / sessions : NaN;
    const relayLatencies = relayEchoes.latencies;
    const agentBursts = slowEchoBursts(agentEchoes.latencies, agentEchoes.sentAt, ECHO_GOAL_MS);
    const rawBursts = slowEchoBursts(rawEchoes.latencies, rawEchoes.sentAt, ECHO_GOAL_MS);
    /** How many slow echoes were in flight while `flags` says so. */
    const slowWhile = (echoes: Echoes, flags: boolean[]) => echoes.latencies.filter((latency, i) => latency > ECHO_GOAL_MS && flags[i]).length;
    const p99 = percentile(latencies, 99);
    return {
      id: 'concurrency',
      title: `${sessions} concurrent interactive sessions over ${podCount} containers`,
      figures: {
        sessions,
        'agent RSS per session KB': round(rssPerSession / 1024, 1),
        'of which JS heap in use KB': round(heapPerSession / 1024, 1),
        'of which external (buffers) KB': round(externalPerSession / 1024, 1),
        'least Node.js relay: RSS per session KB': round(relayRssPerSession / 1024, 1),
        'agent fds per session': round(fdsPerSession, 2),
        'least Node.js relay: fds per session': round(relayFdsPerSession, 2),
        'agent echo p50 ms': round(percentile(latencies, 50)),
        'agent echo p99 ms': round(p99),
        'raw engine echo p50 ms': round(percentile(rawLatencies, 50)),
        'raw engine echo p99 ms': round(percentile(rawLatencies, 99)),
        'agent / raw engine echo (p50)': round(percentile(latencies, 50) / percentile(rawLatencies, 50)),
        'least Node.js relay echo p50 / p99 ms': `${round(percentile(relayLatencies, 50))} / ${round(percentile(relayLatencies, 99))}`,
        // Where a slow echo's time went: how late the agent's and the clients' event loops ran (the
        // worst round), the agent's GC pauses, and whether slow echoes came in bursts (a stall of
        // everything in flight) or one by one.
        'agent event-loop delay during the echoes, p99 / max ms': `${round(agentLoop.p99, 1)} / ${round(agentLoop.max, 1)}`,
        'agent GC during the echoes: pauses / total ms': `${gcPauses} / ${round(gcMs, 1)}`,
        'client threads event-loop delay, agent echoes / raw echoes, max ms': `${round(clientLoop.agent.max, 1)} / ${round(clientLoop.raw.max, 1)}`,
        [`agent echoes > ${ECHO_GOAL_MS} ms / of which in bursts / during an agent GC pause / during a GC pause of their client thread`]:
          `${agentBursts.slow} / ${agentBursts.inBursts} / ${slowWhile(agentEchoes, duringAgentGc)} / ${slowWhile(agentEchoes, duringClientGc.agent)}`,
        [`raw engine echoes > ${ECHO_GOAL_MS} ms / of which in bursts / during a GC pause of their client thread`]:
          `${rawBursts.slow} / ${rawBursts.inBursts} / ${slowWhile(rawEchoes, duringClientGc.raw)}`,
        'machine CPU busy during the agent echoes / the relay echoes / the raw engine echoes %': `${round(busyShare.agent * 100, 0)} / ${round(busyShare.relay * 100, 0)} / ${round(busyShare.raw * 100, 0)}`,
        'agent CPU per echo µs': round((serverCpu.agent / latencies.length) * 1e6, 0),
        'least Node.js relay: CPU per echo µs': round((serverCpu.relay / relayLatencies.length) * 1e6, 0),
      },
      goals: [
        { text: '≤ 25 KB agent RSS per session', met: rssPerSession <= 25 * 1024, detail: `${round(rssPerSession / 1024, 1)} KB` },
        { text: '2 fds per session', met: fdsPerSession <= 2.05, detail: `${round(fdsPerSession, 2)}` },
        { text: `p99 echo ≤ ${ECHO_GOAL_MS} ms at ${sessions} sessions`, met: p99 <= ECHO_GOAL_MS, detail: `${round(p99)} ms` },
      ],
      chart: {
        kind: 'latency',
        unit: 'ms',
        series: [
          { label: 'agent echo', values: latencies },
          ...(relayRun ? [{ label: 'least Node.js relay echo', values: relayLatencies }] : []),
          { label: 'raw engine echo', values: rawLatencies },
        ],
      },
    };
  } finally {
    // Every step is tried, whatever failed before it; a failure here is said, and does not hide
    // the scenario's own outcome.
    const attempt = async (what: string, step: () => Promise<unknown>) =>
      step().catch((err: unknown) => void process.stderr.write(`bench: concurrency: ${what} failed: ${(err as Error).message}\n`));
    for (const pool of pools) await attempt('closing a shell pool', () => pool.close());
    for (const relay of relays) relay.stop();
    for (const agent of agents) await attempt('stopping the agent', () => agent.stop());
    step('shells closed, the agent stopped');
    await Promise.all(containers.map((c) => attempt(`removing container ${c.id.slice(0, 12)}`, () => c.remove())));
    step('containers removed');
  }
}
