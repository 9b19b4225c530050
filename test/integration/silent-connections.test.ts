// A connection that completes the TLS handshake and sends no request is closed after the agent's
// first-request timeout (shortened here to 1 s); one that has sent a request, and an exec
// session's WebSocket, are not. The agent runs in this process to shorten the timeout.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { execPath, openExec } from '../helpers/exec-client.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';

// Long enough that a client in this process, on a busy machine, sends its request in time.
const TIMEOUT_MS = 1000;
/** Longer than the timeout by a wide margin: what is still open then was not closed by it. */
const WELL_PAST_MS = TIMEOUT_MS * 4;

let docker: TestDocker;
let container: TestContainer;
let agent: InProcessAgent;
const sockets: tls.TLSSocket[] = [];

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'silent', 'app') });
  agent = await startInProcessAgent(docker, 'silent', { firstRequestTimeoutMs: TIMEOUT_MS });
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await agent?.close();
  await container?.remove();
  await docker?.stop();
});

async function connect(): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem });
  sockets.push(socket);
  await once(socket, 'secureConnect');
  return socket;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)); // a span of time, not synchronisation

test('a connection that sends no request is closed by the agent', async () => {
  const socket = await connect();
  const connectedAt = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const open = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('still open after 10 s')), 10_000)));
  await Promise.race([once(socket, 'close'), open]).finally(() => clearTimeout(timer));
  assert.ok(performance.now() - connectedAt >= TIMEOUT_MS - 50, 'not before the timeout');
});

test('a connection that has sent a request waits, idle, past the timeout and serves the next one', async () => {
  const socket = await connect();
  const statusLine = async () => {
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    return chunk.toString('latin1').split('\r\n')[0];
  };
  assert.equal(await statusLine(), 'HTTP/1.1 200 OK');
  await pause(WELL_PAST_MS);
  assert.equal(socket.destroyed, false);
  assert.equal(await statusLine(), 'HTTP/1.1 200 OK');
});

test("an exec session's WebSocket stays open, idle, past the timeout", async () => {
  const ws = await openExec(agent, execPath('default', 'silent', { command: ['sleep', '1234601'], container: 'app', stdout: true }));
  try {
    await pause(WELL_PAST_MS);
    assert.equal(ws.readyState, WebSocket.OPEN);
  } finally {
    const closed = once(ws, 'close');
    ws.terminate();
    await closed;
  }
});
