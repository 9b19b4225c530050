// Output buffers with a free byte in front of them. The engine's multiplexed stream puts an 8-byte
// header before each payload; once parsed, its last byte is free, so a consumer that must prefix a
// byte (the WebSocket channel id) can write it there and send the payload without copying it.
// Only buffers registered here qualify; anything else (a TTY stream, chunks a stream concatenated,
// a payload continuing from an earlier read) is copied as before. Shared by backend/ (the demuxer
// marks) and protocol/ (the channels prefix): like metrics.ts it imports nothing of ours, so
// neither layer imports the other.

const withRoom = new WeakSet<Buffer>();

/** Records that the byte before `payload` (same memory) is free for the consumer to overwrite. */
export function markPrefixRoom(payload: Buffer): void {
  if (payload.byteOffset > 0) withRoom.add(payload);
}

/**
 * `payload` with `prefix` in front: written into the free byte before it when there is one (no
 * copy, and only once per buffer), otherwise a new buffer.
 */
export function prefixed(prefix: number, payload: Buffer): Buffer {
  if (withRoom.delete(payload)) {
    const message = Buffer.from(payload.buffer, payload.byteOffset - 1, payload.length + 1);
    message[0] = prefix;
    return message;
  }
  const message = Buffer.allocUnsafe(payload.length + 1);
  message[0] = prefix;
  payload.copy(message, 1);
  return message;
}
