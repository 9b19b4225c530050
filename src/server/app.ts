// Builds the agent's HTTPS server: authentication (mTLS, tokens, stream URLs), the Origin check,
// discovery, pods, exec, the session API, health and metrics.
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { AuditLog } from '../auth/audit.js';
import { secureContextOptions, type ServingTls } from '../auth/serving-tls.js';
import type { Authenticator, Identity } from '../auth/authenticate.js';
import type { Authorizer } from '../auth/policy.js';
import type { StreamTokenCache } from '../auth/stream-tokens.js';
import { BACKEND_ERROR_HTTP, BackendError, type Backend } from '../backend/types.js';
import { metrics, registry as metricsRegistry } from '../metrics.js';
import { CLOSE_WAIT_MS } from '../protocol/channel-connection.js';
import { negotiateSubprotocol } from '../protocol/subprotocols.js';
import type { SessionRegistry } from '../session/registry.js';
import type { TargetResolver } from '../target/resolve.js';
import { auditRefusal } from './access.js';
import { AnonymousRefusals } from './anonymous-refusals.js';
import { isConsolePath, registerConsoleRoutes } from './console-routes.js';
import { registerDiscoveryRoutes } from './discovery.js';
import { registerExecRoutes } from './exec-routes.js';
import { registerPodRoutes } from './pods-routes.js';
import { registerSessionRoutes, type StreamGrant } from './session-routes.js';
import { answerClientError, endAfterAnswer, refuseConnect } from './client-errors.js';
import { closeSilentConnections } from './silent-connections.js';
import { limitConnections } from './connection-limit.js';
import { decodeQueryComponent, parseQueryString } from './query-string.js';
import { hostProblem, requireUtf8Json, routeShapeProblem, trackWebSocketRoutes } from './request-shape.js';
import { sendStatus } from './status-reply.js';

export interface AppOptions {
  tls: ServingTls;
  /** How long a new connection may wait for its first request (silent-connections.ts); tests shorten it. */
  firstRequestTimeoutMs?: number;
  /** Open client connections at most (connection-limit.ts). */
  maxConnections: number;
  /** How long a TLS handshake may take before the connection is closed (default 10 s); tests shorten it. */
  handshakeTimeoutMs?: number;
  authenticator: Authenticator;
  authorizer: Authorizer;
  audit: AuditLog;
  streamTokens: StreamTokenCache<StreamGrant>;
  registry: SessionRegistry;
  docker: Backend;
  nsenter: Backend;
  resolver: TargetResolver;
  nsenterEnabled: boolean;
  /** Serve the built-in web console at / (its API calls carry the token; the page itself needs none). */
  consoleEnabled: boolean;
  /** Browser origins allowed to open WebSockets besides the agent's own. */
  allowedOrigins: string[];
  /** Readiness: resolves when the engine answers. */
  checkEngine: () => Promise<void>;
  nodeName: string;
  logLevel: string;
  sessions: {
    idleTimeoutMs: number;
    maxDurationMs: number;
    pingIntervalMs: number;
    outputHighWaterMark: number;
    /** How long a finished session's client is given to take its output and answer the close (default CLOSE_WAIT_MS; tests shorten it). */
    closeWaitMs?: number;
  };
  /** The environment entry that marks a session's processes, so orphans can be found. */
  markerEnv(sessionId: string): string;
  /** True once the agent is shutting down: new requests get 503. */
  isDraining(): boolean;
  /** Largest message a client may send (stdin chunks, resize). */
  maxClientMessageBytes?: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    identity: Identity | null;
  }
}

const UNAUTHENTICATED_PATHS = new Set(['/healthz', '/readyz']);
/** The longest part of a path the router takes (a pod's name may have 253 characters). */
const MAX_PATH_PARAMETER_LENGTH = 1024;
const STREAM_PREFIX = '/v1/streams/';
/** Routes whose refusals go to the audit log (discovery noise does not). */
const AUDITED = /^\/(api\/v1\/namespaces\/[^/]+\/pods\/[^/]+\/exec|exec\/|v1\/)/;

/**
 * The path a request target names as the router sees it: an absolute-form target
 * (`https://host/path`) reduced to its path, percent-encoding decoded (where it is valid).
 */
function routedPath(url: string): string {
  let path = url.split('?', 1)[0]!;
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(path);
  if (absolute) path = path.slice(absolute[0].length) || '/';
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

const REDACTED_QUERY_PARAMETERS = new Set(['command', 'access_token']);

/** Request URLs are logged with stream tokens cut out (however the path is spelt): they are credentials. */
export function redactUrl(url: string): string {
  if (routedPath(url).startsWith(STREAM_PREFIX)) return `${STREAM_PREFIX}[redacted]`;
  const query = url.indexOf('?');
  if (query === -1) return url;
  // An exec's command may hold secrets (PGPASSWORD=…): the audit log redacts by pattern, the request
  // log keeps none of it (the session's own log line names the program). execlet takes no token in
  // the URL, but a client may still send one where Kubernetes once took it (access_token).
  const redacted = url
    .slice(query + 1)
    .split('&')
    .map((pair) => {
      const key = pair.split('=', 1)[0]!;
      // Not valid percent-encoding: compared as it is.
      const name = decodeQueryComponent(key) ?? key;
      return REDACTED_QUERY_PARAMETERS.has(name) ? `${key}=[redacted]` : pair;
    });
  return `${url.slice(0, query + 1)}${redacted.join('&')}`;
}

function isSameOrigin(origin: string, request: FastifyRequest): boolean {
  try {
    const url = new URL(origin);
    return url.protocol === 'https:' && url.host === request.headers.host;
  } catch {
    return false;
  }
}

/** How long a TLS handshake may take; see buildApp. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: {
      ...secureContextOptions(options.tls),
      // Client certificates are asked for, checked against the client CA, and judged per request.
      ...(options.tls.clientCAPem !== undefined ? { requestCert: true, rejectUnauthorized: false } : {}),
      // Node.js gives a handshake 120 s: a connection that never completes one would hold one of
      // maxConnections that long. A client on any network completes it in well under a second.
      handshakeTimeout: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      // Node.js would answer an HTTP/1.1 request without a Host header with a bare 400; the
      // onRequest hook answers it with a Status (request-shape.ts).
      requireHostHeader: false,
    },
    logger: {
      level: options.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
      serializers: {
        req: (request: { method: string; url: string; hostname?: string; ip?: string; socket?: { remotePort?: number } }) => ({
          method: request.method,
          url: redactUrl(request.url),
          host: request.hostname,
          remoteAddress: request.ip,
        }),
      },
    },
    // Engine listing can be slow under load; kubectl itself waits 32 s for discovery.
    requestTimeout: 0,
    // While it closes, the agent answers as it does while it drains (isDraining): a Status, and
    // /healthz still 200 — fastify's own 503 would be neither.
    return503OnClosing: false,
    routerOptions: {
      // Kubernetes names run to 253 characters (fastify's default, 100, answered 414 for longer ones).
      maxParamLength: MAX_PATH_PARAMETER_LENGTH,
      // Percent-encoding that is not UTF-8 is refused (request-shape.ts), not passed on as it was written.
      querystringParser: parseQueryString,
    },
    // What Node.js's HTTP parser refuses is a Status too (client-errors.ts).
    clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket) {
      answerClientError(err, socket, this.server.headersTimeout);
    },
    // What the router refuses is a Status too, and does not repeat the path (a stream URL's holds a token).
    frameworkErrors: (error: Error & { code?: string; statusCode?: number }, _request, reply) => {
      const code = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
      const message = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? `a part of the request path is longer than ${MAX_PATH_PARAMETER_LENGTH} characters` : `the request URL is not valid (${error.code ?? error.message})`;
      void sendStatus(reply, code, message);
    },
  });
  requireUtf8Json(app);
  refuseConnect(app.server);
  closeSilentConnections(app.server, options.firstRequestTimeoutMs);
  const connections = limitConnections(app.server, options.maxConnections, ({ refused, evicted }) =>
    app.log.warn(
      { maxConnections: options.maxConnections, refused, evicted },
      "maxConnections are open (--max-connections): connections that were no authenticated caller's closed to make room, or new ones refused when every other was",
    ),
  );

  const closeWaitMs = options.sessions.closeWaitMs ?? CLOSE_WAIT_MS;
  await app.register(fastifyWebsocket, {
    options: {
      perMessageDeflate: false,
      // How long a client that has been sent the close may take to answer it: the output still on
      // its way to it comes first (ws's default, 30 s, cut a slow client off mid-output). ws ≥ 8.19
      // takes it; @types/ws does not know it yet.
      ...({ closeTimeout: closeWaitMs } as object),
      maxPayload: options.maxClientMessageBytes ?? 4 * 1024 * 1024,
      // Refusals happen before the upgrade (exec routes); here the client's first supported choice wins.
      handleProtocols: (offered: Set<string>) => negotiateSubprotocol(offered) ?? false,
    },
  });

  const routeTakesWebSocket = trackWebSocketRoutes(app);

  // A refused upgrade gets an HTTP response on the raw socket. @fastify/websocket destroys that
  // socket as soon as the response is handed over, which can cut a TLS response short; instead the
  // socket is ended gracefully once the response has been written.
  const refusedUpgrades = new WeakSet<object>();
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.ws) {
      request.ws = false;
      refusedUpgrades.add(request);
      reply.header('connection', 'close');
    }
    return payload;
  });
  app.addHook('onResponse', async (request) => {
    if (refusedUpgrades.has(request)) endAfterAnswer(request.raw.socket);
  });

  // Refusals with no identity behind them: anyone can cause them, so their records are rate-limited.
  const anonymousRefusals = new AnonymousRefusals(options.audit);
  app.addHook('onClose', async () => anonymousRefusals.flush());
  app.decorateRequest('identity', null);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    if (options.isDraining() && path !== '/healthz') return sendStatus(reply, 503, 'the agent is shutting down', 'ServiceUnavailable');
    const noHost = hostProblem(request);
    if (noHost !== null) return sendStatus(reply.header('connection', 'close'), 400, noHost);
    // Cross-site WebSocket hijacking: a browser always sends Origin; only listed ones (and our own) may open streams.
    const origin = request.headers.origin;
    if (request.headers.upgrade && origin !== undefined && !options.allowedOrigins.includes(origin) && !isSameOrigin(origin, request)) {
      const message = `cross-origin WebSocket from ${origin} refused: the origin is not in allowedOrigins (--allowed-origins)`;
      if (AUDITED.test(path)) anonymousRefusals.record({ code: 403, reason: 'Forbidden', message: `${message} (from ${request.ip})`, address: request.ip });
      metrics.authorizationFailures.inc({ reason: 'origin' });
      return sendStatus(reply, 403, message, 'Forbidden');
    }
    // Not a request its route can take (an upgrade where no WebSocket is, a query that is not UTF-8):
    // refused once the caller is known, and audited where refusals are; the connection is not kept.
    const refuseShape = (problem: string, identity: Identity | null) => {
      if (AUDITED.test(path)) {
        if (identity) auditRefusal(options.audit, identity, 400, 'BadRequest', problem);
        else anonymousRefusals.record({ code: 400, reason: 'BadRequest', message: `${problem} (from ${request.ip})`, address: request.ip });
      }
      return sendStatus(reply.header('connection', 'close'), 400, problem);
    };
    if (UNAUTHENTICATED_PATHS.has(path) || path.startsWith(STREAM_PREFIX) || isConsolePath(path)) {
      const problem = routeShapeProblem(request, routeTakesWebSocket);
      return problem === null ? undefined : refuseShape(problem, null);
    }
    const outcome = options.authenticator.authenticate(request.headers.authorization, request.raw.socket as TLSSocket, request.ip);
    if (!outcome.ok) {
      request.log.info({ reason: outcome.reason }, 'authentication failed');
      metrics.authenticationFailures.inc({ reason: outcome.reason });
      if (AUDITED.test(path)) anonymousRefusals.record({ code: 401, reason: 'Unauthorized', message: `${outcome.message} (${outcome.reason}, from ${request.ip})`, address: request.ip });
      return sendStatus(reply, 401, outcome.message, 'Unauthorized');
    }
    request.identity = outcome.identity;
    const problem = routeShapeProblem(request, routeTakesWebSocket);
    if (problem !== null) return refuseShape(problem, outcome.identity);
  });
  // An authenticated caller's connection is not closed to make room: for this request, or for as
  // long as it is open once it carries a session. Only once the request has come whole (its body
  // read): a body trickled in forever would otherwise hold a protected place.
  app.addHook('preHandler', async (request, reply) => {
    if (request.identity) connections.protect(request.raw.socket, request.ws ? undefined : reply.raw);
  });

  app.setNotFoundHandler((request, reply) => sendStatus(reply, 404, `the server could not find the requested resource (${request.method} ${redactUrl(request.url.split('?', 1)[0]!)})`));
  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    if (error instanceof BackendError) {
      const { code, reason } = BACKEND_ERROR_HTTP[error.kind];
      if (code >= 500) request.log.warn({ err: error.message }, 'engine request failed');
      return sendStatus(reply, code, error.message, reason);
    }
    const code = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (code >= 500) request.log.error({ err: error }, 'request failed');
    return sendStatus(reply, code, code >= 500 ? `internal error: ${error.message}` : error.message);
  });

  app.get('/healthz', async () => 'ok');
  app.get('/readyz', async (_request, reply) => {
    try {
      await options.checkEngine();
      return 'ok';
    } catch (err) {
      return sendStatus(reply, 503, `not ready: ${(err as Error).message}`);
    }
  });
  app.get('/metrics', async (_request, reply) => reply.header('content-type', metricsRegistry.contentType).send(await metricsRegistry.metrics()));

  registerDiscoveryRoutes(app);
  registerPodRoutes(app, options.resolver, options.nodeName);
  const execDeps = {
    docker: options.docker,
    nsenter: options.nsenter,
    resolver: options.resolver,
    authorizer: options.authorizer,
    authenticator: options.authenticator,
    audit: options.audit,
    registry: options.registry,
    nodeName: options.nodeName,
    outputHighWaterMark: options.sessions.outputHighWaterMark,
    idleTimeoutMs: options.sessions.idleTimeoutMs,
    maxDurationMs: options.sessions.maxDurationMs,
    pingIntervalMs: options.sessions.pingIntervalMs,
    closeWaitMs,
    markerEnv: options.markerEnv,
  };
  registerExecRoutes(app, execDeps);
  registerSessionRoutes(app, { ...execDeps, streamTokens: options.streamTokens, nsenterEnabled: options.nsenterEnabled, connections, anonymousRefusals });
  registerConsoleRoutes(app, { enabled: options.consoleEnabled });
  return app;
}
