// One thread of the concurrency scenario's clients: opens its share of the shells (through the
// agent or on raw engine connections), runs the echo test when told, reports the latencies, and
// closes its shells. Several threads, each with its own event loop, stand for many clients: one
// loop holding every connection would queue every echo behind the others (shell-pool.ts).
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import Dockerode from 'dockerode';
import { agentShell, echoLatencies, openShells, rawEngineShell, type AgentAddress, type Echoes } from './echo-shells.js';
import { inFlightDuring, type Pause } from './stats.js';

export interface EchoWorkerData {
  kind: 'agent' | 'raw';
  /** This thread's number, and how many threads share the sessions (session g is thread g % threads's). */
  thread: number;
  threads: number;
  sessions: number;
  /** Pods (agent) or container ids (raw), used round-robin by session number. */
  targets: string[];
  agent?: AgentAddress;
  dockerSocket?: string;
}

export type ToEchoWorker = { type: 'echo'; rounds: number } | { type: 'close' };
/** How late this thread's own event loop ran during the echoes (ms): a late client delays its echoes too. */
export interface ClientLoopDelay {
  p99: number;
  max: number;
}

/**
 * The echoes, how late this thread's loop ran, and for each echo whether this thread's own garbage
 * collector paused it while the echo was in flight (a client that cannot read delays its echo).
 */
export type FromEchoWorker =
  | { type: 'opened' }
  | { type: 'latencies'; echoes: Echoes; loopDelay: ClientLoopDelay; duringClientGc: boolean[] }
  | { type: 'closed' };

/** The loop-delay sampling interval (ms); each recorded delay includes it. */
const LOOP_SAMPLE_MS = 1;

const data = workerData as EchoWorkerData;
const port = parentPort!;
/** The scenario-wide number of this thread's `index`th shell. */
const sessionNumber = (index: number) => index * data.threads + data.thread;
const count = Math.ceil((data.sessions - data.thread) / data.threads);
const docker = data.kind === 'raw' ? new Dockerode({ socketPath: data.dockerSocket! }) : null;
const shells = await openShells(count, (index) => {
  const target = data.targets[sessionNumber(index) % data.targets.length]!;
  return data.kind === 'agent' ? agentShell(data.agent!, 'app', target) : rawEngineShell(docker!, target);
});
port.postMessage({ type: 'opened' } satisfies FromEchoWorker);
port.on('message', (message: ToEchoWorker) => {
  void (async () => {
    if (message.type === 'echo') {
      const loop = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
      const gcPauses: Pause[] = [];
      const keep = (entries: PerformanceEntry[]) => {
        for (const entry of entries) gcPauses.push({ from: performance.timeOrigin + entry.startTime, to: performance.timeOrigin + entry.startTime + entry.duration });
      };
      const gc = new PerformanceObserver((list) => keep(list.getEntries()));
      gc.observe({ entryTypes: ['gc'] });
      loop.enable();
      let echoes: Echoes;
      try {
        echoes = await echoLatencies(shells, message.rounds, (index) => (sessionNumber(index) / data.sessions) * 1000);
      } finally {
        loop.disable();
        keep(gc.takeRecords());
        gc.disconnect();
      }
      const lateMs = (ns: number) => Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS);
      port.postMessage({
        type: 'latencies',
        echoes,
        loopDelay: { p99: lateMs(loop.percentile(99)), max: lateMs(loop.max) },
        duringClientGc: inFlightDuring(echoes, gcPauses),
      } satisfies FromEchoWorker);
      return;
    }
    await Promise.all(shells.map((shell) => shell.close()));
    port.postMessage({ type: 'closed' } satisfies FromEchoWorker);
    port.close();
  })();
});
