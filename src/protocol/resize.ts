// Streaming decoder for the resize channel (4): the bytes are a stream of JSON objects
// `{"Width":W,"Height":H}` that may be concatenated, separated by whitespace, or split
// across frames anywhere. Keys match case-insensitively, like Go's encoding/json.
// See docs/kube-exec-protocol.md §4.

export interface TerminalSize {
  width: number;
  height: number;
}

export interface ResizePushResult {
  sizes: TerminalSize[];
  error?: string;
}

/** Largest single object we buffer; anything bigger is refused (no unbounded buffering). */
export const MAX_RESIZE_OBJECT_BYTES = 4096;

const MAX_DIMENSION = 0xffff; // Go's TerminalSize fields are uint16

const OPEN_BRACE = 0x7b; // {
const CLOSE_BRACE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/** JSON insignificant whitespace: space, tab, LF, CR. */
function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/**
 * Feed it every channel-4 payload in order with `push`. It returns the sizes completed by
 * that chunk. On the first error (invalid JSON, a non-object value, a bad value, an object
 * over MAX_RESIZE_OBJECT_BYTES) it returns the sizes completed before the error plus the
 * error, and from then on is dead: every push returns that same error and no sizes, as
 * upstream stops resize handling for the session.
 *
 * Each byte is scanned once and at most MAX_RESIZE_OBJECT_BYTES are held, so work is linear
 * in the input and memory is bounded.
 *
 * Semantics follow Go decoding into `TerminalSize{Width, Height uint16}`: unknown keys are
 * ignored, a missing key leaves that dimension 0, and if a key appears more than once
 * (in any case) the last one wins. Values must be JSON numbers that are integers in
 * 0–65535; JSON.parse cannot tell `30.0` from `30`, so `30.0` is accepted as 30.
 */
export class ResizeDecoder {
  private readonly objectBytes = Buffer.alloc(MAX_RESIZE_OBJECT_BYTES);
  private objectLength = 0;
  /** Brace nesting inside the current object; 0 means between objects. */
  private depth = 0;
  private inString = false;
  private escaped = false;
  private error: string | undefined;

  push(chunk: Buffer): ResizePushResult {
    if (this.error !== undefined) return { sizes: [], error: this.error };
    const sizes: TerminalSize[] = [];
    for (const byte of chunk) {
      const failure = this.consume(byte, sizes);
      if (failure !== undefined) {
        this.fail(failure);
        return { sizes, error: failure };
      }
    }
    return { sizes };
  }

  /** Scans one byte; appends a size when an object completes. Returns an error text on failure. */
  private consume(byte: number, sizes: TerminalSize[]): string | undefined {
    if (this.depth === 0) {
      if (isJsonWhitespace(byte)) return undefined;
      if (byte !== OPEN_BRACE) {
        return `resize: expected a JSON object, got byte 0x${byte.toString(16).padStart(2, '0')}`;
      }
      this.depth = 1;
      this.objectLength = 0;
      return this.append(byte);
    }

    const appendFailure = this.append(byte);
    if (appendFailure !== undefined) return appendFailure;

    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (byte === BACKSLASH) this.escaped = true;
      else if (byte === QUOTE) this.inString = false;
      return undefined;
    }
    if (byte === QUOTE) this.inString = true;
    else if (byte === OPEN_BRACE) this.depth++;
    else if (byte === CLOSE_BRACE) {
      this.depth--;
      if (this.depth === 0) {
        const parsed = parseTerminalSize(this.objectBytes.toString('utf8', 0, this.objectLength));
        this.objectLength = 0;
        if (typeof parsed === 'string') return parsed;
        sizes.push(parsed);
      }
    }
    return undefined;
  }

  private append(byte: number): string | undefined {
    if (this.objectLength >= MAX_RESIZE_OBJECT_BYTES) {
      return `resize: JSON object larger than ${MAX_RESIZE_OBJECT_BYTES} bytes`;
    }
    this.objectBytes[this.objectLength++] = byte;
    return undefined;
  }

  private fail(error: string): void {
    this.error = error;
    this.objectLength = 0;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }
}

/** Parses one complete object's text into a size, or returns an error text. */
function parseTerminalSize(text: string): TerminalSize | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `resize: invalid JSON: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'resize: expected a JSON object';
  }
  const size: TerminalSize = { width: 0, height: 0 };
  for (const [key, fieldValue] of Object.entries(value)) {
    const field = key.toLowerCase();
    if (field !== 'width' && field !== 'height') continue;
    if (!isUint16(fieldValue)) {
      return `resize: ${key} must be an integer in 0-${MAX_DIMENSION}, got ${JSON.stringify(fieldValue)}`;
    }
    size[field] = fieldValue | 0; // `| 0` also turns -0 into 0
  }
  return size;
}

function isUint16(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DIMENSION;
}
