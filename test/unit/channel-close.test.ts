// The end of a session, and the liveness of a client behind a backlog, over a real WebSocket (ws,
// on loopback), each test once over plain TCP and once over TLS as the agent serves it (where a
// write, the ping's too, leaves the process later than it is made): the Status and the normal close come after all the output, and the close
// handshake waits until that output has left for the client — a client still reading a backlog
// when the process ends (a slow link) is not cut off by ws's 30 s close timer meanwhile; while
// output streams, a client that stops reading is kept as long as its kernel answers (and, where
// the kernel is not asked, a slow client is told from a gone one by whether it takes its output;
// an idle client that does not answer is dropped at the first check after the ping). A client
// whose machine vanishes is in vanished-client.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer, type ClientOptions } from 'ws';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { WebSocketChannels, type ChannelOptions } from '../../src/protocol/channel-connection.js';
import { successStatus } from '../../src/protocol/status.js';
import { protocolTraits } from '../../src/protocol/subprotocols.js';
import { droppedCount, watchGone } from '../helpers/gone-watch.js';

/** Channels of a session that writes stdout (1 MiB high-water mark, pinged every 100 ms), with `options` on top. */
function outputChannels(serverSide: WebSocket, options: Partial<ChannelOptions> = {}): WebSocketChannels {
  return new WebSocketChannels(serverSide, protocolTraits('v5.channel.k8s.io'), { stdin: false, stdout: true, stderr: false, highWaterMark: 1 << 20, pingIntervalMs: 100, ...options });
}

const ca = createCertificateAuthority('channel-close test CA');
const serving = createServingCertificate(ca, '127.0.0.1', ['127.0.0.1']);

for (const transport of ['tcp', 'tls'] as const) {
  describe(`over ${transport}`, () => {
    let server: WebSocketServer;
    let httpsServer: HttpsServer | null = null;

    before(async () => {
      if (transport === 'tls') {
        httpsServer = createHttpsServer({ key: serving.keyPem, cert: serving.certPem });
        server = new WebSocketServer({ server: httpsServer, handleProtocols: () => 'v5.channel.k8s.io' });
        httpsServer.listen(0, '127.0.0.1');
        await once(httpsServer, 'listening');
      } else {
        server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'v5.channel.k8s.io' });
        await once(server, 'listening');
      }
    });

    after(async () => {
      for (const client of server.clients) client.terminate();
      server.close();
      httpsServer?.close();
    });

    /** A WebSocket client of the server, trusting its certificate over TLS. */
    function newClient(options: ClientOptions = {}): WebSocket {
      const { port } = (httpsServer ?? server).address() as { port: number };
      const url = `${transport === 'tls' ? 'wss' : 'ws'}://127.0.0.1:${port}`;
      return new WebSocket(url, ['v5.channel.k8s.io'], { ...options, ...(transport === 'tls' ? { ca: ca.certPem } : {}) });
    }

    /** A client connected to the server, the server's side of it, and what the client receives (stdout bytes, the Status, the close code). */
    async function connectClient(): Promise<{ client: WebSocket; serverSide: WebSocket; clientSocket: Socket; received: { stdoutBytes: number; status: string }; closed: Promise<[number]> }> {
      const accepted = once(server, 'connection') as Promise<[WebSocket]>;
      const client = newClient();
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

    /** A client that never answers a ping (a peer gone without a close looks the same by its pongs), and the server's side of it. */
    async function connectSilentClient(): Promise<{ client: WebSocket; serverSide: WebSocket }> {
      const accepted = once(server, 'connection') as Promise<[WebSocket]>;
      const client = newClient({ autoPong: false });
      await once(client, 'open');
      const [serverSide] = await accepted;
      return { client, serverSide };
    }

    /** Bytes a finished session leaves queued for a client that reads nothing: more than the kernel's buffers take. */
    const BACKLOG_BYTES = 16 * 1024 * 1024;

    /**
     * A client that reads nothing (for now), and channels to it that have written BACKLOG_BYTES and
     * the end; when the end was, and what the client receives once it reads.
     */
    async function endWithBacklog(options: Partial<ChannelOptions> = {}) {
      const connected = await connectClient();
      connected.clientSocket.pause();
      const channels = new WebSocketChannels(connected.serverSide, protocolTraits('v5.channel.k8s.io'), { stdin: false, stdout: true, stderr: false, highWaterMark: 1 << 20, ...options });
      channels.attach({ stdin: () => undefined, stdinEnd: () => undefined, resize: () => undefined, clientGone: () => undefined });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      for (let sent = 0; sent < BACKLOG_BYTES; sent += chunk.length) channels.write('stdout', chunk);
      const finishedAt = Date.now();
      channels.finish(successStatus());
      return { ...connected, finishedAt };
    }

    /** The client reads again: it gets all of the backlog, the Status and a normal close. */
    async function readsAllOfIt({ clientSocket, received, closed }: Awaited<ReturnType<typeof endWithBacklog>>): Promise<void> {
      clientSocket.resume();
      const [code] = await closed;
      assert.equal(code, 1000);
      assert.equal(received.stdoutBytes, BACKLOG_BYTES);
      assert.equal(JSON.parse(received.status).status, 'Success');
    }

    it('closes only once the output and the Status have left for a client that is behind; the client gets all of it, then 1000', async () => {
      // The client falls behind: it reads nothing for now.
      const ended = await endWithBacklog();
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(ended.serverSide.bufferedAmount > 0, 'output is still queued in the agent');
      assert.equal(ended.serverSide.readyState, WebSocket.OPEN, 'no close handshake yet: output is still queued');
      await readsAllOfIt(ended);
    });

    it('after the end, a client that reads nothing past the close wait is waited for while output for it is still on this side, and then gets all of it and 1000', async () => {
      const ended = await endWithBacklog({ closeWaitMs: 300, maxCloseWaitMs: 20_000 });
      const serverClosed = once(ended.serverSide, 'close').then(() => true);
      // Five close waits.
      assert.equal(await Promise.race([serverClosed, new Promise((resolve) => setTimeout(() => resolve(false), 1500))]), false, 'still open: the client is there and its output is not all sent');
      await readsAllOfIt(ended);
    });

    it('after the end, where the kernel is not asked, a client that reads nothing is closed at the close wait', async () => {
      const { serverSide, clientSocket, finishedAt } = await endWithBacklog({ closeWaitMs: 300, maxCloseWaitMs: 20_000, kernelLiveness: false });
      await once(serverSide, 'close');
      const closedAfter = Date.now() - finishedAt;
      // 300 ms, and what encrypting the backlog's first megabytes takes a busy machine.
      assert.ok(closedAfter >= 250 && closedAfter < 3000, `closed ${closedAfter} ms after the end`);
      clientSocket.destroy();
    });

    it('a client that reads a backlog slowly is not taken for gone while its pongs wait behind it', async () => {
      const { serverSide, clientSocket, received, closed } = await connectClient();
      // A slow reader: a few milliseconds of reading every 40 ms.
      clientSocket.pause();
      const reader = setInterval(() => {
        clientSocket.resume();
        setTimeout(() => clientSocket.pause(), 3);
      }, 40);
      const channels = outputChannels(serverSide);
      const { reason: gone } = watchGone(channels);
      const total = 24 * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      try {
        for (let sent = 0; sent < total; sent += chunk.length) channels.write('stdout', chunk);
        channels.finish(successStatus());
        const [code] = await closed;
        assert.equal(gone(), '', 'not dropped as gone');
        assert.equal(code, 1000);
        assert.equal(received.stdoutBytes, total);
        assert.equal(JSON.parse(received.status).status, 'Success');
      } finally {
        clearInterval(reader);
      }
    });

    it('a client that stops reading altogether is kept while its kernel answers, and gets all the output once it reads again', async () => {
      const { serverSide, clientSocket, received, closed } = await connectClient();
      // kubectl piped into `less`: it reads nothing, so its pongs wait behind the output.
      clientSocket.pause();
      const channels = outputChannels(serverSide, { behindWithoutProgressMs: 1000 });
      const { goneNow, reason: gone } = watchGone(channels);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let produced = 0;
      let waiting = false;
      let stopped = false;
      const produce = (): void => {
        waiting = false;
        while (!stopped && !channels.closed) {
          produced += chunk.length;
          if (!channels.write('stdout', chunk)) {
            waiting = true;
            channels.onceDrained(produce);
            return;
          }
        }
      };
      produce();
      try {
        // Thirty ping intervals, three times the grace given where the kernel is not asked.
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 3000)), goneNow]);
        assert.equal(gone(), '', 'a client that reads nothing but whose kernel answers is not dropped');
        assert.ok(waiting && serverSide.bufferedAmount > 0, 'the output waits in the agent: the client took none of it for 3 s');
        stopped = true;
        clientSocket.resume();
        channels.onceDrained(() => channels.finish(successStatus()));
        const [code] = await closed;
        assert.equal(gone(), '');
        assert.equal(code, 1000);
        assert.equal(received.stdoutBytes, produced, 'every byte arrived');
        assert.equal(JSON.parse(received.status).status, 'Success');
      } finally {
        serverSide.terminate();
      }
    });

    it('an idle client that never answers a ping is kept while its kernel acknowledges them, and pinged on', async () => {
      const { client, serverSide } = await connectSilentClient();
      let pings = 0;
      client.on('ping', () => pings++);
      const channels = outputChannels(serverSide);
      const { goneNow, reason: gone } = watchGone(channels);
      try {
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 1500)), goneNow]);
        assert.equal(gone(), '', 'not dropped: its kernel acknowledges every ping');
        // About 15; a busy machine's stalled event loop may cost a few.
        assert.ok(pings >= 5, `pinged on meanwhile (${pings} pings in 15 intervals)`);
      } finally {
        client.terminate();
      }
    });

    it('where the kernel is not asked: while output streams, a client that takes it slowly stays; one that stops taking it is dropped as gone', async () => {
      const { serverSide, clientSocket } = await connectClient();
      // A slow reader, as over a thin link: a few milliseconds of reading every 40 ms, so the pings
      // sit behind a backlog of about 1 MiB plus what the kernel holds, for several ping intervals.
      clientSocket.pause();
      let reading = true;
      const reader = setInterval(() => {
        if (!reading) return;
        clientSocket.resume();
        setTimeout(() => clientSocket.pause(), 3);
      }, 40);
      const channels = outputChannels(serverSide, { behindWithoutProgressMs: 2000, kernelLiveness: false });
      const { goneNow, reason: gone } = watchGone(channels);
      // The process keeps writing, as fast as the client lets it (the producer waits for drain).
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const produce = (): void => {
        while (!channels.closed) {
          if (!channels.write('stdout', chunk)) {
            channels.onceDrained(produce);
            return;
          }
        }
      };
      produce();
      try {
        let taken = 0;
        clientSocket.on('data', (data: Buffer) => (taken += data.length));
        // 20 ping intervals of slow reading: the client is taking output throughout, and is kept.
        const slowFor = new Promise((resolve) => setTimeout(resolve, 2000));
        await Promise.race([slowFor, goneNow]);
        assert.equal(gone(), '', 'a slow client that takes its output is not dropped');
        assert.ok(taken > 2 * 1024 * 1024, `the client took ${taken} bytes meanwhile`);
        // Five intervals in which it takes nothing (a write that takes the kernel a while to make room
        // for shows no progress meanwhile), well within the grace (2 s, so that a stalled event loop
        // does not stretch the pause past it): it is kept.
        reading = false;
        clientSocket.pause();
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 500)), goneNow]);
        assert.equal(gone(), '', 'a pause within the grace is not the end');
        reading = true;
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 300)), goneNow]);
        assert.equal(gone(), '');
        // The client stops reading altogether (it vanished): the kernel's buffers fill, nothing more
        // leaves, and once it has taken nothing for the grace (2 s here) it is taken for gone.
        reading = false;
        clientSocket.pause();
        await goneNow;
        assert.match(gone(), /no pong, and none of the output queued for it taken for [23] s: the client is gone/);
      } finally {
        clearInterval(reader);
        serverSide.terminate();
      }
    });

    it('a client that goes away while its input is paused (the process reads no stdin) is noticed by the pings', async () => {
      const { client, serverSide } = await connectClient();
      const channels = outputChannels(serverSide, { stdin: true });
      const { goneNow, reason: gone } = watchGone(channels);
      // The process reads no stdin: nothing more of the client is read, its close neither.
      channels.pauseInput();
      // The client sends stdin the process does not take, until every buffer on the way is full.
      const stdin = Buffer.alloc(64 * 1024 + 1, 0x62);
      stdin[0] = 0;
      while (client.bufferedAmount === 0) {
        client.send(stdin);
        await new Promise((resolve) => setImmediate(resolve));
      }
      client.terminate();
      const timeout = new Promise<'not noticed'>((resolve) => setTimeout(() => resolve('not noticed'), 3000).unref());
      assert.equal(await Promise.race([goneNow.then(() => 'noticed'), timeout]), 'noticed', 'the client that went away was noticed within 3 s');
      assert.match(gone(), /connection (closed|error)/);
    });

    it('where the kernel is not asked: an idle client that does not answer is dropped at the first check after its ping, not one later', async (t) => {
      const { client, serverSide } = await connectSilentClient();
      t.mock.timers.enable({ apis: ['setInterval'] });
      const channels = outputChannels(serverSide, { pingIntervalMs: 1000, kernelLiveness: false });
      const { reason: gone } = watchGone(channels);
      const droppedBefore = await droppedCount('no_pong');
      const pinged = once(client, 'ping');
      t.mock.timers.tick(1000); // the ping
      await pinged; // it has reached the client (which does not answer)
      t.mock.timers.tick(1000); // the check: no pong, and its own ping's bytes are no sign of the client
      assert.equal(gone(), 'no pong within 1000 ms: the client is gone');
      assert.equal(await droppedCount('no_pong'), droppedBefore + 1, 'counted in execlet_clients_dropped_total');
      client.terminate();
    });

    it('where the kernel is not asked: a line of output not yet handed to the kernel at the check (this turn\'s cork) is no backlog: a client that does not answer is dropped', async (t) => {
      const { client, serverSide } = await connectSilentClient();
      t.mock.timers.enable({ apis: ['setInterval'] });
      const channels = outputChannels(serverSide, { pingIntervalMs: 1000, kernelLiveness: false });
      const { goneNow, reason: gone } = watchGone(channels);
      try {
        const pinged = once(client, 'ping');
        t.mock.timers.tick(1000); // the ping
        await pinged; // it has reached the client (which does not answer)
        channels.write('stdout', Buffer.from('a line of output\n')); // held by the cork until this turn ends
        t.mock.timers.tick(1000); // the check, in the same turn
        const timeout = new Promise<'kept'>((resolve) => setTimeout(() => resolve('kept'), 1000).unref());
        assert.notEqual(await Promise.race([goneNow, timeout]), 'kept', 'dropped at that check');
        assert.equal(gone(), 'no pong within 1000 ms: the client is gone');
      } finally {
        client.terminate();
      }
    });

    it('where the kernel is not asked: output trickling out while nothing waits for the kernel is no sign of the client: one that does not answer is dropped', async () => {
      const { client, serverSide } = await connectSilentClient();
      const channels = outputChannels(serverSide, { kernelLiveness: false });
      const { goneNow, reason: gone } = watchGone(channels);
      // A process that prints a little now and then (top, tail -f): the kernel takes all of it at once.
      const trickle = setInterval(() => channels.write('stdout', Buffer.from('a line of output\n')), 10);
      try {
        const timeout = new Promise<'kept'>((resolve) => setTimeout(() => resolve('kept'), 2000).unref());
        assert.equal(await Promise.race([goneNow.then(() => 'dropped'), timeout]), 'dropped', 'dropped within 2 s (20 intervals)');
        assert.equal(gone(), 'no pong within 100 ms: the client is gone');
      } finally {
        clearInterval(trickle);
        client.terminate();
      }
    });
  });
}

it("a producer told to wait is always called back, even when the socket's own high-water mark is above the option (Node.js 22: 64 KiB)", async () => {
  const httpServer = createHttpServer({ highWaterMark: 64 * 1024 });
  const wss = new WebSocketServer({ server: httpServer, handleProtocols: () => 'v5.channel.k8s.io' });
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  const { port } = httpServer.address() as { port: number };
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${port}`, ['v5.channel.k8s.io']);
  try {
    await once(client, 'open');
    const [serverSide] = await accepted;
    const channels = new WebSocketChannels(serverSide, protocolTraits('v5.channel.k8s.io'), { stdin: false, stdout: true, stderr: false, highWaterMark: 16 * 1024 });
    watchGone(channels);
    // 20 KB: over the option, under the socket's mark. A 'drain' comes only after a write the socket refused.
    for (const size of [20_000, 100_000]) {
      if (channels.write('stdout', Buffer.alloc(size, 0x61))) continue;
      const drained = new Promise<'drained'>((resolve) => channels.onceDrained(() => resolve('drained')));
      const stuck = new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 3000).unref());
      assert.equal(await Promise.race([drained, stuck]), 'drained', `the producer waiting after ${size} bytes was called back`);
    }
  } finally {
    client.terminate();
    wss.close();
    httpServer.close();
  }
});
