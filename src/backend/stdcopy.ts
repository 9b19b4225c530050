// Demultiplexes the Docker Engine's non-TTY attach stream (8-byte headers: stream type, 3 zero
// bytes, big-endian length) into stdout/stderr payloads. Payloads are subarrays of the incoming
// chunks, never copies; a frame split across chunks is delivered in pieces as the bytes arrive.
// A payload that follows its header in the same chunk is marked as having a free byte in front.
import { markPrefixRoom } from '../prefix-room.js';

export const STDCOPY_STDIN = 0;
export const STDCOPY_STDOUT = 1;
export const STDCOPY_STDERR = 2;
/** The engine reports its own errors (e.g. the exec failed to start) on this stream. */
export const STDCOPY_SYSTEMERR = 3;

const HEADER_LENGTH = 8;

export type FrameHandler = (stream: number, payload: Buffer) => void;

export class StdcopyDemuxer {
  /** Bytes of the current frame's payload still to come. */
  #remaining = 0;
  #stream = 0;
  /** A header split across chunks is gathered here (at most 8 bytes copied per frame). */
  readonly #header = Buffer.alloc(HEADER_LENGTH);
  #headerFill = 0;

  constructor(private readonly onFrame: FrameHandler) {}

  /** Feeds one chunk; throws on a stream type the engine never sends. */
  push(chunk: Buffer): void {
    let offset = 0;
    const length = chunk.length;
    /** Where the current frame's header ended in this chunk (its last byte is free once parsed). */
    let afterHeader = -1;
    while (offset < length) {
      if (this.#remaining > 0) {
        const end = Math.min(length, offset + this.#remaining);
        this.#remaining -= end - offset;
        const payload = chunk.subarray(offset, end);
        if (offset === afterHeader) markPrefixRoom(payload);
        this.onFrame(this.#stream, payload);
        offset = end;
        continue;
      }
      if (this.#headerFill === 0 && length - offset >= HEADER_LENGTH) {
        this.#startFrame(chunk[offset]!, chunk.readUInt32BE(offset + 4));
        offset += HEADER_LENGTH;
        afterHeader = offset;
        continue;
      }
      const take = Math.min(HEADER_LENGTH - this.#headerFill, length - offset);
      chunk.copy(this.#header, this.#headerFill, offset, offset + take);
      this.#headerFill += take;
      offset += take;
      if (this.#headerFill === HEADER_LENGTH) {
        this.#headerFill = 0;
        this.#startFrame(this.#header[0]!, this.#header.readUInt32BE(4));
      }
    }
  }

  /** True when the stream stopped between frames (no partial header or payload pending). */
  get atFrameBoundary(): boolean {
    return this.#remaining === 0 && this.#headerFill === 0;
  }

  #startFrame(stream: number, size: number): void {
    if (stream > STDCOPY_SYSTEMERR) {
      throw new Error(`unexpected stream type ${stream} in the engine's multiplexed output`);
    }
    this.#stream = stream === STDCOPY_STDIN ? STDCOPY_STDOUT : stream;
    this.#remaining = size;
  }
}
