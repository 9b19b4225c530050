// Every Prometheus metric of the agent, in one registry. Labels take only bounded values: modes,
// protocols, outcomes, reasons, operations — never session ids, commands, users or pod names.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });
// prom-client names these gauges *_total, which Prometheus reserves for counters (promtool
// rejects them); the same facts remain in nodejs_active_handles / nodejs_active_requests.
for (const misnamed of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
  registry.removeSingleMetric(misnamed);
}

let engineProbe: () => Promise<boolean> = async () => false;

/** How execlet_engine_up learns, at scrape time, whether the engine answers. */
export function setEngineProbe(probe: () => Promise<boolean>): void {
  engineProbe = probe;
}

let openConnectionsProbe: () => Promise<number> = async () => 0;

/** How execlet_open_connections learns, at scrape time, how many client connections are open. */
export function setOpenConnectionsProbe(probe: () => Promise<number>): void {
  openConnectionsProbe = probe;
}

/** Live sessions' reports of bytes relayed since their last one, called at each scrape. */
const relayedReporters = new Set<() => void>();

/**
 * Has `report` add a live session's bytes to execlet_relayed_bytes_total at each scrape, until the
 * returned function is called (when the session ends, after its last report).
 */
export function reportRelayedAtScrape(report: () => void): () => void {
  relayedReporters.add(report);
  return () => relayedReporters.delete(report);
}

export const metrics = {
  sessionsActive: new Gauge({
    name: 'execlet_sessions_active',
    help: 'Exec sessions currently running, by mode.',
    labelNames: ['mode'] as const,
    registers: [registry],
  }),
  sessionsStarted: new Counter({
    name: 'execlet_sessions_started_total',
    help: 'Exec sessions started, by mode and protocol.',
    labelNames: ['mode', 'protocol'] as const,
    registers: [registry],
  }),
  sessionsEnded: new Counter({
    name: 'execlet_sessions_ended_total',
    help: 'Exec sessions that ended, by mode, protocol and outcome (exited, disconnect, idle, maxDuration, killed, shutdown, error).',
    labelNames: ['mode', 'protocol', 'outcome'] as const,
    registers: [registry],
  }),
  clientsDropped: new Counter({
    name: 'execlet_clients_dropped_total',
    help: 'Clients the agent took for gone and disconnected, by reason: unacknowledged (output in flight, nothing acknowledged since a ping), window_probes (receive buffer full, probes unanswered), no_pong and no_progress (where the kernel cannot be asked), close_wait (after the end, the wait for the client ran out).',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  sessionStartSeconds: new Histogram({
    name: 'execlet_session_start_seconds',
    help: 'Time from the request arriving to the process running.',
    labelNames: ['mode'] as const,
    // nsenter sessions start in about a millisecond, docker execs in tens.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  }),
  sessionDurationSeconds: new Histogram({
    name: 'execlet_session_duration_seconds',
    help: 'How long sessions lasted.',
    labelNames: ['mode'] as const,
    buckets: [0.1, 1, 10, 60, 300, 1800, 3600, 14400, 43200],
    registers: [registry],
  }),
  relayedBytes: new Counter({
    name: 'execlet_relayed_bytes_total',
    help: 'Bytes relayed between clients and processes, by direction (in: to the process) and stream; live sessions count at each scrape.',
    labelNames: ['direction', 'stream'] as const,
    registers: [registry],
    collect() {
      for (const report of relayedReporters) report();
    },
  }),
  openConnections: new Gauge({
    name: 'execlet_open_connections',
    help: 'Client connections open (TLS handshakes under way included), counted at every scrape.',
    registers: [registry],
    async collect() {
      this.set(await openConnectionsProbe());
    },
  }),
  connectionsRefused: new Counter({
    name: 'execlet_connections_refused_total',
    help: "Client connections closed as they were accepted because maxConnections were open and every other was an authenticated caller's (a request in flight, a session).",
    registers: [registry],
  }),
  connectionsEvicted: new Counter({
    name: 'execlet_connections_evicted_total',
    help: "Client connections that were no authenticated caller's (a TLS handshake under way, an idle keep-alive, an unauthenticated request) closed to make room at maxConnections.",
    registers: [registry],
  }),
  authenticationFailures: new Counter({
    name: 'execlet_authentication_failures_total',
    help: 'Requests refused because the caller could not be identified, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  authorizationFailures: new Counter({
    name: 'execlet_authorization_failures_total',
    help: 'Requests refused by policy or limits, by reason (mode, target, command, tty, stdin, limit, rate, origin).',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  orphansReaped: new Counter({
    name: 'execlet_orphans_reaped_total',
    help: 'Processes left by ended sessions or an earlier agent instance that were killed.',
    registers: [registry],
  }),
  engineErrors: new Counter({
    name: 'execlet_engine_errors_total',
    help: 'Docker Engine API calls that failed, by operation.',
    labelNames: ['operation'] as const,
    registers: [registry],
  }),
  engineUp: new Gauge({
    name: 'execlet_engine_up',
    help: 'Whether the Docker engine answers (1) or not (0), checked at every scrape.',
    registers: [registry],
    async collect() {
      this.set((await engineProbe()) ? 1 : 0);
    },
  }),
  servingCertificateExpiry: new Gauge({
    name: 'execlet_serving_certificate_expiry_timestamp_seconds',
    help: 'When the certificate the agent serves expires (Unix time); follows reloads.',
    registers: [registry],
  }),
  servingTlsReloads: new Counter({
    name: 'execlet_serving_tls_reloads_total',
    help: 'Re-reads of the TLS files (SIGHUP or a change), by outcome: success, or failure (the previous certificate stays).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  tokenFileReloads: new Counter({
    name: 'execlet_token_file_reloads_total',
    help: 'Re-reads of the token file (SIGHUP or a change), by outcome: success, or failure (the previous tokens stay).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  auditFailures: new Counter({
    name: 'execlet_audit_write_failures_total',
    help: 'Audit records that could not be written.',
    registers: [registry],
  }),
};

// Every stream's series exists from the start, at 0, so rate() sees the first session's bytes.
for (const labels of [
  { direction: 'in', stream: 'stdin' },
  { direction: 'out', stream: 'stdout+stderr' },
  { direction: 'out', stream: 'tty' },
] as const) {
  metrics.relayedBytes.inc(labels, 0);
}
for (const outcome of ['success', 'failure'] as const) metrics.servingTlsReloads.inc({ outcome }, 0);
