// A minimal DER writer (ITU-T X.690): just the ASN.1 types an X.509 v3 certificate needs (see
// x509.ts). Every function returns one complete element — tag, length, contents — as a Buffer.

const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30, // constructed bit (0x20) set
  SET: 0x31,
} as const;

/** Definite length: one byte below 128, else 0x80 | count followed by the length's big-endian bytes. */
function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One element with a single-byte tag (all tags here are below 31). */
export function tlv(tag: number, contents: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(contents.length), contents]);
}

export function sequence(...elements: Uint8Array[]): Buffer {
  return tlv(TAG.SEQUENCE, Buffer.concat(elements));
}

/** SET (OF): DER orders the elements by their encodings. */
export function set(...elements: Uint8Array[]): Buffer {
  return tlv(TAG.SET, Buffer.concat([...elements].sort(Buffer.compare)));
}

export function boolean(value: boolean): Buffer {
  return tlv(TAG.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

export function nullValue(): Buffer {
  return tlv(TAG.NULL, Buffer.alloc(0));
}

/**
 * A non-negative INTEGER from a number or from big-endian bytes (read as unsigned), minimally
 * encoded: no redundant leading zero bytes, and a 0x00 in front when the top bit would read as a sign.
 */
export function integer(value: number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`integer: ${value} is not a non-negative safe integer`);
    const hex = value.toString(16);
    bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  } else {
    bytes = Buffer.from(value);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

/** Base 128, most significant group first, every byte but the last with the top bit set. */
function base128(value: bigint): number[] {
  const bytes = [Number(value & 0x7fn)];
  for (let rest = value >> 7n; rest > 0n; rest >>= 7n) bytes.unshift(Number(rest & 0x7fn) | 0x80);
  return bytes;
}

/** An OBJECT IDENTIFIER from its dotted form, e.g. "1.2.840.10045.4.3.2". */
export function oid(dotted: string): Buffer {
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(dotted)) throw new Error(`oid: not a dotted object identifier: ${JSON.stringify(dotted)}`);
  const [first, second, ...rest] = dotted.split('.').map(BigInt) as [bigint, bigint, ...bigint[]];
  if (first < 2n && second >= 40n) throw new Error(`oid: second arc of ${dotted} must be below 40`);
  return tlv(TAG.OID, Buffer.from([first * 40n + second, ...rest].flatMap(base128)));
}

/** A BIT STRING of whole bytes, or with `unusedBits` (0–7) low bits of the last byte unused. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (bytes.length === 0 && unusedBits !== 0)) {
    throw new RangeError(`bitString: bad unused bit count ${unusedBits}`);
  }
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

/**
 * A BIT STRING for a named bit list (e.g. KeyUsage) with the given bit positions set, bit 0 being
 * the top bit of the first byte; DER drops trailing zero bits.
 */
export function namedBits(positions: number[]): Buffer {
  if (positions.length === 0) return bitString(Buffer.alloc(0));
  const highest = Math.max(...positions);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of positions) bytes[bit >> 3]! |= 0x80 >> (bit & 7);
  return bitString(bytes, 7 - (highest & 7));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.OCTET_STRING, bytes);
}

export function utf8String(text: string): Buffer {
  return tlv(TAG.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** True when `text` fits PrintableString: letters, digits, space and ' ( ) + , - . / : = ? */
export function isPrintable(text: string): boolean {
  return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(text);
}

export function printableString(text: string): Buffer {
  if (!isPrintable(text)) throw new Error(`printableString: ${JSON.stringify(text)} has characters PrintableString cannot hold`);
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(text, 'ascii'));
}

export function ia5String(text: string): Buffer {
  if (!/^[\x00-\x7f]*$/.test(text)) throw new Error(`ia5String: ${JSON.stringify(text)} is not ASCII`);
  return tlv(TAG.IA5_STRING, Buffer.from(text, 'ascii'));
}

/**
 * A certificate time (RFC 5280 4.1.2.5): UTCTime YYMMDDHHMMSSZ for the years 1950–2049,
 * GeneralizedTime YYYYMMDDHHMMSSZ otherwise; always UTC, whole seconds (milliseconds dropped).
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) throw new RangeError(`time: ${String(date)} is outside the years 0000–9999`);
  const digits = date.toISOString().slice(0, 19).replace(/[-T:]/g, ''); // YYYYMMDDHHMMSS
  if (year >= 1950 && year < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${digits}Z`, 'ascii'));
}

function contextTag(tagNumber: number): number {
  if (!Number.isInteger(tagNumber) || tagNumber < 0 || tagNumber > 30) throw new RangeError(`context tag [${tagNumber}] is not supported`);
  return 0x80 | tagNumber;
}

/** [n] EXPLICIT: a constructed context-specific element wrapping `element` whole. */
export function explicit(tagNumber: number, element: Uint8Array): Buffer {
  return tlv(contextTag(tagNumber) | 0x20, element);
}

/** [n] IMPLICIT: `element` with its tag replaced by the context-specific one (primitive or constructed as it was). */
export function implicit(tagNumber: number, element: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([contextTag(tagNumber) | (element[0]! & 0x20)]), element.subarray(1)]);
}
