// A client whose machine vanishes (test/helpers/netns-peer.ts: its network namespace's link goes
// down; no FIN, no reset) is dropped once its kernel stops answering — while output flows to it
// (what it has not acknowledged), and while its receive buffer is full and the process reads no
// stdin, where no pong could come from a client that is there either (its window probes go
// unanswered). Over plain TCP and over TLS as the agent serves it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { WebSocketChannels } from '../../src/protocol/channel-connection.js';
import { protocolTraits } from '../../src/protocol/subprotocols.js';
import { watchGone } from '../helpers/gone-watch.js';
import { startNetnsPeer, type NetnsPeer, type PeerClient } from '../helpers/netns-peer.js';

const ca = createCertificateAuthority('vanished-client test CA');

/** A machine of its own for each test, a server listening for it there, and channels over the connection. */
async function withVanishingClient(
  transport: 'tcp' | 'tls',
  options: { windowProbeSilenceMs?: number; stdin?: boolean },
  body: (session: { peer: NetnsPeer; client: PeerClient; serverSide: WebSocket; channels: WebSocketChannels; goneNow: Promise<number>; reason: () => string }) => Promise<void>,
): Promise<void> {
  const peer = await startNetnsPeer();
  const dir = mkdtempSync(join(tmpdir(), 'execlet-vanished-'));
  let server: WebSocketServer | null = null;
  let httpsServer: HttpsServer | null = null;
  try {
    let caFile: string | undefined;
    if (transport === 'tls') {
      const serving = createServingCertificate(ca, peer.hostAddress, [peer.hostAddress]);
      caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, ca.certPem);
      httpsServer = createHttpsServer({ key: serving.keyPem, cert: serving.certPem });
      server = new WebSocketServer({ server: httpsServer, handleProtocols: () => 'v5.channel.k8s.io' });
      httpsServer.listen(0, peer.hostAddress);
      await once(httpsServer, 'listening');
    } else {
      server = new WebSocketServer({ port: 0, host: peer.hostAddress, handleProtocols: () => 'v5.channel.k8s.io' });
      await once(server, 'listening');
    }
    const { port } = (httpsServer ?? server).address() as { port: number };
    const accepted = once(server, 'connection') as Promise<[WebSocket]>;
    const client = await peer.startClient(`${transport === 'tls' ? 'wss' : 'ws'}://${peer.hostAddress}:${port}`, caFile);
    const [serverSide] = await accepted;
    const channels = new WebSocketChannels(serverSide, protocolTraits('v5.channel.k8s.io'), {
      stdin: options.stdin ?? false,
      stdout: true,
      stderr: false,
      highWaterMark: 1 << 20,
      pingIntervalMs: 200,
      ...(options.windowProbeSilenceMs ? { windowProbeSilenceMs: options.windowProbeSilenceMs } : {}),
    });
    await body({ peer, client, serverSide, channels, ...watchGone(channels) });
  } finally {
    for (const client of server?.clients ?? []) client.terminate();
    server?.close();
    httpsServer?.close();
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const transport of ['tcp', 'tls'] as const) {
  describe(`over ${transport}`, () => {
    it('a client that vanishes while output trickles to it is dropped once its kernel has acknowledged nothing for a second', async () => {
      await withVanishingClient(transport, {}, async ({ peer, channels, goneNow, reason }) => {
        // top, tail -f: a line now and then, each acknowledged at once while the client is there.
        const trickle = setInterval(() => channels.write('stdout', Buffer.from('a line of output\n')), 50);
        try {
          await Promise.race([new Promise((resolve) => setTimeout(resolve, 1000)), goneNow]);
          assert.equal(reason(), '', 'kept while it is there');
          const vanishedAt = Date.now();
          await peer.vanish();
          const timeout = new Promise<'kept'>((resolve) => setTimeout(() => resolve('kept'), 5000).unref());
          const outcome = await Promise.race([goneNow, timeout]);
          assert.notEqual(outcome, 'kept', 'dropped within 5 s of vanishing');
          assert.match(reason(), /^its kernel has acknowledged nothing sent to it for [1-4] s: the client is gone$/);
          // The last acknowledgement came just before the link went down.
          assert.ok((outcome as number) - vanishedAt >= 900, `not before about a second of silence (${(outcome as number) - vanishedAt} ms)`);
        } finally {
          clearInterval(trickle);
        }
      });
    });

    it('a client that stopped reading, then vanished while the process reads no stdin, is dropped once its window probes go unanswered', async () => {
      await withVanishingClient(transport, { windowProbeSilenceMs: 1500, stdin: true }, async ({ peer, client, serverSide, channels, goneNow, reason }) => {
        // No pong can come now, from a client that is there either.
        channels.pauseInput();
        await client.command('pause');
        // More output than the client's receive buffer and the kernel's send buffer hold together
        // (at most 6 and 4 MiB by Linux's defaults): the agent holds the rest.
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        for (let sent = 0; sent < 16 * 1024 * 1024; sent += chunk.length) channels.write('stdout', chunk);
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 1000)), goneNow]);
        assert.equal(reason(), '', 'kept while it is there');
        assert.ok(serverSide.bufferedAmount > 0, 'output waits in the agent: the client reads nothing');
        await peer.vanish();
        const timeout = new Promise<'kept'>((resolve) => setTimeout(() => resolve('kept'), 6000).unref());
        assert.notEqual(await Promise.race([goneNow, timeout]), 'kept', 'dropped within 6 s of vanishing');
        assert.match(reason(), /^its receive buffer is full and its kernel has answered no window probe for [1-5] s: the client is gone$/);
      });
    });
  });
}
