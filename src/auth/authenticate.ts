// Decides who a caller is: a client certificate (mTLS; user from the subject CN, groups from O, as
// Kubernetes does), a bearer token from the token file, or the agent's generated local token.
// Tokens are compared as SHA-256 digests in constant time and never leave this module.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { TokenFile } from './token-file.js';

export type AuthMethod = 'local-token' | 'token' | 'client-certificate' | 'stream-token';

export interface Identity {
  user: string;
  groups: string[];
  method: AuthMethod;
  /** The client's address, for the audit log. */
  address: string;
  /**
   * A token-file identity's token, as its SHA-256 (hex), so that it can be looked up again when a
   * stream URL it asked for is opened (reconfirm). Never logged or audited.
   */
  tokenDigest?: string;
}

export type AuthFailure = 'missing' | 'malformed' | 'invalid-token' | 'untrusted-certificate' | 'certificate-without-name' | 'reserved-name';
export type AuthOutcome = { ok: true; identity: Identity } | { ok: false; reason: AuthFailure; message: string };

/** The identity of the generated local token (the operator on the node); a policy grants it by this name. */
export const LOCAL_USER = 'execlet:local';
export const LOCAL_GROUP = 'execlet:local';

/**
 * Whether a name is the local token's: no other credential (a token file's line, a client
 * certificate) may claim it, since without a policy that name alone grants node shells.
 */
export function isReservedName(name: string): boolean {
  return name === LOCAL_USER || name === LOCAL_GROUP;
}

export interface AuthenticatorOptions {
  localToken: string;
  tokenFile: TokenFile | null;
  /** Client certificates are verified by the TLS layer against the client CA; off without one. */
  clientCertificates: boolean;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export class Authenticator {
  readonly #localDigest: Buffer;

  constructor(private readonly options: AuthenticatorOptions) {
    this.#localDigest = digest(options.localToken);
  }

  authenticate(authorization: string | undefined, socket: TLSSocket, address: string): AuthOutcome {
    if (this.options.clientCertificates) {
      const certificate = socket.getPeerCertificate();
      if (certificate && Object.keys(certificate).length > 0) {
        if (!socket.authorized) {
          return { ok: false, reason: 'untrusted-certificate', message: 'Unauthorized: the client certificate is not signed by a trusted CA' };
        }
        const user = asList(certificate.subject?.CN)[0];
        if (!user) return { ok: false, reason: 'certificate-without-name', message: 'Unauthorized: the client certificate has no subject common name (CN)' };
        const groups = asList(certificate.subject?.O);
        if (isReservedName(user) || groups.some(isReservedName)) {
          return { ok: false, reason: 'reserved-name', message: `Unauthorized: the client certificate names ${LOCAL_USER}, which only the agent's local token may` };
        }
        return { ok: true, identity: { user, groups, method: 'client-certificate', address } };
      }
    }
    if (authorization === undefined || authorization.length === 0) {
      return { ok: false, reason: 'missing', message: 'Unauthorized: a valid bearer token or client certificate is required' };
    }
    const match = /^Bearer +(\S+)\s*$/i.exec(authorization);
    if (!match) return { ok: false, reason: 'malformed', message: 'Unauthorized: the Authorization header must be "Bearer TOKEN"' };
    const token = match[1]!;
    if (timingSafeEqual(digest(token), this.#localDigest)) {
      return { ok: true, identity: { user: LOCAL_USER, groups: [LOCAL_GROUP], method: 'local-token', address } };
    }
    const entry = this.options.tokenFile?.lookup(token);
    if (entry) return { ok: true, identity: { user: entry.user, groups: entry.groups, method: 'token', address, tokenDigest: digest(token).toString('hex') } };
    return { ok: false, reason: 'invalid-token', message: 'Unauthorized: a valid bearer token or client certificate is required' };
  }

  /**
   * The identity as the credentials stand now, for something it asked for earlier (a stream URL
   * being opened): a token-file identity with its groups as the file lists them today, or null when
   * the file no longer holds its token for that user (removed, or given to someone else since). The
   * local token does not change while the agent runs; a client certificate is not checked again (its
   * TLS connection was verified against the client CA of the time, which a reload may have changed
   * since: that URL still opens within its 60 s).
   */
  reconfirm(identity: Identity): Identity | null {
    // A token-file identity keeps its digest when it becomes a stream URL's (method stream-token).
    if (identity.tokenDigest === undefined) return identity;
    const entry = this.options.tokenFile?.lookupDigest(identity.tokenDigest) ?? null;
    if (!entry || entry.user !== identity.user) return null;
    return { ...identity, groups: entry.groups };
  }
}
