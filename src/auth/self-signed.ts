// Issues the agent's own certificate authority and serving certificate when no TLS is configured.
// Keys come from Node's crypto (fast, native); node-forge only assembles and signs the X.509 bodies.
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { createRequire } from 'node:module';
import type Forge from 'node-forge';

// node-forge is loaded only when a certificate is actually issued (first start, or a re-issue):
// an agent with certificates in place never pays its memory.
const requireModule = createRequire(import.meta.url);
let forgeModule: typeof Forge | null = null;
function loadForge(): typeof Forge {
  forgeModule ??= requireModule('node-forge') as typeof Forge;
  return forgeModule;
}

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function newRsaKey(): { keyPem: string; publicKey: Forge.pki.rsa.PublicKey } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    publicKey: loadForge().pki.publicKeyFromPem(publicKey) as Forge.pki.rsa.PublicKey,
  };
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  return bytes.toString('hex');
}

export function createCertificateAuthority(commonName: string, validDays = 3650): KeyAndCert {
  const forge = loadForge();
  const { keyPem, publicKey } = newRsaKey();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + validDays * DAY_MS);
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'execlet' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeKey, forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

type SubjectAttribute = { name: string; value: string };

/** A leaf certificate signed by `ca`: a fresh key, the subject, and the extensions that make it what it is. */
function issueLeafCertificate(ca: KeyAndCert, subject: SubjectAttribute[], extensions: object[], validDays: number): KeyAndCert {
  const forge = loadForge();
  const { keyPem, publicKey } = newRsaKey();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(Date.now() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(Date.now() + validDays * DAY_MS);
  cert.setSubject(subject);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true }, ...extensions]);
  cert.sign(caKey, forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** A serving certificate for `hosts` (DNS names and IP addresses), signed by `ca`. */
export function createServingCertificate(ca: KeyAndCert, commonName: string, hosts: string[], validDays = 365): KeyAndCert {
  const altNames = [...new Set(hosts)].map((host) => (isIP(host) ? { type: 7, ip: host } : { type: 2, value: host }));
  return issueLeafCertificate(ca, [{ name: 'commonName', value: commonName }], [{ name: 'extKeyUsage', serverAuth: true }, { name: 'subjectAltName', altNames }], validDays);
}

/** A client certificate for mTLS: the user in the subject CN, groups as O entries (as Kubernetes reads them). */
export function createClientCertificate(ca: KeyAndCert, user: string, groups: string[] = [], validDays = 365): KeyAndCert {
  const subject = [{ name: 'commonName', value: user }, ...groups.map((group) => ({ name: 'organizationName', value: group }))];
  return issueLeafCertificate(ca, subject, [{ name: 'extKeyUsage', clientAuth: true }], validDays);
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
