// Scenario 4: many concurrent interactive shells, each echoing a keystroke every second: the agent's
// memory and file descriptors per session, and the echo latency — next to the same echo measured on
// as many raw hijacked Engine API connections (no agent in between), so the engine's and the
// machine's own tail at that load is known; and what the agent's event loop and GC did meanwhile.
import type { Socket } from 'node:net';
import type Dockerode from 'dockerode';
import WebSocket from 'ws';
import type { TestAgent } from '../../test/helpers/agent.js';
import type { TestContainer } from '../../test/helpers/containers.js';
import { EVENT_LOOP_SAMPLE_MS, scrapeMetrics, total } from '../lib/agent-metrics.js';
import { execUrl } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { collectGarbage, INSPECTABLE, memoryUsage } from '../lib/gc.js';
import { tlsConnectionFloor } from '../lib/tls-baseline.js';
import { fdCount, percentile, round, rssBytes } from '../lib/stats.js';

interface Shell {
  send(key: string): void;
  onOutput(listener: (text: string) => void): void;
  /** Ends the shell; resolves once its stream is closed. */
  close(): Promise<void>;
}

function agentShell(agent: TestAgent, container: string, pod: string): Promise<Shell> {
  return new Promise((resolve, reject) => {
    const url = execUrl(agent, 'default', pod, container, ['sh'], 'stdin=true&stdout=true&tty=true');
    const ws = new WebSocket(url, ['v5.channel.k8s.io'], { ca: agent.caPem, headers: { authorization: `Bearer ${agent.token}` }, perMessageDeflate: false });
    const listeners: Array<(text: string) => void> = [];
    let prompted = false;
    ws.on('open', () => ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('{"Width":80,"Height":24}')])));
    ws.on('message', (data: Buffer) => {
      if (data[0] !== 1 || data.length === 1) return;
      const text = data.subarray(1).toString('latin1');
      if (!prompted && text.includes('#')) {
        prompted = true;
        resolve({
          send: (key) => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(key)])),
          onOutput: (listener) => listeners.push(listener),
          close: () => {
            ws.close();
            return ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((closed) => ws.once('close', () => closed()));
          },
        });
      }
      for (const listener of listeners) listener(text);
    });
    ws.on('error', reject);
  });
}

async function rawEngineShell(docker: Dockerode, container: TestContainer): Promise<Shell> {
  const exec = await docker.getContainer(container.id).exec({ Cmd: ['sh'], AttachStdin: true, AttachStdout: true, Tty: true });
  const socket = (await exec.start({ hijack: true, stdin: true, Tty: true } as Dockerode.ExecStartOptions)) as unknown as Socket;
  const listeners: Array<(text: string) => void> = [];
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (text.includes('#')) resolve();
      for (const listener of listeners) listener(text);
    });
  });
  return {
    send: (key) => socket.write(key),
    onOutput: (l) => listeners.push(l),
    // The engine leaves a TTY exec running when its connection goes: the shell must exit itself.
    close: () => {
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const stuck = setTimeout(() => socket.destroy(), 10_000);
      socket.end('exit\n');
      return closed.finally(() => clearTimeout(stuck));
    },
  };
}

/** Sends `x` every second to every shell (staggered) for `rounds` seconds; returns echo latencies (ms). */
async function echoLatencies(shells: Shell[], rounds: number): Promise<number[]> {
  const latencies: number[] = [];
  await Promise.all(
    shells.map(async (shell, index) => {
      let pending: { at: number; resolve: () => void } | null = null;
      shell.onOutput((text) => {
        if (pending && text.includes('x')) {
          latencies.push(performance.now() - pending.at);
          pending.resolve();
          pending = null;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, (index / shells.length) * 1000));
      for (let r = 0; r < rounds; r++) {
        const started = performance.now();
        await new Promise<void>((resolve) => {
          pending = { at: started, resolve };
          shell.send('x');
        });
        const elapsed = performance.now() - started;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - elapsed)));
      }
      shell.send('\x15'); // ^U: clear the typed line
    }),
  );
  return latencies;
}

/** Opens `count` shells, 20 at a time (the engine starts ~20 execs per second per container). */
async function openShells(count: number, open: (index: number) => Promise<Shell>): Promise<Shell[]> {
  const shells: Shell[] = [];
  const opening: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    opening.push(open(i).then((shell) => void shells.push(shell)));
    if (opening.length % 20 === 0) await Promise.all(opening.splice(0));
  }
  await Promise.all(opening);
  return shells;
}

export async function concurrency(ctx: BenchContext): Promise<ScenarioResult> {
  const sessions = ctx.quick ? 100 : 500;
  const podCount = ctx.quick ? 4 : 10;
  const rounds = ctx.quick ? 2 : 5;
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
    const rawShells = await openShells(sessions, (i) => rawEngineShell(ctx.dockerode, containers[i % podCount]!));
    const rawLatencies = await echoLatencies(rawShells, rounds);
    await Promise.all(rawShells.map((shell) => shell.close()));

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
    const shells = await openShells(sessions, (i) => agentShell(agent, 'app', pods[i % podCount]!));
    const metricsBefore = await scrapeMetrics(agent); // also starts a new event-loop delay window
    const latencies = await echoLatencies(shells, rounds);
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
    await Promise.all(shells.map((shell) => shell.close()));
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
