// Caps the agent's open client connections (maxConnections): one more is closed as it is accepted,
// before its TLS handshake, and counted; how many are open is reported at each scrape. Sessions
// have their own limits, but a connection costs ~60 KB and a handshake whether or not it ever
// authenticates: without a cap, a flood of connections is bounded only by fds and memory.
import type { Server } from 'node:net';
import { metrics, setOpenConnectionsProbe } from '../metrics.js';

/** At most one warning per this long while connections are being refused. */
const WARN_EVERY_MS = 60_000;

export function limitConnections(server: Server, max: number, warn: (refusedSinceLastWarning: number) => void): void {
  server.maxConnections = max;
  let lastWarning = -Infinity;
  let refused = 0;
  server.on('drop', () => {
    metrics.connectionsRefused.inc();
    refused++;
    const now = performance.now();
    if (now - lastWarning < WARN_EVERY_MS) return;
    lastWarning = now;
    warn(refused);
    refused = 0;
  });
  setOpenConnectionsProbe(() => new Promise((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count))));
}
