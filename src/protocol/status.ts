// Kubernetes metav1.Status objects: the exit status written on the error channel (3) when
// an exec session ends, and the Status bodies of HTTP refusals.
// See docs/kube-exec-protocol.md §3.

import type { ProtocolTraits } from './subprotocols.js';

/** metav1.StatusCause. Go's `Type` field is spelled `reason` on the wire. */
export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface Status {
  kind?: 'Status';
  apiVersion?: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { name?: string; kind?: string; causes?: StatusCause[] };
  code?: number;
}

/** Used when a pre-v4 failure has no message: an empty error channel would read as success. */
const FALLBACK_FAILURE_TEXT = 'command failed';

/** `{"metadata":{},"status":"Success"}`: no kind/apiVersion, as upstream writes on channel 3. */
export function successStatus(): Status {
  return { metadata: {}, status: 'Success' };
}

/**
 * Maps a process exit code onto the uint8 that clients accept (client-go parses the cause
 * as 0–255 and rejects anything else):
 * - integers keep their low byte (`code & 0xff`, two's complement for negatives, so -1 → 255,
 *   the way a POSIX shell reports `exit -1`);
 * - a nonzero code whose low byte is 0 (256, 512, -256, …) becomes 255, so a failure can
 *   never turn into a success;
 * - a non-integer (NaN, ±Infinity, 1.5) is not a real exit code and also becomes 255.
 */
export function normalizeExitCode(code: number): number {
  if (!Number.isInteger(code)) return 255;
  if (code === 0) return 0;
  const lowByte = code & 0xff;
  return lowByte === 0 ? 255 : lowByte;
}

/**
 * The channel-3 status for a finished process: Success for 0, otherwise the upstream
 * NonZeroExitCode Failure carrying the (normalized) code in `details.causes`.
 */
export function exitCodeStatus(code: number): Status {
  const exitCode = normalizeExitCode(code);
  if (exitCode === 0) return successStatus();
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/** A Failure for channel 3 (no kind/apiVersion), e.g. `failureStatus('InternalError', msg, 500)`. */
export function failureStatus(reason: string, message: string, code?: number): Status {
  const status: Status = { metadata: {}, status: 'Failure', message, reason };
  if (code !== undefined) status.code = code;
  return status;
}

/**
 * A complete Status body for an HTTP refusal (with kind/apiVersion), e.g.
 * `httpStatus(404, 'NotFound', 'pods "x" not found')`. kubectl prints its `message`.
 */
export function httpStatus(code: number, reason: string, message: string, details?: Status['details']): Status {
  const status: Status = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
  };
  if (details !== undefined) status.details = details;
  status.code = code;
  return status;
}

/**
 * The channel-3 payload (without channel byte or base64) for the end of a session:
 * - v4/v5 (`statusJson`): the Status as JSON, for success and failure alike;
 * - pre-v4: nothing (null) on Success, else the plain message text, as upstream
 *   `v1WriteStatusFunc`. A Failure with an empty message falls back to its reason (or a
 *   generic text), because an empty error channel would read as success to the client.
 */
export function encodeStatusForChannel(status: Status, traits: ProtocolTraits): Buffer | null {
  if (traits.statusJson) return Buffer.from(JSON.stringify(status), 'utf8');
  if (status.status === 'Success') return null;
  const text = status.message || status.reason || FALLBACK_FAILURE_TEXT;
  return Buffer.from(text, 'utf8');
}
