// WebSocket message framing for the channel.k8s.io family: decoding what a client sends
// (binary `<channel byte><payload>`, base64 `<digit><base64>`, the v5 `FF <channel>` close
// signal) and encoding server messages for the base64 subprotocols.
// See docs/kube-exec-protocol.md §2.

import { CHANNEL, type ProtocolTraits } from './subprotocols.js';

export type ClientMessage =
  | { kind: 'data'; channel: number; payload: Buffer }
  | { kind: 'close'; channel: number }
  | { kind: 'empty' }
  | { kind: 'invalid'; reason: string };

const ASCII_ZERO = 0x30;
const ASCII_NINE = 0x39;
const BASE64_PAD = 0x3d; // '='

/**
 * Decodes one WebSocket message from the client. Channel numbers are returned as sent;
 * the caller decides which channels the session has and drops the others.
 * Binary payloads are `subarray`s of `data` (no copy).
 */
export function decodeClientMessage(data: Buffer, isBinary: boolean, traits: ProtocolTraits): ClientMessage {
  return traits.base64 ? decodeBase64Message(data, isBinary, traits) : decodeBinaryMessage(data, isBinary, traits);
}

function decodeBinaryMessage(data: Buffer, isBinary: boolean, traits: ProtocolTraits): ClientMessage {
  if (!isBinary) {
    return { kind: 'invalid', reason: `text message on binary subprotocol ${traits.name}` };
  }
  const channel = data[0];
  if (channel === undefined) return { kind: 'empty' };

  if (channel === CHANNEL.close && traits.closeSignal) {
    const closedChannel = data[1];
    if (data.length !== 2 || closedChannel === undefined) {
      return {
        kind: 'invalid',
        reason: `close signal must be exactly 2 bytes (FF <channel>), got ${data.length}`,
      };
    }
    return { kind: 'close', channel: closedChannel };
  }
  return { kind: 'data', channel, payload: data.subarray(1) };
}

function decodeBase64Message(data: Buffer, isBinary: boolean, traits: ProtocolTraits): ClientMessage {
  if (isBinary) {
    return { kind: 'invalid', reason: `binary message on base64 subprotocol ${traits.name}` };
  }
  const channelChar = data[0];
  if (channelChar === undefined) return { kind: 'empty' };
  if (channelChar < ASCII_ZERO || channelChar > ASCII_NINE) {
    return { kind: 'invalid', reason: `base64 message must start with a channel digit 0-9, got byte ${channelChar}` };
  }
  const encoded = data.subarray(1);
  if (!isStrictStandardBase64(encoded)) {
    return { kind: 'invalid', reason: 'payload is not valid standard base64' };
  }
  return {
    kind: 'data',
    channel: channelChar - ASCII_ZERO,
    payload: Buffer.from(encoded.toString('latin1'), 'base64'),
  };
}

function isBase64AlphabetByte(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2b || // +
    byte === 0x2f // /
  );
}

/**
 * Strict RFC 4648 standard base64 (padded, no whitespace, no URL alphabet): length a
 * multiple of 4, alphabet bytes only, and at most two '=' at the very end. Like Go's
 * `base64.StdEncoding` (non-Strict mode) it does not insist that unused trailing bits are
 * zero. Unlike Go, CR/LF are rejected rather than skipped (no real client sends them).
 * Node's own decoder is lenient, hence this check before `Buffer.from(…, 'base64')`.
 */
function isStrictStandardBase64(encoded: Uint8Array): boolean {
  const length = encoded.length;
  if (length % 4 !== 0) return false;
  let padding = 0;
  if (length > 0 && encoded[length - 1] === BASE64_PAD) padding = 1;
  if (padding === 1 && encoded[length - 2] === BASE64_PAD) padding = 2;
  for (let i = 0; i < length - padding; i++) {
    const byte = encoded[i];
    if (byte === undefined || !isBase64AlphabetByte(byte)) return false;
  }
  return true;
}

/**
 * Encodes a server message for a base64 subprotocol: ASCII channel digit followed by the
 * standard (padded) base64 of the payload. Channel 1, "hi\n" → "1aGkK".
 */
export function encodeBase64Message(channel: number, payload: Uint8Array): string {
  if (!Number.isInteger(channel) || channel < 0 || channel > 9) {
    throw new RangeError(`base64 framing can only carry channels 0-9, got ${channel}`);
  }
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return String(channel) + bytes.toString('base64');
}
