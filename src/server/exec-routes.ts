// The exec routes, apiserver-shaped and kubelet-shaped: validate the request, resolve the target,
// negotiate the subprotocol — refusing with a Status before any upgrade — then run the session.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Backend, ExecSpec } from '../backend/types.js';
import { WebSocketChannels } from '../protocol/channel-connection.js';
import {
  negotiateSubprotocol,
  parseOfferedSubprotocols,
  protocolTraits,
  SUPPORTED_SUBPROTOCOLS,
  type ProtocolTraits,
} from '../protocol/subprotocols.js';
import { runExecSession } from '../session/exec-session.js';
import { TargetError, type Target, type TargetResolver, type TargetRules } from '../target/resolve.js';
import { metrics } from '../metrics.js';
import { ExecQueryError, parseApiserverExecQuery, parseKubeletExecQuery, type ExecRequestOptions } from './exec-query.js';
import { sendStatus } from './status-reply.js';

export interface ExecPlan {
  target: Target;
  spec: Omit<ExecSpec, 'initialSize'>;
  traits: ProtocolTraits;
}

declare module 'fastify' {
  interface FastifyRequest {
    execPlan: ExecPlan | null;
  }
}

export interface ExecRouteDeps {
  /** Runs processes in containers through the engine. */
  docker: Backend;
  /** Runs processes in the namespaces of a host process (nsenter, toolbox and node modes). */
  nsenter: Backend;
  resolver: TargetResolver;
  /** Bytes buffered towards a client before the process's output is paused. */
  outputHighWaterMark: number;
}

type ExecParams = { namespace: string; pod: string; container?: string; uid?: string };

const SPDY_REFUSAL =
  'SPDY is not supported by execlet yet: use a client that speaks the WebSocket exec protocol ' +
  '(kubectl 1.30 or newer, or kubectl 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)';

function upgradeKind(request: FastifyRequest): 'websocket' | 'spdy' | 'other' | null {
  const upgrade = request.headers.upgrade;
  if (!upgrade) return null;
  const lowered = upgrade.toLowerCase();
  if (lowered === 'websocket') return 'websocket';
  if (lowered.startsWith('spdy/')) return 'spdy';
  return 'other';
}

function parseOptions(request: FastifyRequest<{ Params: ExecParams }>, rules: TargetRules): ExecRequestOptions {
  return rules === 'apiserver'
    ? parseApiserverExecQuery(request.query)
    : parseKubeletExecQuery(request.query, request.params.container ?? '');
}

export function registerExecRoutes(app: FastifyInstance, deps: ExecRouteDeps): void {
  app.decorateRequest('execPlan', null);

  const plan = (rules: TargetRules) =>
    async function planExec(request: FastifyRequest<{ Params: ExecParams }>, reply: FastifyReply): Promise<unknown> {
      let options: ExecRequestOptions;
      let target: Target;
      try {
        options = parseOptions(request, rules);
        target = await deps.resolver.resolve({
          namespace: request.params.namespace,
          pod: request.params.pod,
          container: options.container,
          namespaces: options.namespaces,
          rules,
        });
      } catch (err) {
        if (err instanceof ExecQueryError) return sendStatus(reply, 400, err.message);
        if (err instanceof TargetError) return sendStatus(reply, err.code, err.message, err.reason);
        throw err;
      }
      const kind = upgradeKind(request);
      if (kind === 'spdy') return sendStatus(reply, 400, SPDY_REFUSAL);
      if (kind !== 'websocket' || request.method !== 'GET') {
        return sendStatus(reply, 400, 'Upgrade request required: exec needs a WebSocket (GET with Upgrade: websocket)');
      }
      const offered = parseOfferedSubprotocols(request.headers['sec-websocket-protocol']);
      const protocol = negotiateSubprotocol(offered);
      if (!protocol) {
        const what = offered.length === 0 ? 'no WebSocket subprotocol was offered' : `none of the offered subprotocols (${offered.join(', ')}) is supported`;
        return sendStatus(reply, 400, `${what}; execlet speaks ${SUPPORTED_SUBPROTOCOLS.join(', ')}`);
      }
      request.execPlan = {
        target,
        traits: protocolTraits(protocol),
        spec: {
          place: target.place,
          command: options.command,
          tty: options.tty,
          stdin: options.stdin,
          stdout: options.stdout,
          stderr: options.stderr,
        },
      };
      return undefined;
    };

  const notUpgraded = async (_request: FastifyRequest, reply: FastifyReply) =>
    sendStatus(reply, 400, 'Upgrade request required: exec needs a WebSocket (GET with Upgrade: websocket)');

  const runSession = async (socket: WebSocket, request: FastifyRequest) => {
    const plan = request.execPlan!;
    const { spec, target, traits } = plan;
    const log = request.log.child({
      session: randomUUID(),
      mode: target.mode,
      namespace: target.pod.namespace,
      pod: target.pod.name,
      container: target.container.name,
      protocol: traits.name,
    });
    const channels = new WebSocketChannels(socket, traits, {
      stdin: spec.stdin,
      stdout: spec.stdout,
      stderr: spec.stderr,
      highWaterMark: deps.outputHighWaterMark,
    });
    const startedAt = performance.now();
    const place = spec.place.kind === 'namespaces' ? { pid: spec.place.pid, namespaces: spec.place.namespaces } : {};
    log.info({ program: spec.command[0], tty: spec.tty, stdin: spec.stdin, ...place }, 'session started');
    metrics.sessionsActive.inc({ mode: target.mode });
    try {
      const backend = spec.place.kind === 'container' ? deps.docker : deps.nsenter;
      const result = await runExecSession({ channels, backend, spec, log });
      metrics.sessionsEnded.inc({ mode: target.mode, outcome: result.outcome });
      log.info(
        {
          outcome: result.outcome,
          exitCode: result.exit?.code ?? null,
          error: result.exit?.error,
          bytesIn: result.bytesIn,
          bytesOut: result.bytesOut,
          durationMs: Math.round(performance.now() - startedAt),
        },
        'session ended',
      );
    } finally {
      metrics.sessionsActive.dec({ mode: target.mode });
    }
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
