// Closes connections that complete the TLS handshake and then send no request. Node.js bounds a
// request once its first byte arrives (headersTimeout) and an idle keep-alive connection after a
// request (keepAliveTimeout), but nothing bounds a connection that never starts one: anyone who
// reaches the port could hold connections (an fd and ~60 KB each), without authenticating, for as
// long as they like. A request or an upgrade on the connection ends the wait.
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';

/** How long a new TLS connection may wait before its first request arrives whole. */
export const FIRST_REQUEST_TIMEOUT_MS = 30_000;

export function closeSilentConnections(server: Server, timeoutMs = FIRST_REQUEST_TIMEOUT_MS): void {
  const waiting = new WeakMap<Socket, NodeJS.Timeout>();
  server.on('secureConnection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    timer.unref();
    waiting.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  const heard = (request: IncomingMessage): void => {
    const timer = waiting.get(request.socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    waiting.delete(request.socket);
  };
  // Before the app's own listeners: an upgrade is handed over (and the socket detached) in them.
  server.prependListener('request', heard);
  server.prependListener('upgrade', heard);
}
