// Authorization of one resolved target for one identity: maps the target to the policy's terms,
// asks the policy, enforces the grant's session limit, and audits every refusal.
import type { AuditLog, AuditTarget } from '../auth/audit.js';
import type { Identity } from '../auth/authenticate.js';
import type { AccessRequest, Authorizer, Grant, PolicyMode, PolicyTarget } from '../auth/policy.js';
import { metrics } from '../metrics.js';
import { SessionLimitExceeded, type SessionRegistry } from '../session/registry.js';
import type { ExecMode } from '../target/modes.js';
import type { Target } from '../target/resolve.js';

export class AccessDenied extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string,
  ) {
    super(message);
    this.name = 'AccessDenied';
  }
}

export interface AccessDeps {
  authorizer: Authorizer;
  audit: AuditLog;
  registry: SessionRegistry;
  nodeName: string;
}

export function policyMode(mode: ExecMode): PolicyMode {
  return mode === 'toolbox' ? 'nsenter' : mode;
}

export function policyTarget(target: Target): PolicyTarget {
  const { pod, container } = target;
  return {
    namespace: pod.namespace,
    pod: pod.name,
    container: container.name,
    ...(pod.plain ? { dockerName: container.name } : {}),
    labels: container.labels,
    ...(target.agentContainer ? { agentContainer: true } : {}),
  };
}

export function auditTarget(target: Target, nodeName: string): AuditTarget {
  return {
    node: nodeName,
    namespace: target.pod.namespace,
    pod: target.pod.name,
    container: target.container.name,
    ...(target.container.containerId ? { containerId: target.container.containerId } : {}),
    ...(target.place.kind === 'namespaces' ? { pid: target.place.pid } : {}),
  };
}

export function auditIdentity(identity: Identity) {
  return { user: identity.user, groups: identity.groups, method: identity.method, address: identity.address };
}

export interface AccessQuestion {
  identity: Identity;
  target: Target;
  command: string[];
  tty: boolean;
  stdin: boolean;
}

/** The question in the policy's terms. */
export function accessRequest({ identity, target, command, tty, stdin }: AccessQuestion): AccessRequest {
  return { subject: { user: identity.user, groups: identity.groups }, mode: policyMode(target.mode), target: policyTarget(target), command, tty, stdin };
}

/** Audits a refusal of `question` and throws it as AccessDenied. */
function deny(deps: AccessDeps, { identity, target, command }: AccessQuestion, code: number, reason: string, message: string): never {
  deps.audit.write({
    event: 'access.denied',
    identity: auditIdentity(identity),
    target: auditTarget(target, deps.nodeName),
    mode: target.mode,
    command,
    code,
    reason,
    message,
  });
  throw new AccessDenied(message, code, reason);
}

/**
 * Returns the grant, or throws AccessDenied (403, or 429 beyond a session limit) after auditing it.
 * `countStart` false: the number of live sessions is checked but the start is not counted towards
 * the user's rate — a stream URL being opened (counted when it was issued), or a request counted
 * by admitStart() once it is sure to start a session.
 */
export function authorize(deps: AccessDeps, question: AccessQuestion, countStart = true): Grant {
  const { user } = question.identity;
  const decision = deps.authorizer.decide(accessRequest(question));
  if (!decision.allowed) {
    metrics.authorizationFailures.inc({ reason: decision.reason });
    return deny(deps, question, 403, 'Forbidden', decision.message);
  }
  const { grant } = decision;
  if (grant.maxSessions !== undefined && deps.registry.countFor(user, grant.budget) >= grant.maxSessions) {
    metrics.authorizationFailures.inc({ reason: 'limit' });
    return deny(deps, question, 429, 'TooManyRequests', `user "${user}" already has ${grant.maxSessions} open sessions, the most this access allows`);
  }
  withinLimits(deps, question, () => (countStart ? deps.registry.admit(user) : deps.registry.checkCapacity(user)));
  return grant;
}

/**
 * Counts a start authorized with `countStart` false towards the user's rate, once the request is
 * sure to become a session (its upgrade will happen); throws AccessDenied 429 beyond the rate.
 */
export function admitStart(deps: AccessDeps, question: AccessQuestion): void {
  withinLimits(deps, question, () => deps.registry.admit(question.identity.user));
}

/** Runs a check of the registry's limits; one exceeded is counted, audited and thrown as AccessDenied 429. */
function withinLimits(deps: AccessDeps, question: AccessQuestion, check: () => void): void {
  try {
    check();
  } catch (err) {
    if (!(err instanceof SessionLimitExceeded)) throw err;
    metrics.authorizationFailures.inc({ reason: err.reason });
    deny(deps, question, 429, 'TooManyRequests', err.message);
  }
}

/** Audits a refusal that happened before a target was known (authentication, bad request, unknown pod). */
export function auditRefusal(
  audit: AuditLog,
  identity: Identity | null,
  code: number,
  reason: string,
  message: string,
  details: { mode?: string | null; command?: string[]; target?: AuditTarget | null } = {},
): void {
  audit.write({
    event: 'access.denied',
    identity: identity ? auditIdentity(identity) : null,
    target: details.target ?? null,
    mode: details.mode ?? null,
    command: details.command ?? [],
    code,
    reason,
    message,
  });
}
