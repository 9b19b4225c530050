// A request that reaches the agent while it closes — here one sent on a connection kept open by a
// request still in flight — is answered like every other refusal of a closing agent: a Kubernetes
// Status (503 ServiceUnavailable, "the agent is shutting down"), and the connection is closed
// after it. The request in flight is held by the engine (through a proxy) until the close has
// begun, and still gets its answer. The agent runs in this process, to close it without a signal.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startEngineProxy, type EngineProxy } from '../helpers/engine-proxy.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';

let docker: TestDocker;
let engine: EngineProxy;
let agent: InProcessAgent | undefined;

before(async () => {
  docker = await useTestDocker();
  engine = await startEngineProxy(docker.socketPath);
});

after(async () => {
  await agent?.close().catch(() => undefined);
  await engine?.stop();
});

/** HTTP/1.1 responses in the order they came, split from what one connection received until it closed. */
function responses(raw: string): Array<{ status: number; body: string }> {
  return raw
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter((part) => part.startsWith('HTTP/1.1 '))
    .map((part) => {
      const [head, ...rest] = part.split('\r\n\r\n');
      const chunked = /transfer-encoding: chunked/i.test(head!);
      let body = rest.join('\r\n\r\n');
      if (chunked) body = body.replace(/^[0-9a-f]+\r\n|\r\n[0-9a-f]+\r\n|\r\n0\r\n\r\n$/gi, '');
      return { status: Number(head!.slice(9, 12)), body };
    });
}

test('a request that arrives while the agent closes gets a Status 503; the one in flight its answer', async () => {
  agent = await startInProcessAgent(docker, 'closing', {}, { dockerHost: engine.host });
  const release = engine.holdRequests(/\/containers\/json/);
  try {
    const socket = tls.connect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem });
    await once(socket, 'secureConnect');
    let received = '';
    socket.setEncoding('latin1').on('data', (text: string) => (received += text));
    const closed = once(socket, 'close');
    const auth = `authorization: Bearer ${agent.token}\r\n`;
    const listing = new Promise<void>((resolve) =>
      engine.events.on('request', function seen(line: string) {
        if (!line.includes('/containers/json')) return;
        engine.events.off('request', seen);
        resolve();
      }),
    );
    // A request the engine holds keeps the connection from being closed as idle.
    socket.write(`GET /v1/targets HTTP/1.1\r\nhost: x\r\n${auth}\r\n`);
    await listing;
    const server = agent.agent.app.server;
    const closing = agent.close();
    agent = undefined;
    // Another on the same connection, while the agent closes.
    const arrived = once(server, 'request');
    socket.write(`GET /api/v1/namespaces/default/pods HTTP/1.1\r\nhost: x\r\n${auth}\r\n`);
    // The close waits for the request in flight; let it finish once the other has come.
    await arrived;
    release();
    await closing;
    await closed;
    const [first, second, ...more] = responses(received);
    assert.equal(first?.status, 200, received);
    assert.equal(second?.status, 503, received);
    assert.deepEqual(JSON.parse(second!.body), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the agent is shutting down',
      reason: 'ServiceUnavailable',
      code: 503,
    });
    assert.deepEqual(more, [], received);
    const closingHead = received.slice(received.indexOf('HTTP/1.1 503'), received.indexOf('\r\n\r\n', received.indexOf('HTTP/1.1 503')));
    assert.match(closingHead, /\r\nconnection: close(\r\n|$)/i, 'the connection is closed after it');
  } finally {
    release();
  }
});
