// What every exec-like route checks about the upgrade itself, before any WebSocket handshake: it
// is a WebSocket GET (SPDY gets a clear refusal) with the key and version the handshake needs,
// and one offered subprotocol is one we speak.
import type { FastifyRequest } from 'fastify';
import { negotiateSubprotocol, parseOfferedSubprotocols, protocolTraits, SUPPORTED_SUBPROTOCOLS, type ProtocolTraits } from '../protocol/subprotocols.js';

export class UpgradeRefused extends Error {
  constructor(
    message: string,
    readonly code = 400,
    /** Headers the refusal carries (RFC 6455 names the versions a server speaks). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'UpgradeRefused';
  }
}

const SPDY_REFUSAL =
  'SPDY is not supported by execlet yet: use a client that speaks the WebSocket exec protocol ' +
  '(kubectl 1.30 or newer, or kubectl 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true)';
export const UPGRADE_REQUIRED = 'Upgrade request required: exec needs a WebSocket (GET with Upgrade: websocket)';
/** RFC 6455 §4.1: the base64 of 16 bytes (what the ws library accepts). */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;
const WEBSOCKET_VERSIONS = ['13', '8'];
/** What a token is made of (RFC 7230 §3.2.6), as the inside of a character class. */
const TOKEN_CHARS = "!#$%&'*+\\-.^_`|~0-9A-Za-z";
/** RFC 6455 §4.1: Sec-WebSocket-Protocol is a comma-separated list of tokens. */
const SUBPROTOCOL_LIST = new RegExp(`^[\\t ]*[${TOKEN_CHARS}]+(?:[\\t ]*,[\\t ]*[${TOKEN_CHARS}]+)*[\\t ]*$`);
/** A character a token may not hold. */
const NOT_TOKEN_CHAR = new RegExp(`[^${TOKEN_CHARS}]`);
/**
 * Kubernetes clients that cannot set headers (browsers) carry a bearer token in a subprotocol of
 * this prefix. execlet does not take tokens there, but what is offered goes into refusals, which
 * are logged and audited: such a subprotocol is named only by its prefix.
 */
const BEARER_SUBPROTOCOL_PREFIX = 'base64url.bearer.authorization.k8s.io.';

/** An offered subprotocol as a refusal may show it: without a token it carries. */
export function shownSubprotocol(name: string): string {
  return name.toLowerCase().startsWith(BEARER_SUBPROTOCOL_PREFIX) ? `${BEARER_SUBPROTOCOL_PREFIX}[redacted]` : name;
}

/**
 * What is wrong with a Sec-WebSocket-Protocol header that is not a list of tokens, without
 * repeating any of it: anything may be in it, a credential too.
 */
function subprotocolListProblem(header: string): string {
  const entries = header.split(',');
  for (const [index, entry] of entries.entries()) {
    const trimmed = entry.replace(/^[\t ]+|[\t ]+$/g, '');
    const which = `entry ${index + 1} of ${entries.length}`;
    if (trimmed === '') return `${which} is empty`;
    const bad = NOT_TOKEN_CHAR.exec(trimmed);
    if (bad) return `${which} holds ${JSON.stringify(bad[0])}, which a token may not`;
  }
  return 'it is not a list of tokens';
}

/** The negotiated protocol's traits, or throws UpgradeRefused with a message a person understands. */
export function checkUpgrade(request: FastifyRequest): ProtocolTraits {
  const upgrade = request.headers.upgrade?.toLowerCase();
  if (upgrade?.startsWith('spdy/')) throw new UpgradeRefused(SPDY_REFUSAL);
  if (upgrade !== 'websocket' || request.method !== 'GET') throw new UpgradeRefused(UPGRADE_REQUIRED);
  if (!WEBSOCKET_KEY.test(request.headers['sec-websocket-key'] ?? '')) {
    throw new UpgradeRefused('missing or invalid Sec-WebSocket-Key header: RFC 6455 asks for 16 random bytes in base64');
  }
  const version = request.headers['sec-websocket-version'];
  if (!version || !WEBSOCKET_VERSIONS.includes(version)) {
    throw new UpgradeRefused(`${version ? `Sec-WebSocket-Version ${version} is not supported` : 'missing Sec-WebSocket-Version header'}: execlet speaks 13 (and 8)`, 400, {
      'sec-websocket-version': WEBSOCKET_VERSIONS.join(', '),
    });
  }
  const header = request.headers['sec-websocket-protocol'];
  // What the WebSocket handshake itself would refuse is refused here, with a Status, before any
  // session is set up for it.
  if (header !== undefined && header !== '' && !SUBPROTOCOL_LIST.test(header)) {
    throw new UpgradeRefused(`invalid Sec-WebSocket-Protocol header: it must be a comma-separated list of tokens; ${subprotocolListProblem(header)}`);
  }
  const offered = parseOfferedSubprotocols(header);
  const twice = offered.find((name, index) => offered.indexOf(name) !== index);
  if (twice !== undefined) throw new UpgradeRefused(`invalid Sec-WebSocket-Protocol header: subprotocol ${shownSubprotocol(twice)} is offered twice`);
  const protocol = negotiateSubprotocol(offered);
  if (!protocol) {
    const what = offered.length === 0 ? 'no WebSocket subprotocol was offered' : `none of the offered subprotocols (${offered.map(shownSubprotocol).join(', ')}) is supported`;
    throw new UpgradeRefused(`${what}; execlet speaks ${SUPPORTED_SUBPROTOCOLS.join(', ')}`);
  }
  return protocolTraits(protocol);
}

/**
 * Whether the handshake will go ahead: a real upgrade (not upgrade headers on a plain request,
 * which the route's HTTP handler refuses) on a connection still open both ways (ws refuses any
 * other, silently). Nothing that cannot be undone — a session set up, a single-use URL used — is
 * done for a request that fails this.
 */
export function willUpgrade(request: FastifyRequest): boolean {
  const connection = request.raw.socket;
  return (request.raw as { upgrade?: boolean }).upgrade === true && !connection.destroyed && connection.readable && connection.writable;
}
