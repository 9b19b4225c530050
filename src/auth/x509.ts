// Builds and signs X.509 v3 certificates (RFC 5280) with node:crypto on top of the DER writer in
// der.ts: names, the few extensions the agent issues, the TBSCertificate and its signature, and the
// two things a leaf needs from its issuer's certificate (subject name, key identifier).
import { createHash, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import * as der from './der.js';
import { childrenOf, readSingle, type DerElement } from './der-reader.js';

export const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsaEncryption: '1.2.840.113549.1.1.11',
} as const;

/** KeyUsage bit positions (RFC 5280 4.2.1.3). */
export const KeyUsage = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

const NAME_ATTRIBUTES = { CN: OID.commonName, O: OID.organizationName } as const;
export type NameAttribute = [type: keyof typeof NAME_ATTRIBUTES, value: string];

/**
 * A Name: one RDN per attribute, in the order given (Kubernetes reads a client's groups from the O
 * entries in that order). Values that fit PrintableString are written as one, others as UTF8String.
 */
export function name(attributes: NameAttribute[]): Buffer {
  const rdns = attributes.map(([type, value]) =>
    der.set(der.sequence(der.oid(NAME_ATTRIBUTES[type]), der.isPrintable(value) ? der.printableString(value) : der.utf8String(value))),
  );
  return der.sequence(...rdns);
}

export function extension(oid: string, value: Buffer, critical: boolean): Buffer {
  return der.sequence(der.oid(oid), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

/** basicConstraints; cA FALSE is the DEFAULT, so DER leaves it out (an empty SEQUENCE). */
export function basicConstraints(ca: boolean, critical: boolean): Buffer {
  return extension(OID.basicConstraints, der.sequence(...(ca ? [der.boolean(true)] : [])), critical);
}

export function keyUsage(bits: number[]): Buffer {
  return extension(OID.keyUsage, der.namedBits(bits), true);
}

export function extKeyUsage(purposes: string[]): Buffer {
  return extension(OID.extKeyUsage, der.sequence(...purposes.map(der.oid)), false);
}

export function subjectKeyIdentifier(keyId: Buffer): Buffer {
  return extension(OID.subjectKeyIdentifier, der.octetString(keyId), false);
}

/** authorityKeyIdentifier with only keyIdentifier ([0] IMPLICIT OCTET STRING). */
export function authorityKeyIdentifier(keyId: Buffer): Buffer {
  return extension(OID.authorityKeyIdentifier, der.sequence(der.implicit(0, der.octetString(keyId))), false);
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address (an IPv6 zone index, "%eth0", is not part of it). */
export function ipAddressBytes(ip: string): Buffer {
  let address = ip.replace(/%.*$/, '');
  const version = isIP(address);
  if (version === 4) return Buffer.from(address.split('.').map(Number));
  if (version !== 6) throw new Error(`not an IP address: ${ip}`);
  // A dotted IPv4 tail (::ffff:192.0.2.1) becomes the last two 16-bit groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    address = `${address.slice(0, v4.index)}${(a * 256 + b).toString(16)}:${(c * 256 + d).toString(16)}`;
  }
  const groupsOf = (text: string): string[] => (text === '' ? [] : text.split(':'));
  const [head, tail] = address.split('::') as [string, string | undefined]; // isIP allows one "::" at most
  const groups =
    tail === undefined ? groupsOf(head) : [...groupsOf(head), ...Array<string>(8 - groupsOf(head).length - groupsOf(tail).length).fill('0'), ...groupsOf(tail)];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** subjectAltName: IP addresses as iPAddress [7], everything else as dNSName [2]. */
export function subjectAltName(hosts: string[]): Buffer {
  const names = hosts.map((host) =>
    isIP(host) ? der.implicit(7, der.octetString(ipAddressBytes(host))) : der.implicit(2, der.ia5String(host)),
  );
  return extension(OID.subjectAltName, der.sequence(...names), false);
}

/** The subjectPublicKey BIT STRING's contents (after the unused-bits byte) of a public key. */
function subjectPublicKeyBits(publicKey: KeyObject): Buffer {
  const [, bits] = childrenOf(readSingle(publicKey.export({ type: 'spki', format: 'der' })));
  if (!bits || bits.tag !== 0x03) throw new Error('SubjectPublicKeyInfo without a subjectPublicKey BIT STRING');
  return bits.contents.subarray(1);
}

/** A key identifier by RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(publicKey)).digest();
}

/** The signatureAlgorithm an issuer's key signs with: ecdsa-with-SHA256 for EC, sha256WithRSAEncryption for RSA. */
function signatureAlgorithm(issuerKey: KeyObject): Buffer {
  switch (issuerKey.asymmetricKeyType) {
    case 'ec':
      return der.sequence(der.oid(OID.ecdsaWithSha256)); // no parameters (RFC 5758)
    case 'rsa':
      return der.sequence(der.oid(OID.sha256WithRsaEncryption), der.nullValue()); // NULL parameters (RFC 4055)
    default:
      throw new Error(`cannot sign certificates with a ${String(issuerKey.asymmetricKeyType)} key (EC or RSA only)`);
  }
}

export interface CertificateFields {
  /** Big-endian bytes of a positive serial number. */
  serial: Buffer;
  /** Name DER; for a leaf, the issuer certificate's subject as it is (see subjectNameOf). */
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  extensions: Buffer[];
}

/** A v3 certificate for `fields`, signed with SHA-256 by `issuerKey`, as DER. */
export function signCertificate(fields: CertificateFields, issuerKey: KeyObject): Buffer {
  const algorithm = signatureAlgorithm(issuerKey);
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // version v3
    der.integer(fields.serial),
    algorithm,
    fields.issuer,
    der.sequence(der.time(fields.notBefore), der.time(fields.notAfter)),
    fields.subject,
    fields.publicKey.export({ type: 'spki', format: 'der' }),
    ...(fields.extensions.length > 0 ? [der.explicit(3, der.sequence(...fields.extensions))] : []),
  );
  return der.sequence(tbs, algorithm, der.bitString(sign('sha256', tbs, issuerKey)));
}

export function toPem(certificateDer: Buffer): string {
  const lines = certificateDer.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** The TBSCertificate fields of a certificate, without the optional version. */
function tbsFields(certificateDer: Buffer): DerElement[] {
  const [tbs] = childrenOf(readSingle(certificateDer));
  if (!tbs) throw new Error('certificate without a TBSCertificate');
  const fields = childrenOf(tbs);
  return fields[0]?.tag === 0xa0 ? fields.slice(1) : fields;
}

/** The subject Name of a certificate, byte for byte: a leaf's issuer must be identical to it. */
export function subjectNameOf(certificateDer: Buffer): Buffer {
  // serialNumber, signature, issuer, validity, subject, …
  const subject = tbsFields(certificateDer)[4];
  if (subject?.tag !== 0x30) throw new Error('certificate without a subject name');
  return subject.der;
}

/** The keyIdentifier in a certificate's subjectKeyIdentifier extension, or null without one. */
export function subjectKeyIdentifierOf(certificateDer: Buffer): Buffer | null {
  const extensions = tbsFields(certificateDer).find((field) => field.tag === 0xa3);
  if (!extensions) return null;
  const skiOid = der.oid(OID.subjectKeyIdentifier);
  for (const ext of childrenOf(readSingle(extensions.contents))) {
    const parts = childrenOf(ext);
    if (!parts[0]?.der.equals(skiOid)) continue;
    const value = parts[parts.length - 1]!; // extnValue: OCTET STRING holding the KeyIdentifier OCTET STRING
    return Buffer.from(readSingle(value.contents).contents);
  }
  return null;
}
