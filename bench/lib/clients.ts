// The things being timed: one exec through the agent (v5 WebSocket), one through a raw Engine API
// client (create → start hijacked → inspect), one through the docker CLI, one nsenter process.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import type { ClientRequest } from 'node:http';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type Dockerode from 'dockerode';
import WebSocket from 'ws';
import { percentile } from './stats.js';
import type { TestAgent } from '../../test/helpers/agent.js';

/** What a client needs to reach an agent (or the bench's bare WebSocket endpoint). */
export type ExecServer = Pick<TestAgent, 'port' | 'caPem' | 'token'>;

export function execUrl(agent: Pick<TestAgent, 'port'>, namespace: string, pod: string, container: string, command: string[], extra = 'stdout=true&stderr=true'): string {
  const query = command.map((c) => `command=${encodeURIComponent(c)}`).join('&');
  return `wss://127.0.0.1:${agent.port}/api/v1/namespaces/${namespace}/pods/${pod}/exec?${query}&container=${encodeURIComponent(container)}&${extra}`;
}

/**
 * The client's TLS context, made once per agent as a long-lived client (kubectl's transport, a
 * console's browser) makes it once: building one per connection would time the client, not the agent.
 */
const contexts = new WeakMap<ExecServer, SecureContext>();
export function clientContext(agent: ExecServer): SecureContext {
  let context = contexts.get(agent);
  if (!context) contexts.set(agent, (context = createSecureContext({ ca: agent.caPem })));
  return context;
}

/** When the client reached each step of opening the exec stream, in ms from `new WebSocket`. */
export interface ClientPhases {
  /** TCP connected. */
  connected: number;
  /** TLS handshake done. */
  secured: number;
  /** The 101 Switching Protocols received: the agent has checked, authorized and accepted the exec. */
  upgraded: number;
}

export interface AgentExecResult {
  /** From the request until the Status frame: the client knows how the command ended. */
  ms: number;
  phases: ClientPhases;
  /** Until the connection is closed as well (the close handshake is one more round trip). */
  closedMs: number;
  bytes: number;
  status: string;
}

/** TLS sessions a client may resume, per agent (a browser or any long-lived client keeps them). */
const sessions = new WeakMap<ExecServer, Buffer>();

export interface AgentExecOptions {
  /** Resume the last TLS session with this agent (an abbreviated handshake) instead of a full one. */
  resumeTls?: boolean;
  onStdout?: (bytes: number) => void;
}

/** Opens an exec stream (a new TLS connection every time) and resolves when the server closes it; counts stdout bytes. */
export function agentExec(agent: ExecServer, url: string, options: AgentExecOptions = {}): Promise<AgentExecResult> {
  const started = performance.now();
  const session = options.resumeTls ? sessions.get(agent) : undefined;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v5.channel.k8s.io'], {
      // ws hands its options to tls.connect, which takes a ready context and a session to resume.
      ...({ secureContext: clientContext(agent), ...(session ? { session } : {}) } as WebSocket.ClientOptions),
      headers: { authorization: `Bearer ${agent.token}` },
      perMessageDeflate: false,
    });
    const phases: ClientPhases = { connected: 0, secured: 0, upgraded: 0 };
    (ws as unknown as { _req: ClientRequest })._req.once('socket', (socket: TLSSocket) => {
      socket.on('session', (ticket: Buffer) => sessions.set(agent, ticket));
      socket.once('connect', () => (phases.connected = performance.now() - started));
      socket.once('secureConnect', () => (phases.secured = performance.now() - started));
    });
    ws.once('upgrade', () => (phases.upgraded = performance.now() - started));
    let bytes = 0;
    let status = '';
    let statusMs = 0;
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) {
        bytes += data.length - 1;
        options.onStdout?.(data.length - 1);
      } else if (data[0] === 3) {
        status += data.subarray(1).toString();
        statusMs = performance.now() - started;
      }
    });
    ws.on('close', () => {
      const closedMs = performance.now() - started;
      resolve({ ms: statusMs || closedMs, phases, closedMs, bytes, status });
    });
    ws.on('error', reject);
  });
}

/** An exec's samples through the agent, each way a client can open its TLS connection. */
export class AgentLatencies {
  /** Until the Status, with a full TLS handshake. */
  readonly full: number[] = [];
  /** The same runs, until the connection is closed. */
  readonly fullClosed: number[] = [];
  /** Until the Status, resuming the client's last TLS session. */
  readonly resumed: number[] = [];
  /** Where the client was in each run, full handshake and resumed. */
  readonly fullPhases: ClientPhases[] = [];
  readonly resumedPhases: ClientPhases[] = [];

  /** The two latency series for a chart, as `what, full TLS handshake` and `what, resumed TLS session`. */
  series(what: string): Array<{ label: string; values: number[] }> {
    return [
      { label: `${what}, full TLS handshake`, values: this.full },
      { label: `${what}, resumed TLS session`, values: this.resumed },
    ];
  }

  /**
   * The two ways as paths for runInRounds: one run with a full handshake, one resuming the TLS
   * session of the last connection (the warm-up's in the first round).
   */
  paths(agent: ExecServer, url: string): Array<() => Promise<void>> {
    return [
      async () => {
        const run = await agentExec(agent, url);
        this.full.push(run.ms);
        this.fullClosed.push(run.closedMs);
        this.fullPhases.push(run.phases);
      },
      async () => {
        const run = await agentExec(agent, url, { resumeTls: true });
        this.resumed.push(run.ms);
        this.resumedPhases.push(run.phases);
      },
    ];
  }

  /**
   * The client's timelines at the median, with a full handshake and resumed, as figures of the form
   * `TCP connected / TLS done / 101 received / Status` (ms, each the median of its own step): how
   * much of a round trip is opening the connection.
   */
  timelineFigures(what = 'agent'): Record<string, string> {
    const median = (values: number[]) => percentile(values, 50).toFixed(1);
    const timeline = (phases: ClientPhases[], totals: number[]) =>
      [median(phases.map((p) => p.connected)), median(phases.map((p) => p.secured)), median(phases.map((p) => p.upgraded)), median(totals)].join(' / ');
    return {
      [`${what} client timeline p50 ms, full handshake: TCP / TLS / 101 / Status`]: timeline(this.fullPhases, this.full),
      [`${what} client timeline p50 ms, resumed session: TCP / TLS / 101 / Status`]: timeline(this.resumedPhases, this.resumed),
    };
  }
}

/** When the raw client reached each step, in ms from its first request. */
export interface RawPhases {
  /** The exec created. */
  created: number;
  /** The start answered (101, hijacked): the process is being started. */
  started: number;
  /** The output stream ended: the process has exited. */
  ended: number;
}

/** create → start (hijacked) → read to the end → inspect, with dockerode over a keep-alive socket. */
export async function rawEngineExec(docker: Dockerode, containerId: string, command: string[]): Promise<{ ms: number; phases: RawPhases }> {
  const started = performance.now();
  const exec = await docker.getContainer(containerId).exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
  const created = performance.now() - started;
  const socket = (await exec.start({ hijack: true, stdin: false } as Dockerode.ExecStartOptions)) as unknown as Socket;
  const hijacked = performance.now() - started;
  await new Promise<void>((resolve, reject) => {
    socket.on('data', () => undefined);
    socket.on('end', resolve);
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  const ended = performance.now() - started;
  await exec.inspect();
  return { ms: performance.now() - started, phases: { created, started: hijacked, ended } };
}

/** Runs a program to completion, output discarded; resolves with its wall time and exit code. */
export type ProcessTimer = (file: string, args: string[], env?: NodeJS.ProcessEnv) => Promise<{ ms: number; code: number | null }>;

/**
 * Compiles bench/native/time-once.c into `dir` and returns a ProcessTimer that runs programs through
 * it: the time is taken by that small program around its own posix_spawn, so it does not include
 * Node.js forking the bench's much larger process (milliseconds that the program itself does not cost).
 */
export function processTimer(dir: string): ProcessTimer {
  const launcher = join(dir, 'time-once');
  const source = fileURLToPath(new URL('../native/time-once.c', import.meta.url));
  try {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', launcher, source], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new Error(`bench: compiling ${source} failed (a C compiler is needed, as for npm run build): ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
  return (file, args, env = process.env) =>
    new Promise((resolve, reject) => {
      const child = spawn(launcher, [file, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
      child.on('error', reject);
      child.on('close', (code) => {
        const ms = Number.parseFloat(out);
        if (Number.isNaN(ms)) reject(new Error(`bench: timing ${file} failed (exit ${String(code)})`));
        else resolve({ ms, code });
      });
    });
}
