// Requests that never reach fastify's router get a Kubernetes Status too: what Node.js's HTTP parser
// refuses (headers over its limit, a malformed request line or header, a bad chunk), a request whose
// headers did not arrive in time, and CONNECT (the agent is no proxy). Node.js and fastify would
// answer these with their own bodies, or close the connection without an answer.
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Server } from 'node:https';
import { httpStatus } from '../protocol/status.js';
import { reasonFor } from './status-reply.js';

/** How long the answer may take to reach the client before the connection is destroyed anyway. */
const ANSWER_DEADLINE_MS = 5000;

function kib(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

/** The code and message for an error Node.js's HTTP server reports before a request is routed. */
export function clientErrorStatus(err: Error & { code?: string }, headersTimeoutMs: number): { code: number; message: string } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        code: 431,
        message: `the request's headers, its URL included, are longer than ${kib(maxHeaderSize)}: send a longer command in the body of POST /v1/sessions`,
      };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 408, message: `the request's headers did not arrive within ${Math.round(headersTimeoutMs / 1000)} s` };
    default:
      // The parser's message names what is wrong ("Parse Error: Invalid header value char") and
      // holds none of the request.
      return { code: 400, message: `the request is not valid HTTP/1.1 (${err.code ?? 'unknown error'}: ${err.message})` };
  }
}

/**
 * Ends a connection once what was written to it (an answer, with `last`) has gone out, and destroys
 * it if the client has not taken that within ANSWER_DEADLINE_MS. Destroying at once can cut a TLS
 * answer short.
 */
export function endAfterAnswer(socket: Duplex, last?: string): void {
  socket.end(last);
  const deadline = setTimeout(() => socket.destroy(), ANSWER_DEADLINE_MS).unref();
  socket.once('close', () => clearTimeout(deadline));
}

/** Writes `code` and a Status, and ends the connection (endAfterAnswer). */
function answerAndClose(socket: Duplex, code: number, message: string): void {
  const body = JSON.stringify(httpStatus(code, reasonFor(code), message));
  endAfterAnswer(
    socket,
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** fastify's clientErrorHandler: a Status where a response can still be written, else just the close. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex, headersTimeoutMs: number): void {
  // A reset connection has nobody to answer; one whose response has begun cannot take another.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const { code, message } = clientErrorStatus(err, headersTimeoutMs);
  answerAndClose(socket, code, message);
}

/** CONNECT asks for a tunnel: refused with a Status (Node.js would close the connection without a word). */
export function refuseConnect(server: Server): void {
  server.on('connect', (_request, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    answerAndClose(socket, 405, 'CONNECT is not supported: execlet is not a proxy');
  });
}
