// A session is set up before its WebSocket opens (audited, registered and, without a TTY, its
// process started while the upgrade completes): a request that is no real upgrade sets nothing up,
// a connection that ends before the WebSocket opens leaves no process and no session behind, and
// neither does a client that leaves while its process is still starting.
// The agent runs in this process, so the test can see which way each session went.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { Agent } from '../../src/cli/agent.js';
import { registry } from '../../src/metrics.js';
import { BegunSession } from '../../src/server/session-runner.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';

let docker: TestDocker;
let inProcess: InProcessAgent;
let container: TestContainer;
let agent: Agent;
let port: number;
let token: string;
let ca: string;
let abandoned = 0;
const abandon = BegunSession.prototype.abandon;
const begin = BegunSession.begin;
/** Set by a test: the connection of the next session set up is cut right after its set-up. */
let cutNextConnection = false;
let lastUpgradeSocket: Socket | null = null;

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'setup', 'app') });
  inProcess = await startInProcessAgent(docker, 'setup');
  ({ agent, port, token, caPem: ca } = inProcess);
  BegunSession.prototype.abandon = function (this: BegunSession, reason: string) {
    abandoned++;
    return abandon.call(this, reason);
  };
  agent.app.server.prependListener('upgrade', (_request: unknown, socket: Socket) => (lastUpgradeSocket = socket));
  // The connection dying between the session's set-up and the handshake's 101, made certain.
  BegunSession.begin = (...args: Parameters<typeof begin>) => {
    const session = begin(...args);
    if (cutNextConnection) {
      cutNextConnection = false;
      lastUpgradeSocket?.destroy();
    }
    return session;
  };
});

after(async () => {
  BegunSession.prototype.abandon = abandon;
  BegunSession.begin = begin;
  await inProcess?.close();
  await container?.remove();
  await docker?.stop();
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await registry.getSingleMetric(name)!.get()).values.filter((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value));
  return values.reduce((sum, v) => sum + v.value, 0);
}

/** Sends `request` on a new TLS connection, ends it (or not), and resolves with all it received once it closes. */
function exchange(request: string, end: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => (end ? socket.end(request) : socket.write(request)));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      received += text;
      if (!end && received.includes('\r\n\r\n') && received.includes('"kind":"Status"')) socket.end();
    });
    // A connection the agent cuts may end in a reset: what was received until then is the answer.
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    socket.on('close', () => resolve(received));
  });
}

const execRequest = (command: string[], container: string, connection: string) =>
  `GET /api/v1/namespaces/default/pods/setup/exec?${command.map((arg) => `command=${encodeURIComponent(arg)}`).join('&')}&container=${container}&stdout=true HTTP/1.1\r\n` +
  `Host: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nConnection: ${connection}\r\nUpgrade: websocket\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`;

test('WebSocket headers without `Connection: Upgrade`: a 400 Status, and nothing set up or started', async () => {
  const started = await metric('execlet_sessions_started_total');
  const received = await exchange(execRequest(['sleep', '1234551'], 'app', 'keep-alive'), false);
  assert.match(received, /^HTTP\/1\.1 400 /);
  assert.match(received, /Upgrade request required/);
  assert.equal(await metric('execlet_sessions_started_total'), started, 'no session was set up');
  assert.deepEqual(pidsWithCommandLine('sleep 1234551'), []);
});

test('a connection that ends before its WebSocket opens: the process started for it is ended, the session recorded as a disconnect', async () => {
  for (const [mode, marker] of [
    ['app', 'sleep 1234552'],
    ['app.nsenter', 'sleep 1234553'],
  ] as const) {
    const before = { abandoned, disconnects: await metric('execlet_sessions_ended_total', { outcome: 'disconnect' }) };
    cutNextConnection = true;
    const received = await exchange(execRequest(marker.split(' '), mode, 'Upgrade'), false);
    assert.equal(received, '', `${mode}: no 101 for a connection that has ended`);
    await waitUntil(async () => (await metric('execlet_sessions_ended_total', { outcome: 'disconnect' })) === before.disconnects + 1, 10_000, `${mode}: the session to end`);
    assert.equal(abandoned, before.abandoned + 1, `${mode}: abandoned before the WebSocket opened`);
    assert.equal(await metric('execlet_sessions_active'), 0);
    await waitUntil(() => pidsWithCommandLine(marker).length === 0, 5_000, `${mode}: ${marker} to be gone`);
  }
});

test('a client that leaves as soon as its WebSocket opens, while a process that writes without pause starts: ended and recorded', async () => {
  const marker = 'yes 1234562';
  const disconnects = await metric('execlet_sessions_ended_total', { outcome: 'disconnect' });
  const ws = new WebSocket(`wss://127.0.0.1:${port}/api/v1/namespaces/default/pods/setup/exec?command=yes&command=1234562&container=app&stdout=true`, ['v5.channel.k8s.io'], {
    ca,
    headers: { authorization: `Bearer ${token}` },
  });
  await once(ws, 'open');
  ws.terminate();
  // The process is ended with its output unread: its exit must not wait for that output.
  await waitUntil(async () => (await metric('execlet_sessions_ended_total', { outcome: 'disconnect' })) === disconnects + 1, 10_000, 'the session to end');
  assert.equal(await metric('execlet_sessions_active'), 0);
  await waitUntil(() => pidsWithCommandLine(marker).length === 0, 5_000, `${marker} to be gone`);
});
