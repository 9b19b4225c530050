// The things being timed: one exec through the agent (v5 WebSocket), one through a raw Engine API
// client (create → start hijacked → inspect), one through the docker CLI, one nsenter process.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import type Dockerode from 'dockerode';
import WebSocket from 'ws';
import type { TestAgent } from '../../test/helpers/agent.js';

export function execUrl(agent: TestAgent, namespace: string, pod: string, container: string, command: string[], extra = 'stdout=true&stderr=true'): string {
  const query = command.map((c) => `command=${encodeURIComponent(c)}`).join('&');
  return `wss://127.0.0.1:${agent.port}/api/v1/namespaces/${namespace}/pods/${pod}/exec?${query}&container=${encodeURIComponent(container)}&${extra}`;
}

/** Opens an exec stream and resolves when the server closes it; counts stdout bytes. */
export function agentExec(agent: TestAgent, url: string, onStdout?: (bytes: number) => void): Promise<{ ms: number; bytes: number; status: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['v5.channel.k8s.io'], { ca: agent.caPem, headers: { authorization: `Bearer ${agent.token}` }, perMessageDeflate: false });
    let bytes = 0;
    let status = '';
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) {
        bytes += data.length - 1;
        onStdout?.(data.length - 1);
      } else if (data[0] === 3) status += data.subarray(1).toString();
    });
    ws.on('close', () => resolve({ ms: performance.now() - started, bytes, status }));
    ws.on('error', reject);
  });
}

/** create → start (hijacked) → read to the end → inspect, with dockerode over a keep-alive socket. */
export async function rawEngineExec(docker: Dockerode, containerId: string, command: string[]): Promise<number> {
  const started = performance.now();
  const exec = await docker.getContainer(containerId).exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
  const socket = (await exec.start({ hijack: true, stdin: false } as Dockerode.ExecStartOptions)) as unknown as Socket;
  await new Promise<void>((resolve, reject) => {
    socket.on('data', () => undefined);
    socket.on('end', resolve);
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  await exec.inspect();
  return performance.now() - started;
}

/** Runs a program to completion, output discarded; resolves with the wall time. */
export function timeProcess(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; code: number | null }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'ignore'], env });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ ms: performance.now() - started, code }));
  });
}
