// Runs one authorized exec plan: sets the session up (audits its start, registers it, and without a
// TTY starts its process) before or after the upgrade, runs it over the WebSocket with the grant's
// limits, and records its end (audit, metrics) however it ends.
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { AuditLog, SessionAuditFields } from '../auth/audit.js';
import type { Authenticator, Identity } from '../auth/authenticate.js';
import type { Grant } from '../auth/policy.js';
import type { Backend, ExecProcess, ExecSpec, TerminalSize } from '../backend/types.js';
import { metrics, reportRelayedAtScrape } from '../metrics.js';
import { WebSocketChannels } from '../protocol/channel-connection.js';
import { failureStatus } from '../protocol/status.js';
import type { ProtocolTraits } from '../protocol/subprotocols.js';
import { endUnusedProcess, runExecSession, type SessionResult, type SessionStop } from '../session/exec-session.js';
import type { SessionProgress, SessionRegistry } from '../session/registry.js';
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
  /** Whether a session's credential is still accepted (a token file reloaded since may have removed it). */
  authenticator: Pick<Authenticator, 'reconfirm'>;
  audit: AuditLog;
  registry: SessionRegistry;
  nodeName: string;
  /** Bytes buffered towards a client before the process's output is paused. */
  outputHighWaterMark: number;
  /** Defaults when the grant sets none. */
  idleTimeoutMs: number;
  maxDurationMs: number;
  pingIntervalMs: number;
  /** How long a finished session's client is given to take its output and answer the close (channel-connection.ts CLOSE_WAIT_MS). */
  closeWaitMs: number;
  /** The environment entry that marks a session's processes (EXECLET_SESSION=…), so orphans can be found. */
  markerEnv(sessionId: string): string;
}

/**
 * A session set up before its WebSocket exists: named, audited, registered, counted, and — without
 * a TTY, which waits for the client's terminal size — its process already starting, so that it
 * starts while the agent finishes the upgrade (~0.5 ms sooner than after it). Run once the
 * WebSocket is open, or abandoned if the connection ends first; never both.
 */
export class BegunSession {
  /** The process starting, for a session without a TTY; null when run() starts it (after the terminal size). */
  readonly started: Promise<ExecProcess> | null;
  readonly #spec: Omit<ExecSpec, 'initialSize'>;
  readonly #backend: Backend;
  readonly #stopper = new AbortController();
  readonly #progress: SessionProgress = { bytesIn: 0, bytesOut: 0, lastActivity: Date.now() };
  readonly #startedAt = performance.now();
  readonly #unregister: () => void;
  /** Of #progress, what execlet_relayed_bytes_total already holds. */
  readonly #relayedReported = { bytesIn: 0, bytesOut: 0 };
  readonly #stopReportingRelayed: () => void;
  #claimed = false;
  #ended = false;

  /** Use begin(): it refuses a session whose audit record cannot be written. */
  private constructor(
    readonly id: string,
    private readonly deps: RunnerDeps,
    private readonly plan: ExecPlan,
    private readonly traits: ProtocolTraits,
    private readonly log: FastifyBaseLogger,
    private readonly auditCommon: SessionAuditFields,
  ) {
    const { target, identity, grant } = plan;
    const spec = { ...plan.spec, env: [...(plan.spec.env ?? []), deps.markerEnv(id)] };
    this.#spec = spec;
    this.#backend = spec.place.kind === 'container' ? deps.docker : deps.nsenter;
    // Started before anything else but the audit record, which must come first.
    this.started = spec.tty ? null : this.#backend.start(spec);
    // Its failure is reported when the session runs; until then it must not count as unhandled.
    this.started?.catch(() => undefined);
    this.#unregister = deps.registry.add({
      id,
      user: identity.user,
      rule: grant.rule,
      budget: grant.budget,
      mode: target.mode,
      target: `${target.pod.namespace}/${target.pod.name}/${target.container.name}`,
      startedAt: Date.now(),
      progress: this.#progress,
      end: (stop: SessionStop) => this.#stopper.abort(stop),
      // After a reload of the policy or the token file: the credential as it stands now, then the policy.
      currentGrant: () => {
        const current = deps.authenticator.reconfirm(identity);
        if (current === null) return null;
        const decision = deps.authorizer.decide(accessRequest({ identity: current, target, command: spec.command, tty: spec.tty, stdin: spec.stdin }));
        return decision.allowed ? decision.grant : null;
      },
    });
    this.#stopReportingRelayed = reportRelayedAtScrape(() => this.#reportRelayed());
    metrics.sessionsStarted.inc({ mode: target.mode, protocol: traits.name });
    const place = spec.place.kind === 'namespaces' ? { pid: spec.place.pid, namespaces: spec.place.namespaces } : {};
    log.info({ program: spec.command[0], tty: spec.tty, stdin: spec.stdin, auth: identity.method, rule: grant.rule, ...place }, 'session started');
    metrics.sessionsActive.inc({ mode: target.mode });
  }

  /**
   * Sets up the session, or returns null when its audit record cannot be written and the audit log
   * fails closed (nothing was started).
   */
  static begin(deps: RunnerDeps, plan: ExecPlan, traits: ProtocolTraits, parentLog: FastifyBaseLogger): BegunSession | null {
    const id = randomUUID();
    const { target, identity } = plan;
    const log = parentLog.child({
      session: id,
      user: identity.user,
      mode: target.mode,
      namespace: target.pod.namespace,
      pod: target.pod.name,
      container: target.container.name,
      protocol: traits.name,
    });
    const auditCommon = {
      sessionId: id,
      identity: auditIdentity(identity),
      target: auditTarget(target, deps.nodeName),
      mode: target.mode,
      command: plan.spec.command,
      tty: plan.spec.tty,
      stdin: plan.spec.stdin,
    };
    if (!deps.audit.write({ event: 'session.start', ...auditCommon }) && deps.audit.failClosed) {
      log.error('the audit record could not be written; refusing the session (audit.failClosed)');
      return null;
    }
    return new BegunSession(id, deps, plan, traits, log, auditCommon);
  }

  /** Runs the session over its now open WebSocket, to the end. */
  async run(socket: WebSocket): Promise<void> {
    const { deps, plan, traits } = this;
    const spec = this.#spec;
    const idleTimeoutMs = plan.grant.idleTimeoutMs ?? deps.idleTimeoutMs;
    const channels = channelsFor(deps, traits, spec, socket, idleTimeoutMs);
    // Abandoned already: its connection ended, so nothing reaches the client anyway.
    if (this.#claimed) return refuseOver(channels, 'the session was ended before its stream opened');
    this.#claimed = true;
    let result: SessionResult = { outcome: 'error', exit: null, status: null, bytesIn: 0, bytesOut: 0 };
    try {
      result = await runExecSession({
        channels,
        backend: this.#backend,
        spec,
        ...(this.started ? { started: this.started } : {}),
        log: this.log,
        ...(plan.initialSize ? { initialSize: plan.initialSize } : {}),
        idleTimeoutMs,
        maxDurationMs: plan.grant.maxDurationMs ?? deps.maxDurationMs,
        stop: this.#stopper.signal,
        progress: this.#progress,
        onProcessStarted: () => metrics.sessionStartSeconds.observe({ mode: plan.target.mode }, (performance.now() - plan.receivedAt) / 1000),
      });
    } finally {
      this.#end(result);
    }
  }

  /** Ends a session whose WebSocket never opened: its process is ended, then the end is recorded. */
  abandon(reason: string): void {
    if (this.#claimed) return;
    this.#claimed = true;
    this.log.info({ reason }, 'client left before the session opened');
    const result: SessionResult = { outcome: 'disconnect', exit: null, status: null, bytesIn: 0, bytesOut: 0 };
    if (!this.started) return this.#end(result);
    this.started
      .then(
        async (process) => {
          result.exit = await endUnusedProcess(process, this.log);
        },
        () => undefined, // it never started
      )
      .finally(() => this.#end(result));
  }

  /** Adds the bytes relayed since the last report to execlet_relayed_bytes_total. */
  #reportRelayed(): void {
    const progress = this.#progress;
    const reported = this.#relayedReported;
    if (progress.bytesIn > reported.bytesIn) {
      metrics.relayedBytes.inc({ direction: 'in', stream: 'stdin' }, progress.bytesIn - reported.bytesIn);
      reported.bytesIn = progress.bytesIn;
    }
    if (progress.bytesOut > reported.bytesOut) {
      metrics.relayedBytes.inc({ direction: 'out', stream: this.#spec.tty ? 'tty' : 'stdout+stderr' }, progress.bytesOut - reported.bytesOut);
      reported.bytesOut = progress.bytesOut;
    }
  }

  /** Records the end (metrics, audit, log) and unregisters, once. */
  #end(result: SessionResult): void {
    if (this.#ended) return;
    this.#ended = true;
    const mode = this.plan.target.mode;
    try {
      const durationMs = Math.round(performance.now() - this.#startedAt);
      metrics.sessionsEnded.inc({ mode, protocol: this.traits.name, outcome: result.outcome });
      metrics.sessionDurationSeconds.observe({ mode }, durationMs / 1000);
      this.#reportRelayed();
      this.deps.audit.write({
        event: 'session.end',
        ...this.auditCommon,
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
      this.log.info(
        { outcome: result.outcome, exitCode: result.exit?.code ?? null, error: result.exit?.error, bytesIn: result.bytesIn, bytesOut: result.bytesOut, durationMs },
        'session ended',
      );
    } finally {
      this.#stopReportingRelayed();
      this.#unregister();
      metrics.sessionsActive.dec({ mode });
    }
  }
}

/** What a client is told when its session's audit record cannot be written and the audit log fails closed. */
export const AUDIT_REFUSAL = 'the session was refused: its audit record could not be written';

/**
 * The client's channels over `socket`, for a session of `spec`. After the end, a client that is
 * there with output still on its way is waited for as long as the session's idle timeout: output
 * nobody takes for that long ends a session too.
 */
function channelsFor(deps: RunnerDeps, traits: ProtocolTraits, spec: Omit<ExecSpec, 'initialSize'>, socket: WebSocket, idleTimeoutMs = deps.idleTimeoutMs): WebSocketChannels {
  const { stdin, stdout, stderr } = spec;
  return new WebSocketChannels(socket, traits, {
    stdin,
    stdout,
    stderr,
    highWaterMark: deps.outputHighWaterMark,
    pingIntervalMs: deps.pingIntervalMs,
    closeWaitMs: deps.closeWaitMs,
    maxCloseWaitMs: idleTimeoutMs,
  });
}

/** Ends a stream that runs no session with a Failure Status saying why (500). */
function refuseOver(channels: WebSocketChannels, message: string): void {
  channels.attach({ stdin() {}, stdinEnd() {}, resize() {}, clientGone() {} });
  channels.finish(failureStatus('InternalError', message, 500));
}

/** Sets up and runs a session whose WebSocket is already open (the stream-URL route). */
export async function runPlannedSession(deps: RunnerDeps, plan: ExecPlan, traits: ProtocolTraits, socket: WebSocket, parentLog: FastifyBaseLogger): Promise<void> {
  const session = BegunSession.begin(deps, plan, traits, parentLog);
  if (session) return session.run(socket);
  refuseOver(channelsFor(deps, traits, plan.spec, socket), AUDIT_REFUSAL);
}
