// The agent holds at most maxConnections client connections (3 here): one more is closed as it is
// accepted, before any TLS handshake, and counted in execlet_connections_refused_total; once one
// closes, a new one is served again. A connection that never completes its TLS handshake does not
// hold its place for long (the handshake timeout, shortened here to 300 ms). The agent runs in this
// process, to read its metrics and shorten the timeout.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { connect as connectTcp } from 'node:net';
import * as tls from 'node:tls';
import { defaultSettings } from '../../src/config/settings.js';
import { registry } from '../../src/metrics.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { waitUntil } from '../helpers/proc-scan.js';

const MAX_CONNECTIONS = 3;
const HANDSHAKE_TIMEOUT_MS = 300;

let docker: TestDocker;
let agent: InProcessAgent;
const sockets: tls.TLSSocket[] = [];

before(async () => {
  docker = await useTestDocker();
  agent = await startInProcessAgent(docker, 'limited', { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS }, { maxConnections: MAX_CONNECTIONS, sessions: { ...defaultSettings().sessions, maxPerNode: 2 } });
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await agent?.close();
});

/** Opens a TLS connection: 'served' once its handshake is done, 'refused' if it closes first. */
async function connect(): Promise<{ outcome: 'served' | 'refused'; socket: tls.TLSSocket }> {
  const socket = tls.connect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem });
  sockets.push(socket);
  const outcome = await new Promise<'served' | 'refused'>((resolve) => {
    socket.once('secureConnect', () => resolve('served'));
    socket.once('error', () => resolve('refused'));
    socket.once('close', () => resolve('refused'));
  });
  return { outcome, socket };
}

async function metric(name: string): Promise<number> {
  const values = (await registry.getSingleMetric(name)!.get()).values;
  return values[0]?.value ?? 0;
}

const openConnections = () => new Promise<number>((resolve, reject) => agent.agent.app.server.getConnections((err, count) => (err ? reject(err) : resolve(count))));

test('a connection beyond maxConnections is closed before its handshake, counted, and the rest are served', async () => {
  const refusedBefore = await metric('execlet_connections_refused_total');
  const held = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const connection = await connect();
    assert.equal(connection.outcome, 'served', `connection ${i + 1}`);
    held.push(connection.socket);
  }
  assert.equal(await metric('execlet_open_connections'), MAX_CONNECTIONS);
  assert.equal((await connect()).outcome, 'refused');
  assert.equal(await metric('execlet_connections_refused_total'), refusedBefore + 1);

  held[0]!.destroy();
  await once(held[0]!, 'close');
  await waitUntil(async () => (await openConnections()) < MAX_CONNECTIONS, 5000, 'the agent to see the connection closed');
  assert.equal((await connect()).outcome, 'served', 'room again once one closed');
});

test('a connection that never starts its TLS handshake is closed after the handshake timeout', async () => {
  for (const held of sockets) held.destroy();
  await waitUntil(async () => (await openConnections()) === 0, 5000, 'the earlier connections to be closed');
  const socket = connectTcp({ host: '127.0.0.1', port: agent.port });
  await once(socket, 'connect');
  const connectedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const stillOpen = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('still open after 10 s')), 10_000)));
  try {
    await Promise.race([once(socket, 'close'), stillOpen]);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  assert.ok(performance.now() - connectedAt >= HANDSHAKE_TIMEOUT_MS - 50, 'not before the timeout');
});
