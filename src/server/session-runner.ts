// Runs one authorized exec plan over an upgraded WebSocket: registers the session, audits its start
// and end, applies the grant's limits, picks the backend for the place, and records metrics.
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { AuditLog } from '../auth/audit.js';
import type { Identity } from '../auth/authenticate.js';
import type { Grant } from '../auth/policy.js';
import type { Backend, ExecSpec, TerminalSize } from '../backend/types.js';
import { metrics } from '../metrics.js';
import { WebSocketChannels } from '../protocol/channel-connection.js';
import { failureStatus } from '../protocol/status.js';
import type { ProtocolTraits } from '../protocol/subprotocols.js';
import { runExecSession, type SessionStop } from '../session/exec-session.js';
import type { SessionRegistry } from '../session/registry.js';
import type { Target } from '../target/resolve.js';
import type { Authorizer } from '../auth/policy.js';
import { accessRequest, auditIdentity, auditTarget } from './access.js';

/** Everything decided before the upgrade: who, where, what, and under which grant. */
export interface ExecPlan {
  identity: Identity;
  grant: Grant;
  target: Target;
  spec: Omit<ExecSpec, 'initialSize'>;
  /** A terminal size known up front (the JSON session API); otherwise the client sends one. */
  initialSize?: TerminalSize;
  /** performance.now() when the request arrived, for the start-latency histogram. */
  receivedAt: number;
}

export interface RunnerDeps {
  docker: Backend;
  nsenter: Backend;
  authorizer: Authorizer;
  audit: AuditLog;
  registry: SessionRegistry;
  nodeName: string;
  /** Bytes buffered towards a client before the process's output is paused. */
  outputHighWaterMark: number;
  /** Defaults when the grant sets none. */
  idleTimeoutMs: number;
  maxDurationMs: number;
  pingIntervalMs: number;
  /** The environment entry that marks a session's processes (EXECLET_SESSION=…), so orphans can be found. */
  markerEnv(sessionId: string): string;
}

export async function runPlannedSession(deps: RunnerDeps, plan: ExecPlan, traits: ProtocolTraits, socket: WebSocket, parentLog: FastifyBaseLogger): Promise<void> {
  const { spec, target, identity, grant } = plan;
  const sessionId = randomUUID();
  const log = parentLog.child({
    session: sessionId,
    user: identity.user,
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
    pingIntervalMs: deps.pingIntervalMs,
  });
  const auditCommon = {
    sessionId,
    identity: auditIdentity(identity),
    target: auditTarget(target, deps.nodeName),
    mode: target.mode,
    command: spec.command,
    tty: spec.tty,
    stdin: spec.stdin,
  };
  if (!deps.audit.write({ event: 'session.start', ...auditCommon }) && deps.audit.failClosed) {
    log.error('the audit record could not be written; refusing the session (audit.failClosed)');
    channels.attach({ stdin() {}, stdinEnd() {}, resize() {}, clientGone() {} });
    channels.finish(failureStatus('InternalError', 'the session was refused: its audit record could not be written', 500));
    return;
  }

  const stopper = new AbortController();
  const progress = { bytesIn: 0, bytesOut: 0, lastActivity: Date.now() };
  const unregister = deps.registry.add({
    id: sessionId,
    user: identity.user,
    rule: grant.rule,
    mode: target.mode,
    target: `${target.pod.namespace}/${target.pod.name}/${target.container.name}`,
    startedAt: Date.now(),
    progress,
    end: (stop: SessionStop) => stopper.abort(stop),
    stillAllowed: () => deps.authorizer.decide(accessRequest({ identity, target, command: spec.command, tty: spec.tty, stdin: spec.stdin })).allowed,
  });
  const startedAt = performance.now();
  metrics.sessionsStarted.inc({ mode: target.mode, protocol: traits.name });
  const place = spec.place.kind === 'namespaces' ? { pid: spec.place.pid, namespaces: spec.place.namespaces } : {};
  log.info({ program: spec.command[0], tty: spec.tty, stdin: spec.stdin, auth: identity.method, rule: grant.rule, ...place }, 'session started');
  metrics.sessionsActive.inc({ mode: target.mode });
  try {
    const backend = spec.place.kind === 'container' ? deps.docker : deps.nsenter;
    const result = await runExecSession({
      channels,
      backend,
      spec: { ...spec, env: [...(spec.env ?? []), deps.markerEnv(sessionId)] },
      log,
      ...(plan.initialSize ? { initialSize: plan.initialSize } : {}),
      idleTimeoutMs: grant.idleTimeoutMs ?? deps.idleTimeoutMs,
      maxDurationMs: grant.maxDurationMs ?? deps.maxDurationMs,
      stop: stopper.signal,
      progress,
      onProcessStarted: () => metrics.sessionStartSeconds.observe({ mode: target.mode }, (performance.now() - plan.receivedAt) / 1000),
    });
    const durationMs = Math.round(performance.now() - startedAt);
    metrics.sessionsEnded.inc({ mode: target.mode, protocol: traits.name, outcome: result.outcome });
    metrics.sessionDurationSeconds.observe({ mode: target.mode }, durationMs / 1000);
    metrics.relayedBytes.inc({ direction: 'in', stream: 'stdin' }, result.bytesIn);
    metrics.relayedBytes.inc({ direction: 'out', stream: spec.tty ? 'tty' : 'stdout+stderr' }, result.bytesOut);
    deps.audit.write({
      event: 'session.end',
      ...auditCommon,
      outcome: {
        reason: result.outcome,
        exitCode: result.exit?.code ?? null,
        signal: result.exit?.signal ?? null,
        ...(result.exit?.error ? { error: result.exit.error } : {}),
      },
      durationMs,
      bytesIn: result.bytesIn,
      bytesOut: result.bytesOut,
    });
    log.info(
      { outcome: result.outcome, exitCode: result.exit?.code ?? null, error: result.exit?.error, bytesIn: result.bytesIn, bytesOut: result.bytesOut, durationMs },
      'session ended',
    );
  } finally {
    unregister();
    metrics.sessionsActive.dec({ mode: target.mode });
  }
}
