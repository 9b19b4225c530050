// What every request must be before any route sees it, whatever its path: an HTTP/1.1 request names
// its Host; an upgrade goes only to a route that takes a WebSocket; its query decodes to UTF-8 text
// (query-string.ts); a JSON body is UTF-8. Each failure is one message for a 400 Status.
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { malformedQueryProblem } from './query-string.js';

/**
 * Records the paths of routes that take a WebSocket (exec, attach, stream URLs) as they are added,
 * and returns the test for a request's route. By path, not method: an exec path's POST refuses an
 * upgrade itself (SPDY). Install before the routes.
 */
export function trackWebSocketRoutes(app: FastifyInstance): (request: FastifyRequest) => boolean {
  const paths = new Set<string>();
  app.addHook('onRoute', (route) => {
    if (route.wsHandler !== undefined || (route as { websocket?: boolean }).websocket === true) paths.add(route.url);
  });
  return (request) => request.routeOptions.url === undefined || paths.has(request.routeOptions.url);
}

/** Why a request cannot be served at all, before anything else is asked of it: HTTP/1.1 without a Host. */
export function hostProblem(request: FastifyRequest): string | null {
  return request.headers.host === undefined && request.raw.httpVersion === '1.1' ? 'the request has no Host header, which HTTP/1.1 requires' : null;
}

/**
 * Why the request is not one its route can take, or null: checked once the caller is known, so an
 * exec's refusal is audited like any other. An upgrade to a route that takes no WebSocket would
 * otherwise be completed by @fastify/websocket and then closed, and meanwhile an authenticated
 * caller's connection would hold a place that no eviction frees. (A path no route has is left to
 * the 404.)
 */
export function routeShapeProblem(request: FastifyRequest, routeTakesWebSocket: (request: FastifyRequest) => boolean): string | null {
  if (request.ws && !routeTakesWebSocket(request)) {
    return `${request.method} ${request.routeOptions.url} takes no WebSocket or other upgrade: send it as a plain HTTP request`;
  }
  return malformedQueryProblem(request.query);
}

/** fastify's JSON parser, but a body that is not UTF-8 is refused: it would turn such bytes into U+FFFD, and a command would run altered. */
export function requireUtf8Json(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if (!isUtf8(body as Buffer)) return done(Object.assign(new Error('the request body is not UTF-8 text, which JSON must be'), { statusCode: 400 }), undefined);
    parseJson(request, (body as Buffer).toString('utf8'), done);
  });
}
