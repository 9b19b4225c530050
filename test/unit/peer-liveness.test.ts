// The kernel's verdict on a client that missed a pong (src/protocol/peer-liveness.ts), from the
// TCP_INFO figures the module reports, faked here: data in flight with nothing acknowledged since
// a ping sent at least the limit ago, or a full window whose probes go unanswered past theirs, is a
// client gone; anything else is a client there. Where the kernel cannot be asked, there is no judge. The real module, over real
// connections, is in channel-close.test.ts, vanished-client.test.ts and paused-client.test.ts.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { kernelPeerJudge, loadTcpModule, WINDOW_PROBE_SILENCE_MS } from '../../src/protocol/peer-liveness.js';

type Info = { inFlight: number; notSent: number; sinceLastAckMs: number; probes: number };

function fakeSocket(fd = 7): Socket & { destroyed: boolean } {
  return { destroyed: false, _handle: { fd } } as unknown as Socket & { destroyed: boolean };
}

function judgeOf(infos: Info[], socket = fakeSocket()) {
  const asked: number[] = [];
  const module = {
    tcpInfo(fd: number) {
      asked.push(fd);
      return infos.length > 1 ? infos.shift()! : infos[0]!;
    },
  };
  return { judge: kernelPeerJudge(socket, { inFlightSilenceMs: 10_000 }, module), asked };
}

const quiet: Info = { inFlight: 0, notSent: 0, sinceLastAckMs: 0, probes: 0 };
/** A ping sent this long ago. */
const sentAgo = (ms: number) => Date.now() - ms;

describe('kernelPeerJudge', () => {
  it('data in flight and nothing acknowledged since the ping, sent the limit or longer ago: gone, and says for how long', () => {
    const { judge } = judgeOf([quiet, { ...quiet, inFlight: 1, notSent: 40, sinceLastAckMs: 32_400 }]);
    assert.deepEqual(judge!(sentAgo(12_000)), { there: false, kind: 'unacknowledged', reason: 'its kernel has acknowledged nothing sent to it for 32 s: the client is gone' });
  });

  it('after a quiet spell, a line in flight just now while the ping was acknowledged: there (the time since the last ACK alone is long)', () => {
    // The ping 20 s ago was acknowledged a millisecond after it left; a line of output is in flight.
    const { judge } = judgeOf([quiet, { ...quiet, inFlight: 1, sinceLastAckMs: 19_999 }]);
    assert.deepEqual(judge!(sentAgo(20_000)), { there: true, holding: true });
  });

  it('an acknowledgement within a tick after the ping is not taken for one before it', () => {
    const { judge } = judgeOf([quiet, { ...quiet, inFlight: 1, sinceLastAckMs: 20_004 }]);
    assert.deepEqual(judge!(sentAgo(20_000)), { there: true, holding: true });
  });

  it('nothing acknowledged since a ping sent less than the limit ago: not yet gone', () => {
    const { judge } = judgeOf([quiet, { ...quiet, inFlight: 3, sinceLastAckMs: 60_000 }]);
    assert.deepEqual(judge!(sentAgo(9_000)), { there: true, holding: true });
  });

  it('a full window (nothing in flight, output held back) whose probes are answered: there, however long it reads nothing', () => {
    const { judge } = judgeOf([quiet, { ...quiet, notSent: 4_000_000, sinceLastAckMs: 200_000, probes: 1 }]);
    assert.deepEqual(judge!(sentAgo(20_000)), { there: true, holding: true });
  });

  it('a full window with two probes or more unanswered over 150 s: gone', () => {
    const { judge } = judgeOf([quiet, { ...quiet, notSent: 4_000_000, sinceLastAckMs: WINDOW_PROBE_SILENCE_MS, probes: 2 }]);
    assert.deepEqual(judge!(sentAgo(20_000)), { there: false, kind: 'window_probes', reason: 'its receive buffer is full and its kernel has answered no window probe for 150 s: the client is gone' });
  });

  it('a full window with probes unanswered for less than 150 s: there — the kernel probes at least every 120 s', () => {
    const { judge } = judgeOf([quiet, { ...quiet, notSent: 4_000_000, sinceLastAckMs: 121_000, probes: 3 }]);
    assert.deepEqual(judge!(sentAgo(20_000)), { there: true, holding: true });
  });

  it('the limit for probes can be set', () => {
    const module = { tcpInfo: () => ({ ...quiet, notSent: 10, sinceLastAckMs: 2_000, probes: 2 }) };
    const judge = kernelPeerJudge(fakeSocket(), { inFlightSilenceMs: 1_000, windowProbeSilenceMs: 1_500 }, module);
    assert.equal(judge!(Date.now())?.there, false);
  });

  it('everything acknowledged, however long ago: there (a client that reads nothing but whose kernel took the ping), nothing held on this side', () => {
    const { judge } = judgeOf([quiet, { ...quiet, sinceLastAckMs: 3_600_000 }]);
    assert.deepEqual(judge!(sentAgo(3_600_000)), { there: true, holding: false });
  });

  it('asks about the socket’s own fd, read anew each time, and answers null once the socket is destroyed', () => {
    const socket = fakeSocket(11);
    const { judge, asked } = judgeOf([quiet], socket);
    judge!(Date.now());
    socket.destroyed = true;
    assert.equal(judge!(Date.now()), null);
    assert.deepEqual(asked, [11, 11]);
  });

  it('no judge where the kernel cannot be asked: a unix socket (the module throws), no fd, or the module not loaded', () => {
    const throwing = {
      tcpInfo: () => {
        throw Object.assign(new Error('tcpInfo: getsockopt(TCP_INFO): Operation not supported'), { errno: 95 });
      },
    };
    assert.equal(kernelPeerJudge(fakeSocket(), { inFlightSilenceMs: 1000 }, throwing), null);
    assert.equal(kernelPeerJudge({ destroyed: false, _handle: null } as unknown as Socket, { inFlightSilenceMs: 1000 }, { tcpInfo: () => quiet }), null);
    assert.equal(kernelPeerJudge(fakeSocket(), { inFlightSilenceMs: 1000 }, { unavailable: 'missing' }), null);
    const missing = loadTcpModule('/nonexistent/execlet-tcp.node');
    assert.ok('unavailable' in missing);
    assert.match(missing.unavailable, /\/nonexistent\/execlet-tcp\.node does not load/);
  });

  it('the module npm run build makes loads here, and judges a real connection', async () => {
    assert.ok(!('unavailable' in loadTcpModule()), 'execlet-tcp.node must load here (npm run build)');
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect((server.address() as { port: number }).port, '127.0.0.1');
    const [serverSide] = await accepted;
    try {
      const judge = kernelPeerJudge(serverSide, { inFlightSilenceMs: 1000 });
      assert.ok(judge, 'a TCP connection can be judged');
      assert.deepEqual(judge(Date.now()), { there: true, holding: false });
      serverSide.destroy();
      assert.equal(judge(Date.now()), null, 'not once it is destroyed');
    } finally {
      client.destroy();
      server.close();
    }
  });
});
