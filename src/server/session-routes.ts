// The console-facing API: POST /v1/sessions turns an authorized JSON request into a single-use
// stream URL (the CRI GetExec pattern), GET /v1/streams/{token} opens that stream with no other
// credential, and GET /v1/targets lists what the caller may reach.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import type { Authenticator } from '../auth/authenticate.js';
import { formatHostForUrl } from '../auth/local-credentials.js';
import type { Grant } from '../auth/policy.js';
import { TooManyStreamTokens, type StreamTokenCache } from '../auth/stream-tokens.js';
import { LINUX_NAMESPACES } from '../backend/types.js';
import { metrics } from '../metrics.js';
import type { ProtocolTraits } from '../protocol/subprotocols.js';
import { NODE_NAMESPACE } from '../target/modes.js';
import { TargetError } from '../target/resolve.js';
import { AccessDenied, auditRefusal, authorize, policyTarget } from './access.js';
import type { AnonymousRefusals } from './anonymous-refusals.js';
import { commandArgumentProblem } from './exec-query.js';
import type { ConnectionGuard } from './connection-limit.js';
import type { ExecRouteDeps } from './exec-routes.js';
import { runPlannedSession, type ExecPlan } from './session-runner.js';
import { sendStatus } from './status-reply.js';
import { runWithoutRequest } from './upgraded-session.js';
import { checkUpgrade, UpgradeRefused, UPGRADE_REQUIRED, willUpgrade } from './upgrade.js';

export interface StreamGrant {
  id: string;
  plan: ExecPlan;
}

export interface SessionRouteDeps extends ExecRouteDeps {
  streamTokens: StreamTokenCache<StreamGrant>;
  /** Confirms, as a stream URL opens, that the credential which asked for it is still accepted. */
  authenticator: Pick<Authenticator, 'reconfirm'>;
  /** A stream URL's connection, once the URL is taken, carries a session: never closed to make room. */
  connections: ConnectionGuard;
  nsenterEnabled: boolean;
  /** Where a refusal with no identity behind it is audited (rate-limited). */
  anonymousRefusals: AnonymousRefusals;
}

const name = z.string().min(1).max(253);
const sessionRequestSchema = z.strictObject({
  target: z.union([
    z.strictObject({ namespace: name, pod: name, container: name.optional() }),
    z.strictObject({ container: name }),
    z.strictObject({ pid: z.number().int().min(1) }),
    z.strictObject({ node: z.literal(true) }),
  ]),
  command: z
    .array(
      z.string().superRefine((arg, context) => {
        const problem = commandArgumentProblem(arg);
        if (problem) context.addIssue({ code: 'custom', message: problem });
      }),
    )
    .min(1, 'must name the program to run')
    .refine((argv) => argv[0] !== '', 'the program (first element) must not be empty'),
  tty: z.boolean().default(false),
  stdin: z.boolean().default(false),
  stdout: z.boolean().default(true),
  stderr: z.boolean().optional(),
  mode: z.enum(['exec', 'nsenter', 'toolbox']).default('exec'),
  namespaces: z.array(z.enum(LINUX_NAMESPACES)).optional(),
  size: z.strictObject({ width: z.number().int().min(1).max(65535), height: z.number().int().min(1).max(65535) }).optional(),
});

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.') || '(body)';
      if (issue.code === 'unrecognized_keys') return `${path === '(body)' ? '' : `${path}: `}unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
      if (issue.code === 'invalid_union' && issue.path.join('.') === 'target') {
        return 'target: expected one of {"namespace","pod","container"}, {"container"}, {"pid"} or {"node": true}';
      }
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * wss://HOST/v1/streams/TOKEN, for the host the caller used to reach us (its Host header, a DNS or
 * Docker name such as execlet_agent:10350 included); for a Host that is no host[:port], the address
 * and port its connection came in on.
 */
function streamUrl(request: FastifyRequest, token: string): string {
  const given = request.headers.host;
  let host: string;
  if (given && /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(given)) host = given;
  else {
    const { localAddress = '127.0.0.1', localPort } = request.raw.socket;
    host = `${formatHostForUrl(localAddress)}:${localPort}`;
  }
  return `wss://${host}/v1/streams/${token}`;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** `response` is the one @fastify/websocket made for the upgrade request. */
    streamGrant: { grant: StreamGrant; traits: ProtocolTraits; response: ServerResponse } | null;
  }
}

export function registerSessionRoutes(app: FastifyInstance, deps: SessionRouteDeps): void {
  app.decorateRequest('streamGrant', null);

  app.post('/v1/sessions', async (request, reply) => {
    const identity = request.identity!;
    const parsed = sessionRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      const message = `invalid session request: ${describeIssues(parsed.error)}`;
      auditRefusal(deps.audit, identity, 400, 'BadRequest', message);
      return sendStatus(reply, 400, message);
    }
    const body = parsed.data;
    const stderr = body.tty ? false : (body.stderr ?? true);
    /** Every refusal of a parsed request: audited with what it asked for, then its Status. */
    const refuse = (code: number, reason: string, message: string) => {
      auditRefusal(deps.audit, identity, code, reason, message, { mode: body.mode, command: body.command });
      return sendStatus(reply, code, message, reason);
    };
    if (body.tty && body.stderr) return refuse(400, 'BadRequest', 'invalid session request: tty and stderr cannot both be true (a terminal has one output stream)');
    if (!body.stdin && !body.stdout && !stderr) return refuse(400, 'BadRequest', 'invalid session request: at least one of stdin, stdout, stderr is needed');
    try {
      const target = await deps.resolver.resolveExplicit({ target: body.target, mode: body.mode, ...(body.namespaces ? { namespaces: body.namespaces } : {}) });
      const grant = authorize(deps, { identity, target, command: body.command, tty: body.tty, stdin: body.stdin });
      const id = randomUUID();
      const plan: ExecPlan = {
        identity,
        grant,
        target,
        receivedAt: 0, // set when the stream is opened
        spec: { place: target.place, command: body.command, tty: body.tty, stdin: body.stdin, stdout: body.stdout, stderr },
        ...(body.size ? { initialSize: body.size } : {}),
      };
      const { token, expiresAt } = deps.streamTokens.issue({ id, plan }, identity.user);
      request.log.info({ streamId: id, user: identity.user, mode: target.mode }, 'stream URL issued');
      return reply.code(201).send({ id, url: streamUrl(request, token), expiresAt: new Date(expiresAt).toISOString() });
    } catch (err) {
      if (err instanceof AccessDenied) return sendStatus(reply, err.code, err.message, err.reason);
      if (err instanceof TooManyStreamTokens) {
        const message =
          err.scope === 'owner'
            ? `user "${identity.user}" already holds ${err.limit} stream URLs not yet opened, the limit (--max-sessions-per-user); open them or let them expire (1 minute)`
            : 'too many stream URLs are outstanding; try again in a minute';
        return refuse(429, 'TooManyRequests', message);
      }
      if (err instanceof TargetError) return refuse(err.code, err.reason, err.message);
      throw err;
    }
  });

  app.route<{ Params: { token: string } }>({
    method: 'GET',
    url: '/v1/streams/:token',
    preHandler: async (request, reply) => {
      const receivedAt = performance.now();
      // The upgrade is checked first: a request that cannot become a WebSocket (a plain GET, a
      // link preview, upgrade headers without `Connection: Upgrade`, a connection already gone)
      // must not use up the URL.
      let traits: ProtocolTraits;
      try {
        traits = checkUpgrade(request);
      } catch (err) {
        if (err instanceof UpgradeRefused) return sendStatus(reply.headers(err.headers), err.code, err.message);
        throw err;
      }
      if (!willUpgrade(request)) return undefined; // the URL stays unused
      const taken = deps.streamTokens.take(request.params.token);
      if (!taken) {
        deps.anonymousRefusals.record({ code: 404, reason: 'NotFound', message: `unknown, used or expired stream URL (from ${request.ip})`, address: request.ip });
        return sendStatus(reply, 404, 'this stream URL is unknown, already used, or expired: request a new one with POST /v1/sessions');
      }
      // The token that asked for the URL must still be accepted (a token file changed since may have
      // removed it, or changed its groups).
      const current = deps.authenticator.reconfirm(taken.plan.identity);
      if (!current) {
        const message = `the token of user "${taken.plan.identity.user}" that asked for this stream URL is no longer accepted (the token file changed)`;
        metrics.authenticationFailures.inc({ reason: 'invalid-token' });
        auditRefusal(deps.audit, { ...taken.plan.identity, method: 'stream-token', address: request.ip }, 401, 'Unauthorized', message);
        return sendStatus(reply, 401, message, 'Unauthorized');
      }
      // Audited as the identity that asked for the URL, opened from wherever the stream came from.
      const identity = { ...current, method: 'stream-token' as const, address: request.ip };
      // Checked again as it opens: a policy reloaded since may have revoked the access, and the
      // sessions opened since (from other URLs, say) count towards the limits.
      const { target, spec } = taken.plan;
      let grant: Grant;
      try {
        grant = authorize(deps, { identity, target, command: spec.command, tty: spec.tty, stdin: spec.stdin }, false);
      } catch (err) {
        if (err instanceof AccessDenied) return sendStatus(reply, err.code, err.message, err.reason);
        throw err;
      }
      request.streamGrant = { grant: { ...taken, plan: { ...taken.plan, identity, grant, receivedAt } }, traits, response: reply.raw };
      deps.connections.protect(request.raw.socket);
      return undefined;
    },
    handler: async (_request, reply) => sendStatus(reply, 400, UPGRADE_REQUIRED),
    wsHandler: (socket: WebSocket, request: FastifyRequest): void => {
      const { grant, traits, response } = request.streamGrant!;
      const log = request.log.child({ streamId: grant.id });
      runWithoutRequest(socket, response, log, () => runPlannedSession(deps, grant.plan, traits, socket, log));
    },
  });

  app.get('/v1/targets', async (request: FastifyRequest, reply: FastifyReply) => {
    const identity = request.identity!;
    const subject = { user: identity.user, groups: identity.groups };
    const pods = await deps.resolver.listPods(true);
    const targets = [];
    for (const pod of pods) {
      for (const container of pod.containers) {
        const target = {
          pod,
          container,
          mode: 'exec' as const,
          place: { kind: 'container' as const, containerId: container.containerId },
          ...(deps.resolver.isKnownAgentContainer(container.containerId) ? { agentContainer: true } : {}),
        };
        const granted = deps.authorizer.modesFor(subject, policyTarget(target));
        const modes: string[] = [];
        if (pod.namespace === NODE_NAMESPACE) {
          if (granted.includes('node') && deps.nsenterEnabled) modes.push('node');
        } else {
          if (granted.includes('exec') && container.state === 'running') modes.push('exec');
          if (granted.includes('nsenter') && deps.nsenterEnabled && container.state === 'running') modes.push('nsenter', 'toolbox');
        }
        if (modes.length === 0) continue;
        targets.push({
          namespace: pod.namespace,
          pod: pod.name,
          container: container.name,
          ...(container.containerId ? { containerId: container.containerId } : {}),
          image: container.image,
          state: container.state,
          modes,
        });
      }
    }
    return reply.send({ node: deps.nodeName, user: identity.user, targets });
  });
}
