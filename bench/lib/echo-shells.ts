// Interactive shells for the concurrency scenario — through the agent (v5 WebSocket with a TTY) or
// on a raw hijacked Engine API connection — and the echo test run over many of them.
import type { Socket } from 'node:net';
import type Dockerode from 'dockerode';
import WebSocket from 'ws';
import type { TestAgent } from '../../test/helpers/agent.js';
import { execUrl } from './clients.js';

export interface Shell {
  send(key: string): void;
  /** Calls `listener` with every piece of output from now on, until the returned function is called. */
  onOutput(listener: (text: string) => void): () => void;
  /** Ends the shell; resolves once its stream is closed. */
  close(): Promise<void>;
}

/** What a shell needs of an agent (plain data, so a worker thread can be given it). */
export type AgentAddress = Pick<TestAgent, 'port' | 'token' | 'caPem'>;

function unsubscribable(listeners: Array<(text: string) => void>, listener: (text: string) => void): () => void {
  listeners.push(listener);
  return () => {
    const index = listeners.indexOf(listener);
    if (index >= 0) listeners.splice(index, 1);
  };
}

export function agentShell(agent: AgentAddress, container: string, pod: string): Promise<Shell> {
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
          onOutput: (listener) => unsubscribable(listeners, listener),
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

export async function rawEngineShell(docker: Dockerode, containerId: string): Promise<Shell> {
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['sh'], AttachStdin: true, AttachStdout: true, Tty: true });
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
    onOutput: (listener) => unsubscribable(listeners, listener),
    // The engine leaves a TTY exec running when its connection goes: the shell must exit itself.
    close: () => {
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const stuck = setTimeout(() => socket.destroy(), 10_000);
      socket.end('exit\n');
      return closed.finally(() => clearTimeout(stuck));
    },
  };
}

/** Opens `count` shells, 20 at a time (the engine starts ~20 execs per second per container). */
export async function openShells(count: number, open: (index: number) => Promise<Shell>): Promise<Shell[]> {
  const shells: Shell[] = [];
  const opening: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    opening.push(open(i).then((shell) => void shells.push(shell)));
    if (opening.length % 20 === 0) await Promise.all(opening.splice(0));
  }
  await Promise.all(opening);
  return shells;
}

/** The echoes of a run: each one's latency (ms) and when its keystroke was sent (ms since the epoch). */
export interface Echoes {
  latencies: number[];
  sentAt: number[];
}

/**
 * Sends `x` every second to every shell for `rounds` seconds, shell `i` starting `startMs(i)` into
 * the first second (so the keystrokes are spread evenly); returns the echoes.
 */
export async function echoLatencies(shells: Shell[], rounds: number, startMs: (index: number) => number): Promise<Echoes> {
  const echoes: Echoes = { latencies: [], sentAt: [] };
  await Promise.all(
    shells.map(async (shell, index) => {
      let pending: { at: number; resolve: () => void } | null = null;
      const stopListening = shell.onOutput((text) => {
        if (pending && text.includes('x')) {
          echoes.latencies.push(performance.now() - pending.at);
          echoes.sentAt.push(performance.timeOrigin + pending.at);
          pending.resolve();
          pending = null;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, startMs(index)));
      for (let r = 0; r < rounds; r++) {
        const started = performance.now();
        await new Promise<void>((resolve) => {
          pending = { at: started, resolve };
          shell.send('x');
        });
        const elapsed = performance.now() - started;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - elapsed)));
      }
      stopListening();
      shell.send('\x15'); // ^U: clear the typed line
    }),
  );
  return echoes;
}
