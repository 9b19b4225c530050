// Runs a session on an upgraded WebSocket without holding on to the HTTP request it came from.
// @fastify/websocket would keep that request for as long as the socket lives: through the
// ServerResponse it assigns to the socket (which holds the request and its headers, the bearer
// token among them), through an 'error' listener that closes over the request and reply, and
// through a .catch on the handler's promise — ~3.5 KB of heap per session, for sessions that last
// hours. Here the response lets go of the socket, the error listener is one that only logs and
// closes, and the route handler returns no promise.
import type { ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';

/** `session` must not close over the request either: pass it what it needs, taken out beforehand. */
export function runWithoutRequest(ws: WebSocket, response: ServerResponse, log: FastifyBaseLogger, session: () => Promise<void>): void {
  if (response.socket) response.detachSocket(response.socket);
  ws.removeAllListeners('error');
  ws.on('error', (err: Error) => {
    log.warn({ err: err.message }, 'the WebSocket failed; closing it');
    ws.terminate();
  });
  session().catch((err: unknown) => {
    log.error({ err: (err as Error).message }, 'the session failed');
    ws.terminate();
  });
}
