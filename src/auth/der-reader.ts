// A tiny DER reader: walks tag-length-value elements, just enough to pull fields (the subject name,
// the subjectKeyIdentifier) out of an issuer's certificate. It validates lengths, nothing else.

export interface DerElement {
  /** The identifier byte (class, constructed bit, tag number). */
  tag: number;
  /** The whole element: tag, length and contents. */
  der: Buffer;
  contents: Buffer;
}

/** The first element of `input` and what follows it. */
export function readElement(input: Buffer): { element: DerElement; rest: Buffer } {
  if (input.length < 2) throw new Error('DER: truncated element');
  const tag = input[0]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not supported');
  let length = input[1]!;
  let offset = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new Error('DER: indefinite length is not DER');
    if (count > 4) throw new Error('DER: length too large');
    if (input.length < offset + count) throw new Error('DER: truncated length');
    length = input.readUIntBE(offset, count);
    offset += count;
  }
  const end = offset + length;
  if (input.length < end) throw new Error('DER: element longer than its input');
  return { element: { tag, der: input.subarray(0, end), contents: input.subarray(offset, end) }, rest: input.subarray(end) };
}

/** Exactly one element, with nothing after it. */
export function readSingle(input: Buffer): DerElement {
  const { element, rest } = readElement(input);
  if (rest.length > 0) throw new Error('DER: trailing bytes after the element');
  return element;
}

/** The elements inside a constructed element (a SEQUENCE, SET or explicit tag). */
export function childrenOf(element: DerElement): DerElement[] {
  if (!(element.tag & 0x20)) throw new Error('DER: a primitive element has no children');
  const children: DerElement[] = [];
  for (let rest = element.contents; rest.length > 0; ) {
    const next = readElement(rest);
    children.push(next.element);
    rest = next.rest;
  }
  return children;
}
