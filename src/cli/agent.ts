// Assembles a running agent from validated settings: credentials, backends, authentication,
// policy, audit, stream URLs and the HTTPS server. `serve` runs one; tests run one in-process.
import type { Server as TlsServer } from 'node:tls';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuditLog, AuditLogError } from '../auth/audit.js';
import { Authenticator } from '../auth/authenticate.js';
import { prepareLocalCredentials, renewGeneratedServing, saveGeneratedServing, writeLocalKubeconfig, type LocalKubeconfig } from '../auth/local-credentials.js';
import type { KeyAndCert } from '../auth/self-signed.js';
import { Policy, WITHOUT_POLICY } from '../auth/policy.js';
import { ReloadableAuthorizer } from '../auth/reloadable.js';
import { describeCertificate, readClientCA, rereadServingTls, ReloadableServingTls } from '../auth/serving-tls.js';
import { StreamTokenCache, type Clock } from '../auth/stream-tokens.js';
import { TokenFile } from '../auth/token-file.js';
import { DockerBackend } from '../backend/docker.js';
import { NsenterBackend } from '../backend/nsenter.js';
import { isConsoleEnabled, isNsenterEnabled, splitListen, type Settings } from '../config/settings.js';
import { metrics, setEngineProbe } from '../metrics.js';
import { loadTcpModule } from '../protocol/peer-liveness.js';
import { buildApp } from '../server/app.js';
import { listenFailure } from './listen-failure.js';
import type { StreamGrant } from '../server/session-routes.js';
import { SessionRegistry } from '../session/registry.js';
import { reapOrphans, startPeriodicReaper } from '../session/reaper.js';
import { markerEnv, newInstanceId, scopeFor } from '../session/session-marker.js';
import { agentMountNamespace, nodeNamespacePid, TargetResolver } from '../target/resolve.js';

export interface Agent {
  app: FastifyInstance;
  kubeconfig: LocalKubeconfig;
  /** The console's address with the local token in its fragment (never sent to the server), or null when it is off. */
  consoleUrl: string | null;
  registry: SessionRegistry;
  /** Re-reads the TLS files, the token file and the policy (SIGHUP); a broken file keeps the previous one in force. */
  reload(): void;
  /**
   * Graceful shutdown (SIGTERM): refuses new requests, tells every session the agent is shutting
   * down, ends their processes, and closes — within `graceMs`.
   */
  shutdown(graceMs: number): Promise<void>;
  close(): Promise<void>;
}

/** How long close() lets HTTP requests in flight finish before it closes their connections. */
const FORCE_CLOSE_AFTER_MS = 1000;

/** What the agent's own set-up logs through: stderr at first, then the server's logger. */
interface AgentLog {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface AgentOverrides {
  /** The clock of the stream URL cache (tests move it forward). */
  clock?: Clock;
  /** How long a new connection may wait for its first request (tests shorten it). */
  firstRequestTimeoutMs?: number;
  /** How long a TLS handshake may take (tests shorten it). */
  handshakeTimeoutMs?: number;
  /** The agent's mount namespace as `agentMountNamespace()` finds it (tests name a container's, as if the agent ran in it). */
  agentMountNamespace?: string;
  /** How often, and with how many days left, a generated serving certificate is renewed (tests renew a fresh one at once). */
  generatedRenewal?: { everyMs: number; daysLeft: number };
  /** How long a finished session's client is given to take its output and answer the close (tests shorten it). */
  closeWaitMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** How long a changed token file must stay quiet before the sessions it no longer admits are ended. */
const TOKEN_FILE_SETTLE_MS = 1000;

export async function startAgent(settings: Settings, overrides: AgentOverrides = {}): Promise<Agent> {
  const credentials = prepareLocalCredentials(settings);
  // The operator's key and certificate are checked as a reload checks them: a pair that does not
  // fit, a PEM that does not parse, an expired certificate — an exit naming the file, not OpenSSL's words.
  if (settings.tls.certFile) rereadServingTls(settings.tls, credentials);
  const { host, port } = splitListen(settings.listen);
  const nsenterEnabled = isNsenterEnabled(settings);
  const docker = new DockerBackend({
    dockerHost: settings.dockerHost,
    killGraceMs: settings.killGraceMs,
    onEngineError: (operation) => metrics.engineErrors.inc({ operation }),
    onEventStreamChange: (connected, err) => {
      if (connected) log.info({}, "subscribed to the engine's events: exit codes need no inspect, and the container list is reused until a container changes");
      else if (err) log.warn({ err: err.message }, "the engine's event stream ended: until it is back, exit codes come from inspecting each exec and the container list is reused for 1 s");
    },
  });
  const nsenter = new NsenterBackend({
    killGraceMs: settings.killGraceMs,
    standby: true,
    onStandbyError: (err) => log.warn({ err: err.message }, 'the standby nsenter helper failed; a session without a TTY starts its own helper until the next standby is ready'),
  });
  if (nsenterEnabled) nsenter.helper(); // fail at start-up, not at the first session, when the nsenter helper was not built
  const nodePid = nodeNamespacePid();
  setEngineProbe(() => docker.ping().then(() => true, () => false));
  const tokenFile = settings.tokenFile ? TokenFile.load(settings.tokenFile) : null;
  const authorizer = new ReloadableAuthorizer(settings.policyFile ? Policy.load(settings.policyFile) : WITHOUT_POLICY);
  const clientCA = settings.tls.clientCAFile ? readClientCA(settings.tls.clientCAFile) : undefined;
  // New connections get the TLS files as they are now (SIGHUP, or a change); open ones keep theirs.
  const servingTls = new ReloadableServingTls(
    settings.tls,
    { keyPem: credentials.keyPem, certPem: credentials.certPem, ...(clientCA !== undefined ? { clientCAPem: clientCA } : {}) },
    (options) => (app.server as unknown as TlsServer).setSecureContext(options),
    {
      reloaded: (certificate, why) => {
        metrics.servingCertificateExpiry.set(certificate.notAfter.getTime() / 1000);
        metrics.servingTlsReloads.inc({ outcome: 'success' });
        log.info({ why, subject: certificate.subject, notAfter: certificate.notAfter.toISOString(), fingerprint256: certificate.fingerprint256 }, 'TLS certificate and key reloaded');
      },
      refused: (err, why) => {
        metrics.servingTlsReloads.inc({ outcome: 'failure' });
        log.error({ why, err: err.message }, 'TLS files not reloaded; the previous certificate and key stay in force');
      },
      unwatched: (err) => log.warn({ err: err.message }, 'the TLS files are not watched for changes; SIGHUP reloads them'),
    },
  );
  const auditFile = settings.audit.file === 'none' ? null : (settings.audit.file ?? join(settings.stateDir, 'audit.log'));
  // Until the server's logger exists, what must be said goes to stderr.
  const early = (obj: object, msg: string) => void process.stderr.write(`execlet: ${msg} ${JSON.stringify(obj)}\n`);
  let log: AgentLog = { error: early, warn: early, info: () => undefined };
  const audit = new AuditLog({
    file: auditFile,
    stdout: settings.audit.stdout,
    maxBytes: settings.audit.maxBytes,
    keep: settings.audit.keep,
    failClosed: settings.audit.failClosed,
    redact: settings.audit.redact.map((source) => new RegExp(source)),
    onError: (err) => {
      metrics.auditFailures.inc();
      log.error({ err: err.message, file: auditFile }, 'AUDIT LOG WRITE FAILED');
    },
  });
  // An audit file that cannot be opened is said at start-up, not at the first session; with
  // failClosed every session would be refused, so the agent does not start.
  const auditOpenError = audit.lastError;
  if (auditOpenError && settings.audit.failClosed) {
    audit.close();
    throw new AuditLogError(`cannot open the audit log ${auditFile}: ${auditOpenError.message}; with audit.failClosed (--audit-fail-closed) every session would be refused`);
  }
  const registry = new SessionRegistry({
    maxPerNode: settings.sessions.maxPerNode,
    maxPerUser: settings.sessions.maxPerUser,
    ratePerUserPerMinute: settings.sessions.ratePerUserPerMinute,
  });
  // Every process of a session carries EXECLET_SESSION=<scope>.<instance>.<session>: after a crash,
  // the next instance (same state dir, same scope) finds and kills what the last one left.
  const marker = { scope: scopeFor(settings.stateDir), instance: newInstanceId() };
  const ownMounts = settings.policyFile ? undefined : (overrides.agentMountNamespace ?? agentMountNamespace());
  const resolver = new TargetResolver(docker, {
    nodeName: settings.nodeName,
    nsenterEnabled,
    nodePid: nodePid.pid,
    changes: docker.containerChanges,
    // Without a policy, exec into the agent's own container is the local token's (WITHOUT_POLICY).
    ...(ownMounts !== undefined ? { agentMountNamespace: ownMounts } : {}),
  });
  let draining = false;
  const app = await buildApp({
    tls: servingTls.current,
    ...(overrides.firstRequestTimeoutMs !== undefined ? { firstRequestTimeoutMs: overrides.firstRequestTimeoutMs } : {}),
    ...(overrides.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: overrides.handshakeTimeoutMs } : {}),
    maxConnections: settings.maxConnections,
    authenticator: new Authenticator({ localToken: credentials.token, tokenFile, clientCertificates: Boolean(clientCA) }),
    authorizer,
    audit,
    // A user holds at most as many stream URLs as it may have sessions: more could not all be opened.
    streamTokens: new StreamTokenCache<StreamGrant>({ maxPerOwner: settings.sessions.maxPerUser, ...(overrides.clock ? { clock: overrides.clock } : {}) }),
    registry,
    docker,
    nsenter,
    resolver,
    nsenterEnabled,
    consoleEnabled: isConsoleEnabled(settings),
    allowedOrigins: settings.allowedOrigins,
    checkEngine: () => docker.ping(),
    nodeName: settings.nodeName,
    logLevel: settings.logLevel,
    sessions: {
      idleTimeoutMs: settings.sessions.idleTimeoutSeconds * 1000,
      maxDurationMs: settings.sessions.maxDurationSeconds * 1000,
      pingIntervalMs: settings.sessions.pingIntervalSeconds * 1000,
      outputHighWaterMark: settings.sessions.outputHighWaterMarkBytes,
      ...(overrides.closeWaitMs !== undefined ? { closeWaitMs: overrides.closeWaitMs } : {}),
    },
    markerEnv: (session) => markerEnv({ ...marker, session }),
    isDraining: () => draining,
  });
  log = app.log;
  // Until this version, commas separated audit.redact patterns in flags and the environment.
  const withCommas = settings.audit.redact.filter((source) => source.replace(/\{\d*,\d*\}/g, '').includes(','));
  if (withCommas.length > 0) {
    log.warn({ patterns: withCommas }, 'audit.redact: each of these patterns holds a comma and is one regular expression; for several, give one per --audit-redact, or one per line in EXECLET_AUDIT_REDACT');
  }
  if (auditOpenError) log.warn({ err: auditOpenError.message, file: auditFile }, 'the audit log cannot be opened: every record tries it again (sessions are not refused: audit.failClosed is off)');
  const reaperOptions = {
    scope: marker.scope,
    instance: marker.instance,
    isLive: (session: string) => registry.has(session),
    graceMs: settings.killGraceMs,
    onReaped: (orphan: { pid: number; marker: { instance: string; session: string } }) => {
      metrics.orphansReaped.inc();
      app.log.warn({ pid: orphan.pid, instance: orphan.marker.instance, session: orphan.marker.session }, 'killed a process left behind by an ended session or an earlier agent');
    },
  };
  const reaped = await reapOrphans(reaperOptions);
  if (reaped.killed > 0) app.log.warn({ processes: reaped.killed, sessions: reaped.sessions.length }, 'reaped processes left by an earlier agent');
  const reaper = startPeriodicReaper({
    ...reaperOptions,
    intervalMs: settings.reaperIntervalSeconds * 1000,
    // After the session's own ending of its processes (SIGHUP, SIGKILL after the grace) is over.
    soonDelayMs: settings.killGraceMs + 1000,
    onError: (err: Error) => app.log.error({ err: err.message }, 'the orphan sweep failed'),
  });
  // What an ended session left running in the background (`sleep 600 &`) is an orphan now: swept
  // within seconds rather than at the next interval.
  registry.onEnded(() => reaper.soon());
  if (nsenterEnabled && nodePid.note) app.log.warn({ nodePid: nodePid.pid }, nodePid.note);
  if (ownMounts !== undefined) {
    resolver.findAgentContainer().then(
      (id) =>
        id
          ? app.log.info({ container: id.slice(0, 12) }, "the agent runs in this container: without a policy, only the local token may exec into it")
          : app.log.info({}, "the agent's own container is not known from its engine shim: without a policy, each exec target is checked for it by its init's mount namespace"),
      (err: Error) => app.log.warn({ err: err.message }, "looking for the agent's own container failed: each exec target is checked for it by its init's mount namespace"),
    );
  }
  if (nsenterEnabled && nsenter.spawnerFallback) {
    app.log.warn({ reason: nsenter.spawnerFallback }, 'nsenter sessions start their helper with node-pty and child_process, a fork of the whole agent each');
  }
  const tcpModule = loadTcpModule();
  if ('unavailable' in tcpModule) {
    app.log.warn({ reason: tcpModule.unavailable }, 'a client that misses a pong is judged without its kernel: one that stops reading (kubectl piped into less) is dropped as gone');
  }
  metrics.servingCertificateExpiry.set(describeCertificate(servingTls.current.certPem).notAfter.getTime() / 1000);

  let stopWatching: (() => void) | undefined;
  let stopWatchingTls: (() => void) | null = null;
  let renewal: NodeJS.Timeout | null = null;
  let revokeAfterTokenChange: NodeJS.Timeout | undefined;
  /**
   * Stops serving. A finished session's connection still delivering its output to its client (or
   * waiting for a client that is there to take it, channel-connection.ts) gets `deliverForMs`.
   */
  const close = async (deliverForMs = FORCE_CLOSE_AFTER_MS) => {
    draining = true; // requests that still come (kept-alive connections) get a Status 503
    if (renewal) clearInterval(renewal);
    clearTimeout(revokeAfterTokenChange);
    reaper.stop();
    stopWatching?.();
    stopWatchingTls?.();
    // fastify closes the idle connections; a TLS connection that never sent a request does not count
    // as idle to Node.js and would hold the close (and SIGTERM) for as long as the peer likes. What
    // is still open after a moment — a request still in flight gets that long — is closed.
    const forceClose = setTimeout(() => app.server.closeAllConnections(), FORCE_CLOSE_AFTER_MS);
    // Upgraded connections are no longer the HTTP server's to close, and fastify waits for them.
    const endDeliveries = setTimeout(() => {
      for (const client of app.websocketServer.clients) client.terminate();
    }, deliverForMs);
    try {
      await app.close();
    } finally {
      clearTimeout(forceClose);
      clearTimeout(endDeliveries);
      nsenter.close(); // its standby would hold the event loop
    }
    docker.close();
    audit.close();
  };

  docker.watchEvents();
  let kubeconfig: ReturnType<typeof writeLocalKubeconfig>;
  try {
    await app.listen({ host, port });
    const address = app.server.address();
    kubeconfig = writeLocalKubeconfig(settings, credentials, typeof address === 'object' && address ? address.port : port);
  } catch (err) {
    // What was started so far (the engine's event stream, the orphan sweep, the listener) would keep
    // a process that cannot serve alive.
    await close().catch(() => undefined);
    throw listenFailure(err, settings.listen) ?? err;
  }
  // Watched only once serving: a watcher would keep a process that failed to listen alive. Files
  // that cannot be watched (out of inotify instances, say) do not stop the agent: SIGHUP reloads them.
  /** What a reload of the token file (on a change or SIGHUP) logs. */
  const tokenFileReloaded = (error: Error | null) => {
    metrics.tokenFileReloads.inc({ outcome: error ? 'failure' : 'success' });
    if (error) app.log.error({ err: error.message }, 'token file not reloaded; the previous tokens stay in force');
    else app.log.info({ tokens: tokenFile?.size }, 'token file reloaded');
  };
  /**
   * After a change of the token file, sessions whose token is gone, or whose user's groups no longer
   * grant them, end — once the file has been quiet for TOKEN_FILE_SETTLE_MS: a file rewritten in
   * place (truncated, then written) must not end every session in between. A change that does not
   * parse (a line half written) restarts that wait too, but leaves the tokens in force as they
   * were: a revocation an earlier change asked for comes all the same, judged by those tokens, the
   * ones new requests are judged by.
   */
  const tokenFileChanged = (error: Error | null) => {
    tokenFileReloaded(error);
    if (error && revokeAfterTokenChange === undefined) return;
    clearTimeout(revokeAfterTokenChange);
    revokeAfterTokenChange = setTimeout(() => {
      revokeAfterTokenChange = undefined;
      const revoked = registry.revokeDisallowed('the session was ended: a change of the token file revoked this access');
      if (revoked > 0) app.log.info({ revoked }, 'sessions the token file no longer admits were ended');
    }, TOKEN_FILE_SETTLE_MS);
    revokeAfterTokenChange.unref();
  };
  if (tokenFile) {
    const unwatched = (err: Error) => app.log.warn({ err: err.message }, 'the token file is not watched for changes; SIGHUP reloads it');
    try {
      stopWatching = tokenFile.watch(tokenFileChanged, unwatched);
    } catch (err) {
      unwatched(err as Error);
    }
  }
  stopWatchingTls = servingTls.watch();
  // A generated certificate lasts a year; an agent may run longer. Checked daily, renewed a month ahead.
  const { generatedCA } = credentials;
  renewal = !generatedCA
    ? null
    : setInterval(() => {
        const current = servingTls.current;
        let renewed: KeyAndCert;
        try {
          renewed = renewGeneratedServing(settings, generatedCA, current, overrides.generatedRenewal?.daysLeft);
        } catch (err) {
          app.log.error({ err: (err as Error).message }, 'the generated serving certificate could not be renewed; the current one stays in force');
          return;
        }
        if (renewed === current) return;
        // Served first: a state dir that cannot be written (full, read-only) must not keep it from clients.
        servingTls.renewGenerated(renewed);
        try {
          saveGeneratedServing(settings, renewed);
        } catch (err) {
          app.log.error({ err: (err as Error).message }, 'the renewed serving certificate is served, but could not be written to the state dir; the next start issues another');
        }
      }, overrides.generatedRenewal?.everyMs ?? DAY_MS);
  renewal?.unref();
  app.log.info(
    {
      url: kubeconfig.serverUrl,
      kubeconfig: kubeconfig.path,
      dockerHost: settings.dockerHost,
      nodeName: settings.nodeName,
      nsenter: nsenterEnabled,
      ...(nsenterEnabled ? { nsenterSpawner: nsenter.spawner } : {}),
      policy: settings.policyFile ?? null,
      tokenFile: settings.tokenFile ?? null,
      clientCertificates: Boolean(clientCA),
      audit: auditFile,
    },
    'execlet is serving',
  );

  return {
    app,
    kubeconfig,
    consoleUrl: isConsoleEnabled(settings) ? `${kubeconfig.serverUrl}/#token=${encodeURIComponent(credentials.token)}` : null,
    reload() {
      servingTls.reload('SIGHUP');
      if (tokenFile) tokenFileReloaded(tokenFile.reload());
      if (settings.policyFile) {
        try {
          authorizer.replace(Policy.load(settings.policyFile));
          app.log.info({ policy: settings.policyFile }, 'policy reloaded');
        } catch (err) {
          app.log.error({ err: (err as Error).message }, 'policy not reloaded; the previous policy stays in force');
        }
      }
      // Once both are read again: a user whose new groups only the new policy grants stays.
      if (!tokenFile && !settings.policyFile) return;
      const revoked = registry.revokeDisallowed('the session was ended: a reload of the policy or the token file revoked this access');
      if (revoked > 0) app.log.info({ revoked }, 'sessions the reloaded policy or token file no longer admits were ended');
    },
    registry,
    async shutdown(graceMs: number) {
      draining = true;
      const started = Date.now();
      const ended = await registry.endAll('the agent is shutting down', graceMs);
      if (!ended) app.log.warn({ sessions: registry.size }, 'sessions still running at the end of the shutdown grace');
      app.log.info({ ms: Date.now() - started }, 'sessions ended');
      // What is left of the grace goes to delivering the sessions' last output.
      await close(Math.max(FORCE_CLOSE_AFTER_MS, graceMs - (Date.now() - started)));
    },
    close,
  };
}
