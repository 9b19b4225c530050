// Caps the agent's open client connections (maxConnections). Sessions have their own limits, but a
// connection costs ~60 KB and a handshake whether or not it ever authenticates: without a cap, a
// flood of connections is bounded only by fds and memory. A connection is protected while it is
// an authenticated caller's — a request of theirs in flight, or a session — and every other one
// (a TLS handshake under way, an idle keep-alive, an unauthenticated request such as a probe's)
// can give way: when a connection takes the last place, the oldest unprotected one is closed and
// counted as evicted, so that nobody can keep others out (a console, the kubelet's probes) by
// opening connections and sitting on them, without a credential. Only when every other connection
// is protected is a new one closed as it is accepted, before its handshake (Node.js's own
// maxConnections), and counted as refused. How many are open is read at each scrape.
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { metrics, setOpenConnectionsProbe } from '../metrics.js';

/** At most one warning per this long while connections are being refused or evicted. */
const WARN_EVERY_MS = 60_000;

export interface ConnectionLimitReport {
  /** Connections refused as they were accepted since the last warning. */
  refused: number;
  /** Unprotected connections closed to make room since the last warning. */
  evicted: number;
}

export interface ConnectionGuard {
  /**
   * Protects the connection of `socket` from eviction: while `response` is in flight (an
   * authenticated request), or — without a response — for as long as it is open (a session).
   */
  protect(socket: Socket, response?: ServerResponse): void;
}

/** One open connection: the accepted socket, and the TLS socket once its handshake is done. */
interface Connection {
  /** Its peer's address and port: how its TLS socket is found. */
  peer: string;
  raw: Socket;
  secure?: Socket;
  /** Protected requests in flight. */
  requests: number;
  session: boolean;
  /** No longer counted as open: destroyed here, or closed. */
  gone: boolean;
}

/** The same connection seen by its accepted socket and its TLS socket: the peer's address and port. */
function peerOf(socket: Socket): string | undefined {
  return socket.remotePort === undefined ? undefined : `${socket.remoteAddress}|${socket.remotePort}`;
}

export function limitConnections(server: Server, max: number, warn: (report: ConnectionLimitReport) => void): ConnectionGuard {
  // Node.js itself closes what comes beyond the cap, before anything is allocated for it.
  server.maxConnections = max;
  const byPeer = new Map<string, Connection>();
  /** Unprotected connections, oldest first (a Set keeps insertion order; re-adding moves one last). */
  const unprotected = new Set<Connection>();
  /** Open connections as Node.js counts them: one leaves as it is destroyed, not when it has closed. */
  let open = 0;
  let lastWarning = -Infinity;
  const report: ConnectionLimitReport = { refused: 0, evicted: 0 };

  const maybeWarn = () => {
    const now = performance.now();
    if (now - lastWarning < WARN_EVERY_MS) return;
    lastWarning = now;
    warn({ ...report });
    report.refused = 0;
    report.evicted = 0;
  };
  /** Closes the oldest unprotected connection other than `except`. */
  const evictOne = (except?: Connection) => {
    for (const connection of unprotected) {
      if (connection === except) continue;
      leave(connection);
      connection.secure?.destroy();
      connection.raw.destroy();
      metrics.connectionsEvicted.inc();
      report.evicted++;
      maybeWarn();
      return;
    }
  };
  /** Stops counting a connection as open (once). */
  const leave = (connection: Connection) => {
    if (connection.gone) return;
    connection.gone = true;
    open--;
    unprotected.delete(connection);
    if (byPeer.get(connection.peer) === connection) byPeer.delete(connection.peer);
  };
  const connectionOf = (socket: Socket) => {
    const peer = peerOf(socket);
    const connection = peer === undefined ? undefined : byPeer.get(peer);
    return connection && !connection.gone ? connection : undefined;
  };

  server.prependListener('connection', (raw: Socket) => {
    open++;
    const peer = peerOf(raw);
    if (peer === undefined) {
      // Already gone (reset as it was accepted): counted until its close, never tracked.
      raw.once('close', () => open--);
      return;
    }
    const connection: Connection = { peer, raw, requests: 0, session: false, gone: false };
    byPeer.set(peer, connection);
    unprotected.add(connection);
    raw.once('close', () => leave(connection));
    // This one took the last place: make room for the next now, or Node.js refuses it.
    if (open >= max) evictOne(connection);
  });
  server.prependListener('secureConnection', (secure: Socket) => {
    const connection = connectionOf(secure);
    if (connection) connection.secure = secure;
  });
  server.on('drop', () => {
    metrics.connectionsRefused.inc();
    report.refused++;
    maybeWarn();
    // Every other connection was protected as it came; one that is not now gives way to the next.
    evictOne();
  });
  setOpenConnectionsProbe(() => new Promise((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count))));

  return {
    protect(socket, response) {
      const connection = connectionOf(socket);
      if (!connection) return;
      unprotected.delete(connection);
      if (!response) {
        connection.session = true;
        return;
      }
      connection.requests++;
      response.once('close', () => {
        connection.requests--;
        if (connection.requests === 0 && !connection.session && !connection.gone) unprotected.add(connection);
      });
    },
  };
}
