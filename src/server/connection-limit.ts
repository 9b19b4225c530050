// Caps the agent's open client connections (maxConnections). Sessions have their own limits, but a
// connection costs ~60 KB and a handshake whether or not it ever authenticates: without a cap, a
// flood of connections is bounded only by fds and memory. At the cap, a connection that holds
// nothing — its TLS handshake under way, or no request in flight and no session — gives way to the
// next one: the oldest such is closed and counted as evicted, so a client that opens connections
// and sits on them cannot keep everyone else (a console, the kubelet's probes) out. Only when every
// connection is busy (a request in flight, an upgraded session) is a new one closed as it is
// accepted, before its handshake, and counted as refused. How many are open is read at each scrape.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { metrics, setOpenConnectionsProbe } from '../metrics.js';

/** At most one warning per this long while connections are being refused or evicted. */
const WARN_EVERY_MS = 60_000;

export interface ConnectionLimitReport {
  /** Connections refused as they were accepted since the last warning. */
  refused: number;
  /** Idle connections closed to make room since the last warning. */
  evicted: number;
}

/** A connection while it is open: the accepted socket, and the TLS socket once its handshake is done. */
interface Connection {
  raw: Socket;
  secure?: Socket;
  /** Requests in flight on it. */
  requests: number;
  upgraded: boolean;
}

/** The same connection seen by its accepted socket and its TLS socket: the peer's address and port. */
function peerOf(socket: Socket): string | undefined {
  return socket.remotePort === undefined ? undefined : `${socket.remoteAddress}|${socket.remotePort}`;
}

export function limitConnections(server: Server, max: number, warn: (report: ConnectionLimitReport) => void): void {
  // Node.js itself closes what comes beyond the cap, before anything is allocated for it.
  server.maxConnections = max;
  const byPeer = new Map<string, Connection>();
  /** Connections that hold nothing, oldest first (a Set keeps insertion order; re-adding moves one last). */
  const idle = new Set<Connection>();
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
  /** Closes the oldest connection that holds nothing, other than `except`. */
  const evictOne = (except?: Connection) => {
    for (const connection of idle) {
      if (connection === except) continue;
      idle.delete(connection);
      connection.secure?.destroy();
      connection.raw.destroy();
      metrics.connectionsEvicted.inc();
      report.evicted++;
      maybeWarn();
      return;
    }
  };
  const connectionOf = (socket: Socket) => {
    const peer = peerOf(socket);
    return peer === undefined ? undefined : byPeer.get(peer);
  };

  server.prependListener('connection', (raw: Socket) => {
    open++;
    const peer = peerOf(raw);
    const connection: Connection | undefined = peer === undefined ? undefined : { raw, requests: 0, upgraded: false };
    if (connection) {
      byPeer.set(peer!, connection);
      idle.add(connection);
    }
    raw.once('close', () => {
      open--;
      if (!connection) return;
      idle.delete(connection);
      if (byPeer.get(peer!) === connection) byPeer.delete(peer!);
    });
    // This one took the last place: make room for the next now, or Node.js refuses it.
    if (open >= max) evictOne(connection);
  });
  server.prependListener('secureConnection', (secure: Socket) => {
    const connection = connectionOf(secure);
    if (connection) connection.secure = secure;
  });
  server.prependListener('request', (request: IncomingMessage, response: ServerResponse) => {
    const connection = connectionOf(request.socket);
    if (!connection) return;
    connection.requests++;
    idle.delete(connection);
    response.once('close', () => {
      connection.requests--;
      if (connection.requests === 0 && !connection.upgraded && !connection.raw.destroyed) idle.add(connection);
    });
  });
  server.prependListener('upgrade', (request: IncomingMessage) => {
    const connection = connectionOf(request.socket);
    if (!connection) return;
    connection.upgraded = true;
    idle.delete(connection);
  });
  server.on('drop', () => {
    metrics.connectionsRefused.inc();
    report.refused++;
    maybeWarn();
    // Everything was busy as it came; whatever holds nothing now gives way to the next.
    evictOne();
  });
  setOpenConnectionsProbe(() => new Promise((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count))));
}
