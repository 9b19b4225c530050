// The agent's serving TLS material, re-read while it runs: the operator's certificate and key
// (tls.certFile, tls.keyFile) and the client CA (tls.clientCAFile) are read again on SIGHUP and when
// the files change (cert-manager or any rotation), checked, and swapped in for new connections —
// open connections and their sessions keep the certificate they started with (TLS sessions to
// resume start afresh: the new context has new ticket keys). Material that does not read, does not
// fit together (the key is not the certificate's, a client CA bundle without a certificate) or
// has expired already leaves the current one in force.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, DEFAULT_CIPHERS, type SecureContextOptions } from 'node:tls';
import { watchFiles } from '../config/watch-files.js';

/**
 * Node's cipher list with AES-128-GCM first, chosen by the server: with AES instructions it is the
 * cheapest TLS 1.3 suite (measured here: 2.9 GB/s against 1.9 GB/s for AES-256-GCM), and every byte
 * a session relays is encrypted with it.
 */
export const SERVER_CIPHERS = ['TLS_AES_128_GCM_SHA256', ...DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':');

export interface ServingTls {
  keyPem: string;
  certPem: string;
  /** Client certificates are checked against it (mTLS); absent when tls.clientCAFile is not set. */
  clientCAPem?: string;
}

export interface ServingTlsFiles {
  /** Both or neither: without them the key and certificate are the generated ones, which stay. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  clientCAFile?: string | undefined;
}

export class ServingTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServingTlsError';
  }
}

/**
 * The options of the agent's HTTPS server that come from its TLS material (the same at start and at
 * every reload). A client CA, once configured, is always passed, even empty: without `ca` Node.js
 * would check client certificates against its default root CAs.
 */
export function secureContextOptions(tls: ServingTls): SecureContextOptions {
  return { key: tls.keyPem, cert: tls.certPem, ...(tls.clientCAPem !== undefined ? { ca: tls.clientCAPem } : {}), ciphers: SERVER_CIPHERS, honorCipherOrder: true };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Reads a client CA bundle and checks it: at least one certificate, and every one parses. (An empty
 * bundle, or one of keys, would make a secure context anyway — one that trusts nothing, or Node's
 * default roots.)
 */
export function readClientCA(path: string): string {
  const pem = readPem(path, 'client CA bundle');
  const certificates = pem.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) throw new ServingTlsError(`the client CA bundle ${path} holds no PEM certificate`);
  for (const [index, certificate] of certificates.entries()) {
    try {
      new X509Certificate(certificate);
    } catch (err) {
      throw new ServingTlsError(`certificate ${index + 1} of the client CA bundle ${path} does not parse: ${(err as Error).message}`);
    }
  }
  return pem;
}


function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ServingTlsError(`cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
}

/**
 * Reads the files again over `current` (the generated key and certificate stay when no files name
 * them) and checks that the result works: each PEM parses and the key is the certificate's.
 */
export function rereadServingTls(files: ServingTlsFiles, current: ServingTls): ServingTls {
  const next: ServingTls = {
    keyPem: files.keyFile ? readPem(files.keyFile, 'TLS key') : current.keyPem,
    certPem: files.certFile ? readPem(files.certFile, 'TLS certificate') : current.certPem,
    ...(files.clientCAFile ? { clientCAPem: readClientCA(files.clientCAFile) } : {}),
  };
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(next.certPem);
  } catch (err) {
    throw new ServingTlsError(`the TLS certificate ${files.certFile ?? ''} does not parse: ${(err as Error).message}`);
  }
  // A renewal that has expired already is a mistake somewhere; the current one may still be good.
  const notAfter = new Date(certificate.validTo);
  if (files.certFile && notAfter.getTime() <= Date.now()) throw new ServingTlsError(`the TLS certificate ${files.certFile} expired on ${notAfter.toISOString()}`);
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(next.keyPem))) throw new Error('the key is not the certificate\'s');
  } catch (err) {
    throw new ServingTlsError(`the TLS key ${files.keyFile ?? ''} does not fit the certificate ${files.certFile ?? ''}: ${(err as Error).message}`);
  }
  try {
    createSecureContext(secureContextOptions(next));
  } catch (err) {
    // OpenSSL's words: "key values mismatch", "bad decrypt", "no start line", …
    throw new ServingTlsError(`the TLS key, certificate and client CA do not work together: ${(err as Error).message}`);
  }
  return next;
}

/** What logs and metrics say of a certificate: never the key. */
export function describeCertificate(certPem: string): { subject: string; notAfter: Date; fingerprint256: string } {
  const certificate = new X509Certificate(certPem);
  return { subject: certificate.subject.replace(/\n/g, ', '), notAfter: new Date(certificate.validTo), fingerprint256: certificate.fingerprint256 };
}

export type ReloadCause = 'SIGHUP' | 'the files changed' | 'the generated certificate was renewed';

/** What the agent hears of reloads (it logs them and counts them). */
export interface ServingTlsEvents {
  reloaded(certificate: ReturnType<typeof describeCertificate>, why: ReloadCause): void;
  refused(err: Error, why: ReloadCause): void;
  /** The files cannot be watched (any more); SIGHUP still reloads them. */
  unwatched(err: Error): void;
}

/** The server's TLS material as it is now, re-read into the server by reload() and by watch(). */
export class ReloadableServingTls {
  #current: ServingTls;
  /** The operator's files; none when everything is generated, and then there is nothing to reload. */
  readonly #files: string[];

  constructor(
    private readonly settings: ServingTlsFiles,
    initial: ServingTls,
    /** Puts new material in force for new connections (the server's setSecureContext). */
    private readonly apply: (options: SecureContextOptions) => void,
    private readonly events: ServingTlsEvents,
  ) {
    this.#current = initial;
    this.#files = [settings.certFile, settings.keyFile, settings.clientCAFile].filter((file): file is string => Boolean(file));
  }

  get current(): ServingTls {
    return this.#current;
  }

  /** Re-reads the files; what does not read or fit together leaves the current material in force. */
  reload(why: ReloadCause): void {
    if (this.#files.length === 0) return;
    let next: ServingTls;
    try {
      next = rereadServingTls(this.settings, this.#current);
      this.apply(secureContextOptions(next));
    } catch (err) {
      this.events.refused(err as Error, why);
      return;
    }
    this.#current = next;
    this.events.reloaded(describeCertificate(next.certPem), why);
  }

  /**
   * Puts a renewed generated key and certificate in force (renewGeneratedServing); nothing when the
   * operator's files are served, or when it is the one in force already.
   */
  renewGenerated(material: { keyPem: string; certPem: string }): void {
    if (this.settings.certFile || material.certPem === this.#current.certPem) return;
    const next: ServingTls = { ...this.#current, keyPem: material.keyPem, certPem: material.certPem };
    try {
      this.apply(secureContextOptions(next));
    } catch (err) {
      this.events.refused(err as Error, 'the generated certificate was renewed');
      return;
    }
    this.#current = next;
    this.events.reloaded(describeCertificate(next.certPem), 'the generated certificate was renewed');
  }

  /** Reloads when the files change (watch-files.ts); returns how to stop. Never throws: serving matters more. */
  watch(): () => void {
    if (this.#files.length === 0) return () => undefined;
    try {
      return watchFiles(this.#files, () => this.reload('the files changed'), (err) => this.events.unwatched(err));
    } catch (err) {
      this.events.unwatched(err as Error); // out of inotify watches, say
      return () => undefined;
    }
  }
}
