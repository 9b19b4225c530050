// Whether a client's TCP peer is still there, from what the kernel knows of the connection
// (native/execlet-tcp.c, TCP_INFO). A pong proves a client alive, but a missing pong proves
// nothing: a client that has stopped reading (kubectl piped into `less`, a suspended client) holds
// its pong behind the output sent before the ping, exactly like a machine that vanished. Their
// kernels differ: a live peer acknowledges what reaches it and answers the window probes sent
// while its receive buffer is full; a vanished one answers nothing.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the module (beside execlet-spawn.node). */
export const DEFAULT_TCP_MODULE_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/native/execlet-tcp.node' : '../native/execlet-tcp.node', import.meta.url));

/**
 * How long a peer whose receive buffer is full may answer no window probe before it is taken for
 * gone (and at least two probes must have gone unanswered). The kernel probes a closed window at
 * growing intervals of at most TCP_RTO_MAX (120 s; Linux 6.15 lets an operator lower it, not
 * raise it), so a live peer that reads nothing for an hour still answers one at least every 120 s.
 */
export const WINDOW_PROBE_SILENCE_MS = 150_000;

interface TcpInfo {
  /** Segments sent and not acknowledged yet. */
  inFlight: number;
  /** Bytes queued in the kernel, not sent yet (held back by the peer's window). */
  notSent: number;
  /** Milliseconds since the peer last acknowledged anything. */
  sinceLastAckMs: number;
  /** Window probes sent since the peer last acknowledged anything. */
  probes: number;
}

interface TcpModule {
  tcpInfo(fd: number): TcpInfo;
}

let loaded: TcpModule | { unavailable: string } | undefined;
/** Two ticks of the kernel's clock at its coarsest (100 Hz), against Date.now(). */
const CLOCK_SLACK_MS = 20;

/** The module, or why it cannot be used (it is loaded once). */
export function loadTcpModule(path = DEFAULT_TCP_MODULE_PATH): TcpModule | { unavailable: string } {
  if (loaded && path === DEFAULT_TCP_MODULE_PATH) return loaded;
  let result: TcpModule | { unavailable: string };
  try {
    result = createRequire(import.meta.url)(path) as TcpModule;
  } catch (err) {
    result = { unavailable: `${path} does not load: ${(err as Error).message.split('\n')[0]}` };
  }
  if (path === DEFAULT_TCP_MODULE_PATH) loaded = result;
  return result;
}

/**
 * What the kernel says of the peer: there (it acknowledges), with whether output for it is still
 * in this side's kernel (not sent, or not acknowledged yet); or gone, and why.
 */
export type PeerVerdict = { there: true; holding: boolean } | { there: false; reason: string; kind: 'unacknowledged' | 'window_probes' };

export interface SilenceLimits {
  /**
   * Data in flight, and no acknowledgement at all for this long since something was sent (the
   * time the judge is given): the peer is gone (TCP retransmits meanwhile).
   */
  inFlightSilenceMs: number;
  /** A full receive window whose probes the peer has not answered for this long: it is gone (default WINDOW_PROBE_SILENCE_MS). */
  windowProbeSilenceMs?: number;
}

/**
 * Judges the peer; `sentAt` (Date.now()) is when something was sent to it that it must have
 * acknowledged by now — a ping at least `inFlightSilenceMs` old; null when there is none (then only
 * the window rule can find it gone). Null once the socket has closed.
 */
export type PeerJudge = (sentAt: number | null) => PeerVerdict | null;

/**
 * A judge of the socket's peer from the kernel's view, or null where the kernel cannot be asked
 * (the module did not load, the socket is not TCP — a unix socket — or is closed).
 *
 * The time since the last acknowledgement alone says nothing: after a quiet spell it is long
 * though the peer is there, and a line of output sent just before the check is in flight. The
 * peer is gone when data is in flight and nothing at all was acknowledged since `sentAt`, at least
 * `inFlightSilenceMs` ago: what was sent then is still unacknowledged, retransmitted meanwhile. Or
 * when its window is closed (nothing in flight, output held back) and two probes or more went
 * unanswered over `windowProbeSilenceMs`: a peer that is there answers every probe, and any answer
 * resets the kernel's count.
 */
export function kernelPeerJudge(socket: Socket, limits: SilenceLimits, module = loadTcpModule()): PeerJudge | null {
  const windowProbeSilenceMs = limits.windowProbeSilenceMs ?? WINDOW_PROBE_SILENCE_MS;
  if ('unavailable' in module) return null;
  const ask = (): TcpInfo | null => {
    // The handle is dropped as the socket is destroyed: its fd may then be another's.
    const fd = socket.destroyed ? -1 : ((socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1);
    if (fd < 0) return null;
    try {
      return module.tcpInfo(fd);
    } catch {
      return null;
    }
  };
  if (!ask()) return null;
  return (sentAt) => {
    const info = ask();
    if (!info) return null;
    const silentFor = `${Math.round(info.sinceLastAckMs / 1000)} s`;
    const sinceSentMs = sentAt === null ? 0 : Date.now() - sentAt;
    // The kernel counts in jiffies (1–10 ms): an acknowledgement just after the send may read as
    // up to a tick before it, so only one a tick or more before the send counts as before.
    const nothingAckedSinceSent = sentAt !== null && info.sinceLastAckMs >= sinceSentMs + CLOCK_SLACK_MS;
    if (info.inFlight > 0 && sinceSentMs >= limits.inFlightSilenceMs && nothingAckedSinceSent) {
      return { there: false, kind: 'unacknowledged', reason: `its kernel has acknowledged nothing sent to it for ${silentFor}: the client is gone` };
    }
    if (info.inFlight === 0 && info.notSent > 0 && info.probes >= 2 && info.sinceLastAckMs >= windowProbeSilenceMs) {
      return { there: false, kind: 'window_probes', reason: `its receive buffer is full and its kernel has answered no window probe for ${silentFor}: the client is gone` };
    }
    return { there: true, holding: info.inFlight > 0 || info.notSent > 0 };
  };
}
