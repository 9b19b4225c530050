// A client whose machine vanishes (test/helpers/netns-peer.ts: its network namespace's link goes
// down; no FIN, no reset) is dropped once its kernel stops answering — while output flows to it
// (what it has not acknowledged), and while its receive buffer is full and the process reads no
// stdin, where no pong could come from a client that is there either (two window probes go
// unanswered; a client that is there answers each, however long it reads nothing), and after the end, with output still on its way to it. Over plain TCP and over TLS
// as the agent serves it; and through the agent, whose session then ends and its process with it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { defaultSettings } from '../../src/config/settings.js';
import { metrics } from '../../src/metrics.js';
import { WebSocketChannels } from '../../src/protocol/channel-connection.js';
import { successStatus } from '../../src/protocol/status.js';
import { protocolTraits } from '../../src/protocol/subprotocols.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker } from '../helpers/docker-daemon.js';
import { execPath } from '../helpers/exec-client.js';
import { droppedCount, watchGone } from '../helpers/gone-watch.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { startNetnsPeer, type NetnsPeer, type PeerClient } from '../helpers/netns-peer.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';

const ca = createCertificateAuthority('vanished-client test CA');

/** A machine of its own for each test, a server listening for it there, and channels over the connection. */
async function withVanishingClient(
  transport: 'tcp' | 'tls',
  options: { windowProbeSilenceMs?: number; stdin?: boolean; closeWaitMs?: number; maxCloseWaitMs?: number },
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
      ...(options.closeWaitMs ? { closeWaitMs: options.closeWaitMs, maxCloseWaitMs: options.maxCloseWaitMs } : {}),
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

/**
 * Writes more output than the client's receive buffer and the kernel's send buffer hold together
 * (at most 6 and 4 MiB by Linux's defaults): for a client that reads nothing, the agent holds the rest.
 */
function overfill(channels: WebSocketChannels): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let sent = 0; sent < 16 * 1024 * 1024; sent += chunk.length) channels.write('stdout', chunk);
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

    it('a client that reads nothing is kept for longer than the probe limit: it answers every window probe', async () => {
      await withVanishingClient(transport, { windowProbeSilenceMs: 1500, stdin: true }, async ({ client, serverSide, channels, goneNow, reason }) => {
        channels.pauseInput();
        await client.command('pause');
        overfill(channels);
        // The kernel's probes come further and further apart (0.2, 0.4, 0.8, 1.6, 3.2 s…): past
        // the limit of 1.5 s, the time since the last answer alone would call it gone.
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 6000)), goneNow]);
        assert.equal(reason(), '', 'kept while it is there');
        assert.ok(serverSide.bufferedAmount > 0, 'output waits in the agent: the client reads nothing');
      });
    });

    it('a client that stopped reading, then vanished while the process reads no stdin, is dropped once two window probes go unanswered', async () => {
      await withVanishingClient(transport, { windowProbeSilenceMs: 1500, stdin: true }, async ({ peer, client, channels, goneNow, reason }) => {
        // No pong can come now, from a client that is there either.
        channels.pauseInput();
        await client.command('pause');
        overfill(channels);
        await Promise.race([new Promise((resolve) => setTimeout(resolve, 1000)), goneNow]);
        assert.equal(reason(), '', 'kept while it is there');
        const droppedBefore = await droppedCount('window_probes');
        await peer.vanish();
        // The probes then due, ~1.6 and ~3.2 s apart, go unanswered.
        const timeout = new Promise<'kept'>((resolve) => setTimeout(() => resolve('kept'), 12_000).unref());
        assert.notEqual(await Promise.race([goneNow, timeout]), 'kept', 'dropped within 12 s of vanishing');
        assert.match(reason(), /^its receive buffer is full and its kernel has answered no window probe for \d+ s: the client is gone$/);
        assert.equal(await droppedCount('window_probes'), droppedBefore + 1, 'counted in execlet_clients_dropped_total');
      });
    });

    it('after the end, a client that stopped reading, then vanished, is closed once its window probes go unanswered, not at the longest wait', async () => {
      await withVanishingClient(transport, { windowProbeSilenceMs: 1500, closeWaitMs: 500, maxCloseWaitMs: 60_000 }, async ({ peer, client, serverSide, channels }) => {
        await client.command('pause');
        overfill(channels);
        channels.finish(successStatus());
        const serverClosed = once(serverSide, 'close').then(() => 'closed' as const);
        const wait = (ms: number) => new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms).unref());
        assert.equal(await Promise.race([serverClosed, wait(1500)]), 'open', 'waited on past the close wait while the client is there');
        await peer.vanish();
        assert.equal(await Promise.race([serverClosed, wait(12_000)]), 'closed', 'closed within 12 s of vanishing');
      });
    });
  });
}

describe('through the agent', () => {
  test('a client whose machine vanishes mid-session is dropped within seconds, its process ended, the session counted as a disconnect', async () => {
    const docker = await useTestDocker();
    const peer = await startNetnsPeer();
    let container: TestContainer | undefined;
    let agent: InProcessAgent | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'execlet-vanished-'));
    try {
      container = await startContainer(docker, { labels: podLabels('default', 'vanish', 'app') });
      // The agent listens on the link to the client's namespace, with its own certificate for that address.
      agent = await startInProcessAgent(docker, 'vanish', {}, { listen: `${peer.hostAddress}:0`, insecureSelfSignedOnNetwork: true, sessions: { ...defaultSettings().sessions, pingIntervalSeconds: 1 } });
      const caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, agent.caPem);
      const path = execPath('default', 'vanish', { command: ['sleep', '6500002'], container: 'app', stdout: true });
      await peer.startClient(`wss://${peer.hostAddress}:${agent.port}${path}`, caFile, agent.token);
      await waitUntil(() => pidsWithCommandLine('sleep 6500002').length === 1, 10_000, 'the session to run');
      await peer.vanish();
      // Pings every second: the next one goes unacknowledged, and a second later the client is gone.
      await waitUntil(() => pidsWithCommandLine('sleep 6500002').length === 0, 8_000, 'the process of the vanished client to be ended');
      const disconnects = async () => (await metrics.sessionsEnded.get()).values.find((v) => v.labels.outcome === 'disconnect')?.value ?? 0;
      await waitUntil(async () => (await disconnects()) >= 1, 5_000, 'the session to be counted as a disconnect');
      assert.ok((await droppedCount('unacknowledged')) >= 1, 'counted in execlet_clients_dropped_total as unacknowledged');
    } finally {
      await agent?.close();
      await container?.remove();
      await peer.stop();
      await docker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
