// Kubernetes exec WebSocket subprotocols (channel.k8s.io family): channel ids, the
// subprotocols execlet serves, what each one implies on the wire, and negotiation of
// the Sec-WebSocket-Protocol header. See docs/kube-exec-protocol.md §1–§2.

/** Channel ids (apimachinery remotecommand/constants.go). 255 is the v5 close signal. */
export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/**
 * Subprotocols execlet accepts. The order here is informational only: negotiation follows
 * the client's order (as upstream wsstream `handshake` does). v2/v3 are SPDY-only and no
 * base64 variant of v5 exists, so neither appears here.
 */
export const SUPPORTED_SUBPROTOCOLS = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
] as const;

export type Subprotocol = (typeof SUPPORTED_SUBPROTOCOLS)[number];

export interface ProtocolTraits {
  name: Subprotocol;
  /** Text messages: ASCII digit channel + standard base64 payload (both directions). */
  base64: boolean;
  /** v4+: a metav1.Status JSON is written on channel 3 for success and failure. */
  statusJson: boolean;
  /** v5: the client may send `FF <channel>` to half-close a channel. */
  closeSignal: boolean;
}

const TRAITS_BY_PROTOCOL: Readonly<Record<Subprotocol, Readonly<ProtocolTraits>>> = {
  'v5.channel.k8s.io': Object.freeze({
    name: 'v5.channel.k8s.io',
    base64: false,
    statusJson: true,
    closeSignal: true,
  }),
  'v4.channel.k8s.io': Object.freeze({
    name: 'v4.channel.k8s.io',
    base64: false,
    statusJson: true,
    closeSignal: false,
  }),
  'v4.base64.channel.k8s.io': Object.freeze({
    name: 'v4.base64.channel.k8s.io',
    base64: true,
    statusJson: true,
    closeSignal: false,
  }),
  'channel.k8s.io': Object.freeze({
    name: 'channel.k8s.io',
    base64: false,
    statusJson: false,
    closeSignal: false,
  }),
  'base64.channel.k8s.io': Object.freeze({
    name: 'base64.channel.k8s.io',
    base64: true,
    statusJson: false,
    closeSignal: false,
  }),
};

const SUPPORTED_SET: ReadonlySet<string> = new Set<string>(SUPPORTED_SUBPROTOCOLS);

function isSupportedSubprotocol(name: string): name is Subprotocol {
  return SUPPORTED_SET.has(name);
}

/** Wire behaviour of a negotiated subprotocol. The returned object is frozen (shared). */
export function protocolTraits(p: Subprotocol): ProtocolTraits {
  if (!isSupportedSubprotocol(p)) {
    throw new RangeError(`unsupported subprotocol: ${JSON.stringify(p)}`);
  }
  return TRAITS_BY_PROTOCOL[p];
}

/**
 * Splits Sec-WebSocket-Protocol header value(s) into the offered names: comma-separated,
 * each trimmed, empty entries dropped, client order kept. Several header lines (an array,
 * as in `req.headersDistinct`) are read in order and concatenated.
 */
export function parseOfferedSubprotocols(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const lines = typeof header === 'string' ? [header] : header;
  const offered: string[] = [];
  for (const line of lines) {
    for (const part of line.split(',')) {
      const name = part.trim();
      if (name !== '') offered.push(name);
    }
  }
  return offered;
}

/**
 * Picks the first subprotocol in the CLIENT's order that execlet supports (exact,
 * case-sensitive match, as upstream). Returns null when nothing matches; the caller must
 * then refuse the upgrade rather than answer 101 without a subprotocol.
 */
export function negotiateSubprotocol(offered: Iterable<string>): Subprotocol | null {
  for (const name of offered) {
    if (isSupportedSubprotocol(name)) return name;
  }
  return null;
}
