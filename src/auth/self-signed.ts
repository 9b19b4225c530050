// Issues the agent's own certificate authority, serving certificate and mTLS client certificates:
// ECDSA P-256 keys from node:crypto, X.509 bodies written and signed by x509.ts (no ASN.1 library).
import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  authorityKeyIdentifier,
  basicConstraints,
  extKeyUsage,
  keyIdentifier,
  KeyUsage,
  keyUsage,
  name,
  OID,
  signCertificate,
  subjectAltName,
  subjectKeyIdentifier,
  subjectKeyIdentifierOf,
  subjectNameOf,
  toPem,
  type NameAttribute,
} from './x509.js';

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** A fresh P-256 key pair; the private key as PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
function newKey(): { privateKey: KeyObject; publicKey: KeyObject; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** 16 random bytes, top bit clear (positive) and the next one set (non-zero, always 16 bytes). */
function serialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes;
}

function validity(validDays: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - 5 * 60 * 1000), notAfter: new Date(now + validDays * DAY_MS) };
}

export function createCertificateAuthority(commonName: string, validDays = 3650): KeyAndCert {
  const { privateKey, publicKey, keyPem } = newKey();
  const subject = name([
    ['CN', commonName],
    ['O', 'execlet'],
  ]);
  const certificate = signCertificate(
    {
      serial: serialNumber(),
      issuer: subject,
      subject,
      ...validity(validDays),
      publicKey,
      extensions: [
        basicConstraints(true, true),
        keyUsage([KeyUsage.digitalSignature, KeyUsage.keyCertSign, KeyUsage.cRLSign]),
        subjectKeyIdentifier(keyIdentifier(publicKey)),
      ],
    },
    privateKey,
  );
  return { keyPem, certPem: toPem(certificate) };
}

/**
 * A leaf certificate signed by `ca` (whose key may be EC, or RSA from an older install): a fresh key,
 * the subject, its extended key usage and any further extensions.
 */
function issueLeafCertificate(ca: KeyAndCert, subject: NameAttribute[], purpose: string, extensions: Buffer[], validDays: number): KeyAndCert {
  const caCert = new X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  if (!caCert.checkPrivateKey(caKey)) throw new Error(`the CA key does not belong to the CA certificate ${caCert.subject}`);
  const { publicKey, keyPem } = newKey();
  // An RSA key would also encipher (RSA key exchange); an EC key only signs.
  const usage = publicKey.asymmetricKeyType === 'rsa' ? [KeyUsage.digitalSignature, KeyUsage.keyEncipherment] : [KeyUsage.digitalSignature];
  const certificate = signCertificate(
    {
      serial: serialNumber(),
      issuer: subjectNameOf(caCert.raw),
      subject: name(subject),
      ...validity(validDays),
      publicKey,
      extensions: [
        basicConstraints(false, false),
        keyUsage(usage),
        extKeyUsage([purpose]),
        ...extensions,
        authorityKeyIdentifier(subjectKeyIdentifierOf(caCert.raw) ?? keyIdentifier(caCert.publicKey)),
      ],
    },
    caKey,
  );
  return { keyPem, certPem: toPem(certificate) };
}

/** A serving certificate for `hosts` (DNS names and IP addresses), signed by `ca`. */
export function createServingCertificate(ca: KeyAndCert, commonName: string, hosts: string[], validDays = 365): KeyAndCert {
  const names = [...new Set(hosts)];
  return issueLeafCertificate(ca, [['CN', commonName]], OID.serverAuth, names.length > 0 ? [subjectAltName(names)] : [], validDays);
}

/** A client certificate for mTLS: the user in the subject CN, groups as O entries (as Kubernetes reads them). */
export function createClientCertificate(ca: KeyAndCert, user: string, groups: string[] = [], validDays = 365): KeyAndCert {
  const subject: NameAttribute[] = [['CN', user], ...groups.map((group): NameAttribute => ['O', group])];
  return issueLeafCertificate(ca, subject, OID.clientAuth, [], validDays);
}

/**
 * True when `certPem` is valid for at least `minDays` more days, names every host in `hosts`, and —
 * when `caPem` is given — was signed by that CA.
 */
export function certificateCovers(certPem: string, hosts: string[], minDays = 30, caPem?: string): boolean {
  const cert = new X509Certificate(certPem);
  if (Date.parse(cert.validTo) - Date.now() < minDays * DAY_MS) return false;
  if (caPem) {
    const ca = new X509Certificate(caPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return false;
  }
  return hosts.every((host) => (isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined));
}
