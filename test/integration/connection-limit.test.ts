// The agent holds at most maxConnections client connections (3 here). At the cap, a connection that
// holds nothing (no request in flight, no session) gives way: the oldest such is closed and counted
// in execlet_connections_evicted_total, and the new one is served. Only when every connection is
// busy (an authenticated request that has come whole, body and all, or a session) is one more
// closed as it is accepted, before any TLS handshake, and counted in
// execlet_connections_refused_total. A connection that never completes its TLS handshake does not
// hold its place for long (the handshake timeout, shortened here to 1 s). The agent runs in this
// process, to read its metrics and shorten the timeout; its sessions run in a real container.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { request } from 'node:https';
import { connect as connectTcp } from 'node:net';
import * as tls from 'node:tls';
import { defaultSettings } from '../../src/config/settings.js';
import { registry } from '../../src/metrics.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startEngineProxy, type EngineProxy } from '../helpers/engine-proxy.js';
import { execPath, onMessage, openExec } from '../helpers/exec-client.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { waitUntil } from '../helpers/proc-scan.js';

const MAX_CONNECTIONS = 3;
// Long enough that every handshake in this file completes on a busy machine, where one stalled turn of
// the shared event loop can take a few hundred milliseconds.
const HANDSHAKE_TIMEOUT_MS = 1000;

let docker: TestDocker;
let agent: InProcessAgent;
let container: TestContainer;
let engine: EngineProxy;
const sockets: tls.TLSSocket[] = [];

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'capped', 'app') });
  engine = await startEngineProxy(docker.socketPath);
  agent = await startInProcessAgent(
    docker,
    'limited',
    { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
    { dockerHost: engine.host, maxConnections: MAX_CONNECTIONS, sessions: { ...defaultSettings().sessions, maxPerNode: 2 } },
  );
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await agent?.close();
  await engine?.stop();
  await container?.remove();
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

/** Resolves when the socket has closed, whether with an error (a reset) or not. */
const closed = (socket: tls.TLSSocket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));

async function closeAll(): Promise<void> {
  for (const held of sockets) held.destroy();
  await waitUntil(async () => (await openConnections()) === 0, 5000, 'the earlier connections to be closed');
}

test('at maxConnections, the oldest connection that holds nothing is closed to make room, and counted', async () => {
  const evictedBefore = await metric('execlet_connections_evicted_total');
  const refusedBefore = await metric('execlet_connections_refused_total');
  const held = [];
  for (let i = 0; i < MAX_CONNECTIONS - 1; i++) {
    const connection = await connect();
    assert.equal(connection.outcome, 'served', `connection ${i + 1}`);
    held.push(connection.socket);
  }
  const oldestClosed = closed(held[0]!);
  // The third takes the last place: the oldest idle one gives way, so the next finds room.
  const third = await connect();
  assert.equal(third.outcome, 'served');
  await oldestClosed;
  assert.equal(await metric('execlet_connections_evicted_total'), evictedBefore + 1);
  const secondClosed = closed(held[1]!);
  assert.equal((await connect()).outcome, 'served', 'a fourth, while three were open');
  await secondClosed;
  assert.equal(third.socket.destroyed, false, 'the newer ones stay');
  assert.equal(await metric('execlet_connections_evicted_total'), evictedBefore + 2);
  assert.equal(await metric('execlet_connections_refused_total'), refusedBefore, 'nothing refused while idle ones could give way');
  await waitUntil(async () => (await openConnections()) === MAX_CONNECTIONS - 1, 5000, 'the agent to see the evicted connections closed');
});

test('connections with a session never give way: beyond them a new one is refused before its handshake, then an idle one makes room', async () => {
  await closeAll();
  const evictedBefore = await metric('execlet_connections_evicted_total');
  const refusedBefore = await metric('execlet_connections_refused_total');
  // Two sessions (the node's limit here), each a connection with a live shell.
  const sessions = await Promise.all(
    [1, 2].map(async () => {
      const ws = await openExec(agent, execPath('default', 'capped', { command: ['sh', '-c', 'echo ready; exec sleep 600'], container: 'app', stdout: true }));
      await new Promise<void>((resolve) => onMessage(ws, (data) => data[0] === 1 && resolve()));
      return ws;
    }),
  );
  try {
    const idle = await connect();
    assert.equal(idle.outcome, 'served', 'the third place, taken by a connection that holds nothing');
    assert.equal(await metric('execlet_connections_evicted_total'), evictedBefore, 'no session gave way');
    const idleClosed = closed(idle.socket);
    assert.equal((await connect()).outcome, 'refused', 'every place was taken when it came');
    assert.equal(await metric('execlet_connections_refused_total'), refusedBefore + 1);
    // The idle one gives way to the next.
    await idleClosed;
    assert.equal(await metric('execlet_connections_evicted_total'), evictedBefore + 1);
    await waitUntil(async () => (await openConnections()) < MAX_CONNECTIONS, 5000, 'the agent to see the idle connection closed');
    assert.equal((await connect()).outcome, 'served');
    for (const ws of sessions) assert.equal(ws.readyState, ws.OPEN, 'the sessions are still open');
  } finally {
    for (const ws of sessions) ws.terminate();
  }
});

/** A GET on a connection of its own; resolves with its status, or 'closed' when the connection closes first. */
function get(path: string, token?: string): { done: Promise<number | 'closed'>; sent: Promise<void> } {
  let sent!: () => void;
  const sentPromise = new Promise<void>((resolve) => (sent = resolve));
  const done = new Promise<number | 'closed'>((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: agent.port, path, ca: agent.caPem, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode!));
      },
    );
    req.once('socket', (socket) => sockets.push(socket as tls.TLSSocket));
    req.once('finish', () => sent());
    req.once('error', () => resolve('closed'));
    req.end();
  });
  return { done, sent: sentPromise };
}

test("an authenticated caller's request in flight is never closed to make room; an unauthenticated one's is", async () => {
  await closeAll();
  // The engine answers neither the container list (/v1/targets, authenticated) nor the ping (/readyz, open to all) until released.
  const release = engine.holdRequests(/\/(containers\/json|_ping)/);
  const listed = engine.events;
  try {
    const seen = (pattern: RegExp) => new Promise<void>((resolve) => listed.on('request', function onRequest(line: string) {
      if (pattern.test(line)) {
        listed.off('request', onRequest);
        resolve();
      }
    }));
    const listing = seen(/containers\/json/);
    const authenticated = get('/v1/targets', agent.token);
    await listing; // the oldest connection, with its request in flight
    const pinging = seen(/_ping/);
    const probe = get('/readyz');
    await pinging;
    // The third takes the last place: the oldest connection without an authenticated caller's request gives way.
    const third = await connect();
    assert.equal(third.outcome, 'served');
    assert.equal(await probe.done, 'closed', 'the unauthenticated request was closed to make room');
    release();
    assert.equal(await authenticated.done, 200, 'the authenticated request was left to finish');
  } finally {
    release();
  }
});

test("an authenticated caller's request whose body is still coming holds no protected place: it gives way", async () => {
  await closeAll();
  const evictedBefore = await metric('execlet_connections_evicted_total');
  const trickling: tls.TLSSocket[] = [];
  const trickledClosed: Array<Promise<void>> = [];
  for (let i = 0; i < MAX_CONNECTIONS; i++) {
    const connection = await connect();
    assert.equal(connection.outcome, 'served', `connection ${i + 1}`);
    trickledClosed.push(closed(connection.socket));
    // The headers (authenticated) and a part of the body: the rest never comes.
    const received = once(agent.agent.app.server, 'request');
    connection.socket.write(`POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${agent.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"target":`);
    await received;
    await new Promise((resolve) => setImmediate(resolve)); // its onRequest hooks (authentication) have run
    trickling.push(connection.socket);
  }
  // The last place was taken by the third: the oldest gave way then, the next oldest now.
  assert.equal((await connect()).outcome, 'served', 'a place was made');
  await Promise.all(trickledClosed.slice(0, 2));
  assert.equal(await metric('execlet_connections_evicted_total'), evictedBefore + 2);
});

test('a connection that never starts its TLS handshake is closed after the handshake timeout', async () => {
  await closeAll();
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
