// Every Prometheus metric of the agent, in one registry.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

export const metrics = {
  sessionsActive: new Gauge({
    name: 'execlet_sessions_active',
    help: 'Exec sessions currently running, by mode.',
    labelNames: ['mode'] as const,
    registers: [registry],
  }),
  sessionsEnded: new Counter({
    name: 'execlet_sessions_ended_total',
    help: 'Exec sessions that ended, by mode and outcome (exited, disconnect, error).',
    labelNames: ['mode', 'outcome'] as const,
    registers: [registry],
  }),
  auditFailures: new Counter({
    name: 'execlet_audit_write_failures_total',
    help: 'Audit records that could not be written.',
    registers: [registry],
  }),
};
