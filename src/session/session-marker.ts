// The environment variable every process execlet starts carries, so that the agent can find its
// processes again through /proc after it was killed (even with SIGKILL) and restarted:
// `EXECLET_SESSION=<scope>.<instance>.<session>`.
//  - scope: one deployment of the agent on this host (a hash of its state dir), so that two agents
//    with different state dirs never touch each other's processes;
//  - instance: random per agent start, so a restarted agent knows every older process is an orphan;
//  - session: the session id, so a running agent can tell live sessions from leftovers.
import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';

export const MARKER_VARIABLE = 'EXECLET_SESSION';

export interface Marker {
  scope: string;
  instance: string;
  session: string;
}

/** Longest session id a marker may carry (a UUID has 36 characters); bounds what is read from /proc. */
export const MAX_SESSION_LENGTH = 128;

const SCOPE_PATTERN = /^[0-9a-f]{12}$/;
const INSTANCE_PATTERN = /^[0-9a-f]{12}$/;
const SESSION_PATTERN = new RegExp(`^[A-Za-z0-9-]{1,${MAX_SESSION_LENGTH}}$`);

/** Longest valid marker value: scope, instance and session joined by two dots. */
export const MAX_MARKER_LENGTH = 12 + 1 + 12 + 1 + MAX_SESSION_LENGTH;

/**
 * The scope of the agent whose state lives in `stateDir`: the first 12 hex characters of the SHA-256
 * of the absolute path (a relative path is resolved against the working directory; a trailing slash
 * makes no difference; symbolic links are not followed).
 */
export function scopeFor(stateDir: string): string {
  return createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12);
}

/** A fresh instance id, 12 hex characters; one per agent start. */
export function newInstanceId(): string {
  return randomBytes(6).toString('hex');
}

function isValid(marker: Marker): boolean {
  return SCOPE_PATTERN.test(marker.scope) && INSTANCE_PATTERN.test(marker.instance) && SESSION_PATTERN.test(marker.session);
}

/**
 * The value of the variable, without its name. Throws for a marker that parseMarker would reject:
 * a process started with such a marker could never be found again.
 */
export function formatMarker(marker: Marker): string {
  if (!isValid(marker)) {
    throw new Error(
      `invalid session marker ${JSON.stringify(marker)}: scope and instance must be 12 lowercase hex characters, ` +
        `session 1 to ${MAX_SESSION_LENGTH} characters of [A-Za-z0-9-]`,
    );
  }
  return `${marker.scope}.${marker.instance}.${marker.session}`;
}

/** `EXECLET_SESSION=<value>`, for Docker's Env or a child process's environment. */
export function markerEnv(marker: Marker): string {
  return `${MARKER_VARIABLE}=${formatMarker(marker)}`;
}

/** Strict: exactly three dot-separated parts, each in its alphabet and length; anything else is null. */
export function parseMarker(value: string): Marker | null {
  if (value.length > MAX_MARKER_LENGTH) return null;
  const parts = value.split('.');
  if (parts.length !== 3) return null;
  const [scope, instance, session] = parts as [string, string, string];
  const marker = { scope, instance, session };
  return isValid(marker) ? marker : null;
}
