// The end of a session over a real WebSocket (ws, on loopback, no TLS): the Status and the normal
// close come after all the output, and the close handshake waits until that output has left for
// the client — a client still reading a backlog when the process ends (a slow link) is not cut
// off by ws's 30 s close timer while the backlog is still queued in the agent.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { WebSocketChannels } from '../../src/protocol/channel-connection.js';
import { successStatus } from '../../src/protocol/status.js';
import { protocolTraits } from '../../src/protocol/subprotocols.js';

let server: WebSocketServer;

before(async () => {
  server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'v5.channel.k8s.io' });
  await once(server, 'listening');
});

after(async () => {
  for (const client of server.clients) client.terminate();
  server.close();
});

/** A client connected to the server, the server's side of it, and what the client receives (stdout bytes, the Status, the close code). */
async function connectClient(): Promise<{ client: WebSocket; serverSide: WebSocket; clientSocket: Socket; received: { stdoutBytes: number; status: string }; closed: Promise<[number]> }> {
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, ['v5.channel.k8s.io']);
  await once(client, 'open');
  const [serverSide] = await accepted;
  const received = { stdoutBytes: 0, status: '' };
  client.on('message', (data: Buffer) => {
    if (data[0] === 1) received.stdoutBytes += data.length - 1;
    else if (data[0] === 3) received.status += data.subarray(1).toString();
  });
  const closed = once(client, 'close') as Promise<[number]>;
  return { client, serverSide, clientSocket: (client as unknown as { _socket: Socket })._socket, received, closed };
}

it('closes only once the output and the Status have left for a client that is behind; the client gets all of it, then 1000', async () => {
  const { serverSide, clientSocket, received, closed } = await connectClient();
  // The client falls behind: it reads nothing for now.
  clientSocket.pause();

  const channels = new WebSocketChannels(serverSide, protocolTraits('v5.channel.k8s.io'), { stdin: false, stdout: true, stderr: false, highWaterMark: 1 << 20 });
  channels.attach({ stdin: () => undefined, stdinEnd: () => undefined, resize: () => undefined, clientGone: () => undefined });
  const total = 16 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let sent = 0; sent < total; sent += chunk.length) channels.write('stdout', chunk);
  channels.finish(successStatus());
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(serverSide.bufferedAmount > 0, 'output is still queued in the agent');
  assert.equal(serverSide.readyState, WebSocket.OPEN, 'no close handshake yet: output is still queued');

  clientSocket.resume();
  const [code] = await closed;
  assert.equal(code, 1000);
  assert.equal(received.stdoutBytes, total);
  assert.equal(JSON.parse(received.status).status, 'Success');
});

it('a client that reads a backlog slowly is not taken for gone while its pongs wait behind it', async () => {
  const { serverSide, clientSocket, received, closed } = await connectClient();
  // A slow reader: a few milliseconds of reading every 40 ms.
  clientSocket.pause();
  const reader = setInterval(() => {
    clientSocket.resume();
    setTimeout(() => clientSocket.pause(), 3);
  }, 40);
  let gone = '';
  const channels = new WebSocketChannels(serverSide, protocolTraits('v5.channel.k8s.io'), { stdin: false, stdout: true, stderr: false, highWaterMark: 1 << 20, pingIntervalMs: 100 });
  channels.attach({ stdin: () => undefined, stdinEnd: () => undefined, resize: () => undefined, clientGone: (reason) => (gone = reason) });
  const total = 24 * 1024 * 1024;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  try {
    for (let sent = 0; sent < total; sent += chunk.length) channels.write('stdout', chunk);
    channels.finish(successStatus());
    const [code] = await closed;
    assert.equal(gone, '', 'not dropped as gone');
    assert.equal(code, 1000);
    assert.equal(received.stdoutBytes, total);
    assert.equal(JSON.parse(received.status).status, 'Success');
  } finally {
    clearInterval(reader);
  }
});
