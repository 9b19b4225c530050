// One thread of the concurrency scenario's clients: opens its share of the shells (through the
// agent or on raw engine connections), runs the echo test when told, reports the latencies, and
// closes its shells. Several threads, each with its own event loop, stand for many clients: one
// loop holding every connection would queue every echo behind the others (shell-pool.ts).
import { parentPort, workerData } from 'node:worker_threads';
import Dockerode from 'dockerode';
import { agentShell, echoLatencies, openShells, rawEngineShell, type AgentAddress } from './echo-shells.js';

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
export type FromEchoWorker = { type: 'opened' } | { type: 'latencies'; values: number[] } | { type: 'closed' };

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
      const values = await echoLatencies(shells, message.rounds, (index) => (sessionNumber(index) / data.sessions) * 1000);
      port.postMessage({ type: 'latencies', values } satisfies FromEchoWorker);
      return;
    }
    await Promise.all(shells.map((shell) => shell.close()));
    port.postMessage({ type: 'closed' } satisfies FromEchoWorker);
    port.close();
  })();
});
