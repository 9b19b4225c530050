// Builds the agent's HTTPS server: authentication, discovery, pods, exec, health and metrics.
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { BackendError, type Backend } from '../backend/types.js';
import type { TargetResolver } from '../target/resolve.js';
import type { BearerTokenAuthenticator } from '../auth/bearer.js';
import { negotiateSubprotocol } from '../protocol/subprotocols.js';
import { registry } from '../metrics.js';
import { registerDiscoveryRoutes } from './discovery.js';
import { registerExecRoutes } from './exec-routes.js';
import { registerPodRoutes } from './pods-routes.js';
import { sendStatus } from './status-reply.js';

export interface AppOptions {
  tls: { key: string; cert: string };
  authenticator: BearerTokenAuthenticator;
  docker: Backend;
  nsenter: Backend;
  resolver: TargetResolver;
  /** Readiness: resolves when the engine answers. */
  checkEngine: () => Promise<void>;
  nodeName: string;
  logLevel: string;
  outputHighWaterMark?: number;
  /** Largest message a client may send (stdin chunks, resize). */
  maxClientMessageBytes?: number;
}

const UNAUTHENTICATED_PATHS = new Set(['/healthz', '/readyz']);

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: { key: options.tls.key, cert: options.tls.cert },
    logger: {
      level: options.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
    },
    // Engine listing can be slow under load; kubectl itself waits 32 s for discovery.
    requestTimeout: 0,
    return503OnClosing: true,
  });

  await app.register(fastifyWebsocket, {
    options: {
      perMessageDeflate: false,
      maxPayload: options.maxClientMessageBytes ?? 4 * 1024 * 1024,
      // Refusals happen before the upgrade (exec-routes); here the client's first supported choice wins.
      handleProtocols: (offered: Set<string>) => negotiateSubprotocol(offered) ?? false,
    },
  });

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    if (UNAUTHENTICATED_PATHS.has(path)) return;
    const result = options.authenticator.check(request.headers.authorization);
    if (!result.ok) {
      request.log.info({ reason: result.reason }, 'authentication failed');
      return sendStatus(reply, 401, 'Unauthorized: a valid bearer token is required', 'Unauthorized');
    }
  });

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
    if (!refusedUpgrades.has(request)) return;
    const socket = request.raw.socket;
    socket.end();
    setTimeout(() => socket.destroy(), 5000).unref();
  });

  app.setNotFoundHandler((request, reply) => sendStatus(reply, 404, `the server could not find the requested resource (${request.method} ${request.url.split('?', 1)[0]})`));
  app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
    if (error instanceof BackendError) {
      const code = { NotFound: 404, Conflict: 409, Unavailable: 503, Internal: 500 }[error.kind];
      if (code >= 500) request.log.warn({ err: error.message }, 'engine request failed');
      return sendStatus(reply, code, error.message);
    }
    const code = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (code >= 500) request.log.error({ err: error }, 'request failed');
    return sendStatus(reply, code, code >= 500 ? `internal error: ${error.message}` : error.message);
  });

  app.get('/healthz', async () => 'ok');
  app.get('/readyz', async (request, reply) => {
    try {
      await options.checkEngine();
      return 'ok';
    } catch (err) {
      return sendStatus(reply, 503, `not ready: ${(err as Error).message}`);
    }
  });
  app.get('/metrics', async (_request, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()));

  registerDiscoveryRoutes(app);
  registerPodRoutes(app, options.resolver, options.nodeName);
  registerExecRoutes(app, {
    docker: options.docker,
    nsenter: options.nsenter,
    resolver: options.resolver,
    outputHighWaterMark: options.outputHighWaterMark ?? 1024 * 1024,
  });
  return app;
}
