// A live session does not hold on to the HTTP request it was upgraded from (its headers carry the
// caller's bearer token; with the fastify request and reply it was ~3.5 KB per session): after a
// forced GC the request is gone while the session still runs, for an exec and for a stream URL.
// The agent runs in this process, so the test can watch the request with a WeakRef.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import WebSocket from 'ws';
import type { Agent } from '../../src/cli/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let docker: TestDocker;
let inProcess: InProcessAgent;
let container: TestContainer;
let agent: Agent;
let port: number;
let token: string;
let ca: string;
/** Every upgrade request the server saw, held weakly. */
const upgrades: Array<WeakRef<IncomingMessage>> = [];

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'held', 'app') });
  inProcess = await startInProcessAgent(docker, 'release');
  ({ agent, port, token, caPem: ca } = inProcess);
  agent.app.server.on('upgrade', (request: IncomingMessage) => upgrades.push(new WeakRef(request)));
});

after(async () => {
  await inProcess?.close();
  await container?.remove();
  await docker?.stop();
});

/** Opens a shell on `path` and resolves once it has echoed a line back: the session is running. */
async function runningShell(path: string, headers: Record<string, string>): Promise<WebSocket> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, ['v5.channel.k8s.io'], { ca, headers });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('echo alive\n')])));
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) output += data.subarray(1).toString();
      if (output.includes('alive')) resolve();
    });
    ws.once('error', reject);
    ws.once('close', () => reject(new Error(`the session closed before it echoed: ${output}`)));
  });
  return ws;
}

/** Collects garbage until the newest upgrade request is gone (true), or gives up after 10 rounds. */
async function lastUpgradeCollected(): Promise<boolean> {
  const last = upgrades.at(-1)!;
  for (let round = 0; round < 10; round++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    if (last.deref() === undefined) return true;
  }
  return false;
}

async function closeShell(ws: WebSocket): Promise<void> {
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('exit\n')]));
  await closed;
}

test('an exec session lets go of its upgrade request while it runs', async () => {
  const ws = await runningShell('/api/v1/namespaces/default/pods/held/exec?command=sh&container=app&stdin=true&stdout=true', { authorization: `Bearer ${token}` });
  assert.equal(await lastUpgradeCollected(), true, 'the upgrade request is still reachable from the live session');
  assert.equal(ws.readyState, WebSocket.OPEN);
  await closeShell(ws);
});

test('a session opened from a stream URL lets go of its upgrade request while it runs', async () => {
  const body = JSON.stringify({ target: { namespace: 'default', pod: 'held', container: 'app' }, command: ['sh'], stdin: true });
  const issued = await new Promise<{ url: string }>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path: '/v1/sessions', method: 'POST', ca, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(text) as { url: string }) : reject(new Error(`POST /v1/sessions: ${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  const ws = await runningShell(new URL(issued.url).pathname, {});
  assert.equal(await lastUpgradeCollected(), true, 'the upgrade request is still reachable from the live session');
  assert.equal(ws.readyState, WebSocket.OPEN);
  await closeShell(ws);
});
