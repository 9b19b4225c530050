// The agent's serving TLS material, re-read while it runs: the operator's certificate and key
// (tls.certFile, tls.keyFile) and the client CA (tls.clientCAFile) are read again on SIGHUP and when
// the files change (cert-manager or any rotation), checked, and swapped in for new connections —
// open connections and their sessions keep the certificate they started with. Material that does
// not read or does not fit together leaves the current one in force.
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SERVER_CIPHERS } from '../server/tls-ciphers.js';

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

/** The options of the agent's HTTPS server that come from its TLS material (the same at start and at every reload). */
export function secureContextOptions(tls: ServingTls): SecureContextOptions {
  return { key: tls.keyPem, cert: tls.certPem, ...(tls.clientCAPem ? { ca: tls.clientCAPem } : {}), ciphers: SERVER_CIPHERS, honorCipherOrder: true };
}

/** The files that are re-read, or none when the agent has nothing of the operator's to re-read. */
export function reloadableFiles(files: ServingTlsFiles): string[] {
  return [files.certFile, files.keyFile, files.clientCAFile].filter((file): file is string => Boolean(file));
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
    ...(files.clientCAFile ? { clientCAPem: readPem(files.clientCAFile, 'client CA bundle') } : {}),
  };
  try {
    new X509Certificate(next.certPem);
  } catch (err) {
    throw new ServingTlsError(`the TLS certificate ${files.certFile ?? ''} does not parse: ${(err as Error).message}`);
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
