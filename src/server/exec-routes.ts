// The exec routes, apiserver-shaped and kubelet-shaped: validate the request, resolve the target,
// authorize it, check the upgrade — refusing with a Status before any handshake — then run it.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { AuditLog } from '../auth/audit.js';
import type { Authorizer } from '../auth/policy.js';
import type { SessionRegistry } from '../session/registry.js';
import { TargetError, type TargetResolver, type TargetRules } from '../target/resolve.js';
import { AccessDenied, admitStart, auditRefusal, authorize } from './access.js';
import { ExecQueryError, parseApiserverExecQuery, parseKubeletExecQuery, type ExecRequestOptions } from './exec-query.js';
import { AUDIT_REFUSAL, BegunSession, type ExecPlan, type RunnerDeps } from './session-runner.js';
import { sendStatus } from './status-reply.js';
import { checkUpgrade, UpgradeRefused, UPGRADE_REQUIRED, willUpgrade } from './upgrade.js';
import { runWithoutRequest } from './upgraded-session.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Set up before the upgrade; `response` is the one @fastify/websocket made for the upgrade
     * request, `detach` stops the session from being abandoned when the connection closes.
     */
    execPlan: { session: BegunSession; response: ServerResponse; detach: () => void } | null;
  }
}

export interface ExecRouteDeps extends RunnerDeps {
  resolver: TargetResolver;
  authorizer: Authorizer;
  audit: AuditLog;
  registry: SessionRegistry;
}

type ExecParams = { namespace: string; pod: string; container?: string; uid?: string };

function parseOptions(request: FastifyRequest<{ Params: ExecParams }>, rules: TargetRules): ExecRequestOptions {
  return rules === 'apiserver' ? parseApiserverExecQuery(request.query) : parseKubeletExecQuery(request.query, request.params.container ?? '');
}

export function registerExecRoutes(app: FastifyInstance, deps: ExecRouteDeps): void {
  app.decorateRequest('execPlan', null);

  const plan = (rules: TargetRules) =>
    async function planExec(request: FastifyRequest<{ Params: ExecParams }>, reply: FastifyReply): Promise<unknown> {
      const identity = request.identity!;
      const receivedAt = performance.now();
      let options: ExecRequestOptions | null = null;
      try {
        options = parseOptions(request, rules);
        const target = await deps.resolver.resolve({
          namespace: request.params.namespace,
          pod: request.params.pod,
          container: options.container,
          namespaces: options.namespaces,
          rules,
        });
        const question = { identity, target, command: options.command, tty: options.tty, stdin: options.stdin };
        // Counted towards the user's start rate only once it is sure to start a session: a request
        // refused for its upgrade (kubectl's SPDY fallback) costs nothing.
        const grant = authorize(deps, question, false);
        const traits = checkUpgrade(request);
        if (!willUpgrade(request)) return undefined; // nothing is set up
        admitStart(deps, question);
        const connection = request.raw.socket;
        const plan: ExecPlan = {
          identity,
          grant,
          target,
          receivedAt,
          spec: { place: target.place, command: options.command, tty: options.tty, stdin: options.stdin, stdout: options.stdout, stderr: options.stderr },
        };
        // Set up, and without a TTY started, while the upgrade completes.
        const session = BegunSession.begin(deps, plan, traits, request.log);
        if (!session) return sendStatus(reply, 500, AUDIT_REFUSAL, 'InternalError');
        // A connection that ends before the WebSocket opens (the upgrade failed, the client left)
        // takes the session with it.
        const abandon = () => session.abandon('the connection closed before the WebSocket opened');
        connection.once('close', abandon);
        request.execPlan = { session, response: reply.raw, detach: () => connection.off('close', abandon) };
        return undefined;
      } catch (err) {
        if (err instanceof AccessDenied) return sendStatus(reply, err.code, err.message, err.reason);
        const refusal =
          err instanceof ExecQueryError || err instanceof UpgradeRefused
            ? { code: err instanceof UpgradeRefused ? err.code : 400, reason: 'BadRequest' }
            : err instanceof TargetError
              ? { code: err.code, reason: err.reason }
              : null;
        if (!refusal) throw err;
        if (err instanceof UpgradeRefused) reply.headers(err.headers);
        auditRefusal(deps.audit, identity, refusal.code, refusal.reason, (err as Error).message, { command: options?.command ?? [] });
        return sendStatus(reply, refusal.code, (err as Error).message, refusal.reason);
      }
    };

  const notUpgraded = async (_request: FastifyRequest, reply: FastifyReply) => sendStatus(reply, 400, UPGRADE_REQUIRED);
  const runSession = (socket: WebSocket, request: FastifyRequest): void => {
    const { session, response, detach } = request.execPlan!;
    detach();
    runWithoutRequest(socket, response, request.log, () => session.run(socket));
  };

  for (const [rules, urls] of [
    ['apiserver', ['/api/v1/namespaces/:namespace/pods/:pod/exec']],
    ['kubelet', ['/exec/:namespace/:pod/:container', '/exec/:namespace/:pod/:uid/:container']],
  ] as const) {
    for (const url of urls) {
      app.route<{ Params: ExecParams }>({ method: 'GET', url, preHandler: plan(rules), handler: notUpgraded, wsHandler: runSession });
      app.route<{ Params: ExecParams }>({ method: 'POST', url, preHandler: plan(rules), handler: notUpgraded });
    }
  }
}
