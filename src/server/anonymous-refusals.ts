// Audit records of refusals with no identity behind them (no credential or a wrong one, a cross-site
// origin, an unknown stream URL). Anyone who can reach the port can cause them, one per request, so
// they are rate-limited: a burst of BURST, then PER_MINUTE a minute. What is left out is counted, and
// summed up in one `access.denied.summary` record a minute (by reason and by client address), so a
// flood cannot rotate the real records out of the audit log. Metrics count every refusal as before.
import type { AuditLog } from '../auth/audit.js';

/** Records written at once before the rate applies. */
const BURST = 60;
/** Records written a minute, on average, once the burst is spent. */
const PER_MINUTE = 60;
/** How often a summary of what was left out is written (while something was). */
const SUMMARY_EVERY_MS = 60_000;
/** Client addresses counted one by one in a summary; the rest together under "other". */
const MAX_ADDRESSES = 50;

export interface AnonymousRefusal {
  code: number;
  reason: string;
  message: string;
  address: string;
}

export interface AnonymousRefusalsOptions {
  burst?: number;
  perMinute?: number;
  summaryEveryMs?: number;
  /** Milliseconds, monotonic (tests move it). */
  now?: () => number;
}

export class AnonymousRefusals {
  readonly #burst: number;
  readonly #perMs: number;
  readonly #summaryEveryMs: number;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;
  /** Left out since the last summary. */
  #count = 0;
  #since: string | null = null;
  #byReason = new Map<string, number>();
  #byAddress = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly audit: Pick<AuditLog, 'write'>,
    options: AnonymousRefusalsOptions = {},
  ) {
    this.#burst = options.burst ?? BURST;
    this.#perMs = (options.perMinute ?? PER_MINUTE) / 60_000;
    this.#summaryEveryMs = options.summaryEveryMs ?? SUMMARY_EVERY_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = this.#burst;
    this.#refilledAt = this.#now();
  }

  /** Writes the refusal's record, or counts it for the next summary when the rate is spent. */
  record(refusal: AnonymousRefusal): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#refilledAt) * this.#perMs);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      this.audit.write({ event: 'access.denied', identity: null, target: null, mode: null, command: [], code: refusal.code, reason: refusal.reason, message: refusal.message });
      return;
    }
    this.#count++;
    this.#since ??= new Date().toISOString();
    this.#byReason.set(refusal.reason, (this.#byReason.get(refusal.reason) ?? 0) + 1);
    const address = this.#byAddress.has(refusal.address) || this.#byAddress.size < MAX_ADDRESSES ? refusal.address : 'other';
    this.#byAddress.set(address, (this.#byAddress.get(address) ?? 0) + 1);
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#summaryEveryMs);
      this.#timer.unref();
    }
  }

  /** Writes the summary of what was left out, if anything was. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#count === 0) return;
    this.audit.write({
      event: 'access.denied.summary',
      since: this.#since!,
      count: this.#count,
      byReason: Object.fromEntries(this.#byReason),
      byAddress: Object.fromEntries(this.#byAddress),
    });
    this.#count = 0;
    this.#since = null;
    this.#byReason = new Map();
    this.#byAddress = new Map();
  }
}
