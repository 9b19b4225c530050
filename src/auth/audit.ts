// The audit log: one JSON line per session start, per session end, and per denied attempt, appended
// synchronously to a file (mode 0600, rotated by size) and/or written to stdout. Secrets in the
// command line are redacted before anything is written; a failed write is reported, never thrown,
// so the caller can decide to fail the session closed.
import { closeSync, fstatSync, ftruncateSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirectories } from '../make-directories.js';
import { redactArgv, redactSecrets } from './argv-redaction.js';

export interface AuditIdentity {
  user: string;
  groups: string[];
  method: string;
  address: string;
}

export interface AuditTarget {
  node: string;
  namespace?: string;
  pod?: string;
  container?: string;
  containerId?: string;
  pid?: number;
}

export type SessionEndReason = 'exited' | 'disconnect' | 'idle' | 'maxDuration' | 'killed' | 'error' | 'shutdown';

/** What every session record says: who, where, what. */
export interface SessionAuditFields {
  time?: string;
  sessionId: string;
  identity: AuditIdentity;
  target: AuditTarget;
  mode: string;
  command: string[];
  tty: boolean;
  stdin: boolean;
}

export type AuditRecord =
  | ({ event: 'session.start' } & SessionAuditFields)
  | ({
      event: 'session.end';
      outcome: { reason: SessionEndReason; exitCode: number | null; signal: string | null; error?: string };
      durationMs: number;
      bytesIn: number;
      bytesOut: number;
    } & SessionAuditFields)
  | {
      event: 'access.denied';
      time?: string;
      identity: AuditIdentity | null;
      target: AuditTarget | null;
      mode: string | null;
      command: string[];
      code: number;
      reason: string;
      message: string;
    }
  | {
      /** Refusals without an identity left out of the log (rate-limited: src/server/anonymous-refusals.ts), summed up. */
      event: 'access.denied.summary';
      time?: string;
      /** When the first of them came. */
      since: string;
      count: number;
      byReason: Record<string, number>;
      byAddress: Record<string, number>;
    };

export interface AuditOptions {
  /** Append JSON lines here (mode 0600; the directory is created, mode 0700). null/undefined: no file. */
  file?: string | null;
  /** Also write each line to `stream` (default process.stdout). */
  stdout?: boolean;
  /** Where the "stdout" lines go; for tests. */
  stream?: NodeJS.WritableStream;
  /** Rotate when the file would exceed this many bytes (default 50 MiB): file → file.1 → … → file.<keep>. */
  maxBytes?: number;
  /** Rotated files kept (default 5); 0 keeps none (the full file is deleted). */
  keep?: number;
  /** The operator's patterns, applied to each argv element after the built-in rules (argv-redaction.ts: redactArgv). */
  redact?: RegExp[];
  /** Tells the caller to end a session whose audit record could not be written (see AuditLog.write). */
  failClosed?: boolean;
  /** Called on every failure: each failed write, and a failed rotation (after which writing continues to the unrotated file). */
  onError?: (err: Error) => void;
}

const DEFAULT_MAX_BYTES = 50 * 1024 * 1024;
const NEWLINE = Buffer.from('\n');
const DEFAULT_KEEP = 5;

export class AuditLogError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditLogError';
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class AuditLog {
  readonly failClosed: boolean;
  readonly #file: string | null;
  readonly #stream: NodeJS.WritableStream | null;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #patterns: RegExp[];
  readonly #onError: (err: Error) => void;
  #fd: number | null = null;
  #size = 0;
  /** A failed write left part of a line at the end of the file that could not be taken back. */
  #endsMidLine = false;
  #failures = 0;
  #closed = false;
  #lastError: Error | null = null;

  /**
   * Opens the file right away when one is configured, so it exists from startup. Opening failures do
   * not throw: they are kept in `lastError`, and the next write retries (and reports if it fails again).
   * Throws RangeError only for invalid `maxBytes`/`keep`.
   */
  constructor(options: AuditOptions) {
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    const keep = options.keep ?? DEFAULT_KEEP;
    if (!Number.isFinite(maxBytes) || maxBytes <= 0) throw new RangeError(`audit maxBytes must be a positive number, got ${maxBytes}`);
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`audit keep must be a non-negative integer, got ${keep}`);
    this.failClosed = options.failClosed ?? false;
    this.#file = options.file ?? null;
    this.#stream = options.stdout ? (options.stream ?? process.stdout) : null;
    this.#maxBytes = maxBytes;
    this.#keep = keep;
    this.#patterns = options.redact ?? [];
    this.#onError = options.onError ?? (() => {});
    if (this.#file !== null) {
      try {
        this.#open();
      } catch (err) {
        this.#lastError = err as Error;
      }
    }
  }

  /** Records that could not be written to every configured sink. */
  get failures(): number {
    return this.#failures;
  }

  /** The most recent open/write/rotation error, or null once a write to every sink succeeded since. */
  get lastError(): Error | null {
    return this.#lastError;
  }

  /**
   * Appends one JSON line synchronously, adding `time` (ISO 8601) when missing and redacting
   * `command`. Returns true when every configured sink took the line. On failure calls onError,
   * increments `failures` and returns false; with `failClosed` the caller must then end the session.
   * Never throws. (An error a stream reports asynchronously after accepting the line is passed to
   * onError and counted as well, but cannot change the value already returned.)
   */
  write(record: AuditRecord): boolean {
    let line: string;
    try {
      line = this.#format(record);
    } catch (err) {
      return this.#fail(new AuditLogError(`cannot serialize the ${String(record?.event)} audit record: ${describe(err)}`, { cause: err }));
    }
    if (this.#closed) return this.#fail(new AuditLogError(`cannot write the ${record.event} audit record: the audit log is closed`));

    let ok = true;
    if (this.#file !== null) {
      try {
        this.#appendToFile(line);
      } catch (err) {
        ok = this.#fail(new AuditLogError(`cannot write the ${record.event} audit record to ${this.#file}: ${describe(err)}`, { cause: err }));
      }
    }
    if (this.#stream !== null && !this.#writeToStream(line, record.event)) ok = false;
    if (ok) this.#lastError = null;
    return ok;
  }

  /** Closes the file. Later writes fail (return false and report). */
  close(): void {
    this.#closed = true;
    this.#closeFd();
  }

  #format(record: AuditRecord): string {
    const { event, time, ...rest } = record;
    // `event` and `time` first so the lines read well; `command` redacted.
    const full = {
      event,
      time: time ?? new Date().toISOString(),
      ...rest,
      ...('command' in record ? { command: redactArgv(redactSecrets(Array.isArray(record.command) ? record.command : []), this.#patterns) } : {}),
    };
    // JSON.stringify escapes newlines inside strings, so a record is always exactly one line.
    return `${JSON.stringify(full)}\n`;
  }

  #fail(err: Error): false {
    this.#failures++;
    this.#lastError = err;
    this.#report(err);
    return false;
  }

  #report(err: Error): void {
    try {
      this.#onError(err);
    } catch {
      // write() never throws, not even when the error handler does.
    }
  }

  #appendToFile(line: string): void {
    let bytes = Buffer.from(line, 'utf8');
    if (this.#fd === null) this.#open();
    // A line longer than maxBytes on its own still goes into a fresh (empty) file rather than rotating forever.
    if (this.#size > 0 && this.#size + bytes.length > this.#maxBytes) this.#rotate();
    // After a part of a line that stayed in the file, the next record starts on a line of its own.
    if (this.#endsMidLine && this.#size > 0) bytes = Buffer.concat([NEWLINE, bytes]);
    const fd = this.#fd!;
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      this.#size += written;
      this.#endsMidLine = false;
    } catch (err) {
      // A write that failed part-way (a full disk, a file size limit) is taken back, so that the
      // file holds whole records only and the next one is not glued to a fragment.
      if (written > 0) this.#takeBack(fd, written);
      // Reopen on the next write: the file may have been removed or its filesystem remounted.
      this.#closeFd();
      throw err;
    }
  }

  /**
   * Removes the last `bytes` written (by this process, at the end: the file is opened for
   * appending). Taken back, the file ends as it did before that write (a fragment left by an
   * earlier one included); when that fails, it ends with a part of a line.
   */
  #takeBack(fd: number, bytes: number): void {
    try {
      ftruncateSync(fd, fstatSync(fd).size - bytes);
    } catch {
      this.#endsMidLine = true;
    }
  }

  #open(): void {
    const file = this.#file!;
    makeDirectories(dirname(file), 0o700);
    const fd = openSync(file, 'a', 0o600);
    try {
      this.#size = fstatSync(fd).size;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.#fd = fd;
  }

  #closeFd(): void {
    if (this.#fd === null) return;
    const fd = this.#fd;
    this.#fd = null;
    try {
      closeSync(fd);
    } catch {
      // Nothing useful to do: the descriptor is gone either way.
    }
  }

  /**
   * file.(keep-1) → file.keep … file.1 → file.2, file → file.1 (file.keep is replaced, so dropped),
   * then a fresh file. A failed rename is reported and writing continues into the current file, so
   * records are not lost because rotation failed.
   */
  #rotate(): void {
    const file = this.#file!;
    this.#closeFd();
    try {
      if (this.#keep === 0) {
        try {
          unlinkSync(file);
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      } else {
        for (let index = this.#keep - 1; index >= 1; index--) {
          try {
            renameSync(`${file}.${index}`, `${file}.${index + 1}`);
          } catch (err) {
            if (!isMissing(err)) throw err;
          }
        }
        renameSync(file, `${file}.1`);
      }
    } catch (err) {
      const rotationError = new AuditLogError(`cannot rotate the audit log ${file}: ${describe(err)}; continuing in the current file`, { cause: err });
      this.#lastError = rotationError;
      this.#report(rotationError);
    }
    this.#open();
  }

  #writeToStream(line: string, event: string): boolean {
    const stream = this.#stream!;
    const failure = (err: unknown): boolean =>
      this.#fail(new AuditLogError(`cannot write the ${event} audit record to stdout: ${describe(err)}`, { cause: err }));
    if (!stream.writable) return failure(new Error('the stream is not writable'));
    try {
      stream.write(line, (err?: Error | null) => {
        if (err) failure(err);
      });
      return true;
    } catch (err) {
      return failure(err);
    }
  }
}
