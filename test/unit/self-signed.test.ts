// Unit tests for the agent's own TLS identity and token (src/auth/self-signed.ts, src/auth/x509.ts,
// src/auth/local-credentials.ts): the CA, serving and client certificates as node:crypto and the
// openssl CLI see them (ECDSA P-256, extensions, exact issuer bytes), leaves from an RSA or foreign CA,
// real TLS and mTLS handshakes, files and modes in a temp state dir, reuse and re-issue, refusals,
// token files, and the local kubeconfig.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { parse as parseYaml } from 'yaml';

import {
  CredentialsError,
  localClientHost,
  prepareLocalCredentials,
  writeLocalKubeconfig,
  type LocalCredentials,
} from '../../src/auth/local-credentials.js';
import { childrenOf, readSingle } from '../../src/auth/der-reader.js';
import { certificateCovers, createCertificateAuthority, createClientCertificate, createServingCertificate, type KeyAndCert } from '../../src/auth/self-signed.js';
import { keyIdentifier, subjectNameOf } from '../../src/auth/x509.js';
import { defaultSettings, isLoopbackHost, type Settings } from '../../src/config/settings.js';

let root: string;
let dirCount = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'execlet-creds-test-'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh (not yet existing, nested) state dir. */
function stateDir(): string {
  return join(root, `state-${++dirCount}`, 'nested');
}

function settings(overrides: Partial<Settings> = {}): Settings {
  return { ...defaultSettings({}), stateDir: stateDir(), nodeName: 'node-a', listen: '127.0.0.1:10350', ...overrides };
}

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

function credentialsError(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CredentialsError, `expected CredentialsError, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

function signedBy(certPem: string, caPem: string): boolean {
  return new X509Certificate(certPem).verify(new X509Certificate(caPem).publicKey);
}

function keyMatches(certPem: string, keyPem: string): boolean {
  return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
}

// Share one CA and serving certificate across the first tests.
let ca: KeyAndCert;
let serving: KeyAndCert;
const HOSTS = ['127.0.0.1', '::1', 'localhost', 'node-a', 'node-a'];

describe('self-signed certificates', () => {
  before(() => {
    ca = createCertificateAuthority('execlet-ca-test');
    serving = createServingCertificate(ca, 'node-a', HOSTS);
  });

  it('the CA is a self-signed CA', () => {
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.match(cert.subject, /CN=execlet-ca-test/);
    assert.equal(cert.subject, cert.issuer);
    assert.ok(keyMatches(ca.certPem, ca.keyPem));
    assert.ok(Date.parse(cert.validTo) - Date.now() > 9 * 365 * 24 * 3600 * 1000, 'valid for years');
  });

  it('the serving certificate is not a CA, is issued by the CA and verifies against its key', () => {
    const cert = new X509Certificate(serving.certPem);
    const caCert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, false);
    assert.equal(cert.issuer, caCert.subject);
    assert.ok(cert.verify(caCert.publicKey));
    assert.ok(cert.checkIssued(caCert));
    assert.ok(keyMatches(serving.certPem, serving.keyPem));
    assert.match(cert.subject, /CN=node-a/);
  });

  it('does not verify against another CA', () => {
    const other = createCertificateAuthority('other');
    assert.equal(signedBy(serving.certPem, other.certPem), false);
  });

  it('is for server authentication', () => {
    assert.ok(new X509Certificate(serving.certPem).keyUsage?.includes('1.3.6.1.5.5.7.3.1'));
  });

  it('has SANs for 127.0.0.1, ::1, localhost and the node name (duplicates merged)', () => {
    const cert = new X509Certificate(serving.certPem);
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(cert.checkIP('::1') !== undefined, '::1');
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkHost('node-a'), 'node-a');
    const san = cert.subjectAltName ?? '';
    assert.equal(san.split(', ').length, 4, san);
    assert.ok(san.includes('DNS:node-a') && san.includes('IP Address:127.0.0.1'), san);
  });

  it('names nothing else: other hosts and IPs are not covered, an IP is not a DNS name', () => {
    const cert = new X509Certificate(serving.certPem);
    assert.equal(cert.checkHost('node-b'), undefined);
    assert.equal(cert.checkHost('evil.node-a'), undefined);
    assert.equal(cert.checkIP('127.0.0.2'), undefined);
    assert.equal(cert.checkIP('10.0.0.1'), undefined);
  });

  it('certificateCovers: true for the named hosts, false when one host is missing', () => {
    assert.equal(certificateCovers(serving.certPem, ['127.0.0.1', '::1', 'localhost', 'node-a']), true);
    assert.equal(certificateCovers(serving.certPem, ['localhost', 'node-b']), false);
    assert.equal(certificateCovers(serving.certPem, ['127.0.0.1', '192.168.1.10']), false);
    assert.equal(certificateCovers(serving.certPem, []), true);
  });

  it('certificateCovers: false when the certificate expires within minDays', () => {
    const shortLived = createServingCertificate(ca, 'node-a', ['localhost'], 10);
    assert.equal(certificateCovers(shortLived.certPem, ['localhost']), false, 'default minDays is 30');
    assert.equal(certificateCovers(shortLived.certPem, ['localhost'], 5), true);
    assert.equal(certificateCovers(serving.certPem, ['localhost'], 400), false, 'a one-year certificate does not cover 400 days');
  });

  it('two certificates never share a serial number or key', () => {
    const again = createServingCertificate(ca, 'node-a', ['localhost']);
    assert.notEqual(new X509Certificate(again.certPem).serialNumber, new X509Certificate(serving.certPem).serialNumber);
    assert.notEqual(again.keyPem, serving.keyPem);
  });
});

/** Runs a function with a fresh temp dir for openssl's files, removed afterwards. */
function inTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(root, 'openssl-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the openssl CLI; fails the test with its output unless it exits 0. */
function openssl(args: string[], input?: string): { stdout: string; stderr: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  assert.equal(result.error, undefined, `cannot run openssl: ${String(result.error)}`);
  assert.equal(result.status, 0, `openssl ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

function opensslText(certPem: string): string {
  return openssl(['x509', '-noout', '-text'], certPem).stdout;
}

/** An extension as `openssl x509 -text` shows it: its critical flag and its first value line. */
function extensionOf(text: string, title: string): { critical: boolean; value: string } | undefined {
  const match = new RegExp(`X509v3 ${title}:( critical)?\\s*\\n\\s*(.*)`).exec(text);
  return match ? { critical: match[1] !== undefined, value: match[2]!.trim() } : undefined;
}

/** `openssl verify` of `leafPem` against `caPem` as the only trust anchor (by default with -x509_strict). */
function opensslVerify(caPem: string, leafPem: string, purpose: 'sslserver' | 'sslclient', strict = true): string {
  return inTempDir((dir) => {
    writeFileSync(join(dir, 'ca.pem'), caPem);
    writeFileSync(join(dir, 'leaf.pem'), leafPem);
    return openssl(['verify', ...(strict ? ['-x509_strict'] : []), '-purpose', purpose, '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')]).stdout;
  });
}

/**
 * What `openssl asn1parse` prints when it meets a bad encoding ("Error in encoding", "BAD INTEGER",
 * "Bad boolean", …). "bad" must be a word of its own: the dump prints serials, keys and signatures
 * in hex, and random hex spells BAD in about one certificate in a hundred (2 of 200 CAs measured).
 */
const ASN1PARSE_COMPLAINT = /error|\bbad\b/i;

/** `openssl asn1parse` of a certificate: must parse without a word on stderr. */
function asn1parse(certPem: string): string {
  const { stdout, stderr } = openssl(['asn1parse', '-i'], certPem);
  assert.equal(stderr, '', stderr);
  assert.doesNotMatch(stdout, ASN1PARSE_COMPLAINT, stdout);
  return stdout;
}

/**
 * A CA made by openssl, as an older install or an operator has it: an RSA-2048 key in PKCS#1 PEM
 * ("BEGIN RSA PRIVATE KEY") or another key type, and the given subjectKeyIdentifier setting.
 */
function opensslCA(subject: string, options: { key?: 'rsa' | 'ed25519'; subjectKeyIdentifier?: string } = {}): KeyAndCert {
  const keyPem =
    options.key === 'ed25519'
      ? generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  return inTempDir((dir) => {
    const config = [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ca',
      '[dn]',
      '[ca]',
      'basicConstraints = critical,CA:true',
      'keyUsage = critical,keyCertSign,cRLSign',
      `subjectKeyIdentifier = ${options.subjectKeyIdentifier ?? 'hash'}`,
    ];
    writeFileSync(join(dir, 'openssl.cnf'), `${config.join('\n')}\n`);
    writeFileSync(join(dir, 'ca.key'), keyPem);
    openssl(['req', '-x509', '-config', join(dir, 'openssl.cnf'), '-key', join(dir, 'ca.key'), '-subj', subject, '-days', '3650', '-out', join(dir, 'ca.crt')]);
    return { keyPem, certPem: readFileSync(join(dir, 'ca.crt'), 'utf8') };
  });
}

/** The TBSCertificate fields of a certificate (version first). */
function tbsFieldsOf(certPem: string): Buffer[] {
  const [tbs] = childrenOf(readSingle(new X509Certificate(certPem).raw));
  return childrenOf(tbs!).map((field) => field.der);
}

/** SHA-1 of the subjectPublicKey bits, the way RFC 5280 4.2.1.2 (1) and openssl's "hash" compute it. */
function sha1KeyId(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const bits = childrenOf(readSingle(spki))[1]!.contents.subarray(1);
  return createHash('sha1').update(bits).digest('hex');
}

/** openssl's colon-separated upper-case hex of a key identifier. */
function colonHex(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(':');
}

function assertP256(certPem: string, keyPem: string): void {
  const cert = new X509Certificate(certPem);
  assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
  assert.deepEqual(cert.publicKey.asymmetricKeyDetails, { namedCurve: 'prime256v1' });
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  assert.equal(createPrivateKey(keyPem).asymmetricKeyType, 'ec');
  assert.ok(keyMatches(certPem, keyPem));
}

describe('self-signed certificates: ECDSA P-256 and their encoding', () => {
  let client: KeyAndCert;

  before(() => {
    ca ??= createCertificateAuthority('execlet-ca-test');
    serving ??= createServingCertificate(ca, 'node-a', HOSTS);
    client = createClientCertificate(ca, 'alice', ['team-a', 'admins', 'ops_oncall']);
  });

  it('CA, serving and client keys are P-256, private keys PKCS#8', () => {
    assertP256(ca.certPem, ca.keyPem);
    assertP256(serving.certPem, serving.keyPem);
    assertP256(client.certPem, client.keyPem);
  });

  it('the CA subject is CN then O=execlet, and it is its own issuer byte for byte', () => {
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.subject, 'CN=execlet-ca-test\nO=execlet');
    const fields = tbsFieldsOf(ca.certPem);
    assert.ok(fields[3]!.equals(fields[5]!), 'issuer bytes equal subject bytes');
  });

  it('all are X.509 v3, signed with ecdsa-with-SHA256 without parameters', () => {
    for (const pem of [ca.certPem, serving.certPem, client.certPem]) {
      const fields = tbsFieldsOf(pem);
      assert.equal(fields[0]!.toString('hex'), 'a003020102', 'version v3');
      assert.equal(fields[2]!.toString('hex'), '300a06082a8648ce3d040302', 'ecdsa-with-SHA256, no parameters');
      assert.match(opensslText(pem), /Signature Algorithm: ecdsa-with-SHA256/);
    }
  });

  it('serial numbers are 16 bytes and positive', () => {
    for (const pem of [ca.certPem, serving.certPem, client.certPem]) {
      const serial = readSingle(tbsFieldsOf(pem)[1]!);
      assert.equal(serial.tag, 0x02, 'INTEGER');
      assert.equal(serial.contents.length, 16);
      assert.ok(serial.contents[0]! >= 0x40 && serial.contents[0]! < 0x80, 'positive, no leading zero byte');
    }
    const serials = new Set([ca.certPem, serving.certPem, client.certPem].map((pem) => new X509Certificate(pem).serialNumber));
    assert.equal(serials.size, 3);
  });

  it('validity: from five minutes ago (to the second) for the days asked', () => {
    const now = Date.now();
    const cert = new X509Certificate(createServingCertificate(ca, 'node-a', ['localhost'], 42).certPem);
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    assert.ok(Math.abs(from - (now - 5 * 60_000)) < 5000, cert.validFrom);
    assert.ok(Math.abs(to - (now + 42 * 86_400_000)) < 5000, cert.validTo);
  });

  it('the asn1parse check flags what openssl prints for a bad encoding, not BAD inside a hex dump', () => {
    for (const complaint of ['Error in encoding', '   13:d=2  hl=2 l=  16 prim:   INTEGER           :BAD INTEGER:0102', '    2:d=1  hl=2 l=   1 prim:  BOOLEAN           :Bad boolean']) {
      assert.match(complaint, ASN1PARSE_COMPLAINT, complaint);
    }
    assert.doesNotMatch('   13:d=2  hl=2 l=  16 prim:   INTEGER           :4FF6FC0626ED62BAD0D50EA88A206D77', ASN1PARSE_COMPLAINT);
    assert.doesNotMatch('  372:d=1  hl=2 l=  73 prim:  BIT STRING        \n  0000 - bad1 badc 0ffe', ASN1PARSE_COMPLAINT);
  });

  it('openssl accepts them: x509 -text, asn1parse, and strict verify against the CA', () => {
    for (const pem of [ca.certPem, serving.certPem, client.certPem]) {
      opensslText(pem);
      asn1parse(pem);
    }
    assert.match(opensslVerify(ca.certPem, serving.certPem, 'sslserver'), /: OK\n$/);
    assert.match(opensslVerify(ca.certPem, client.certPem, 'sslclient'), /: OK\n$/);
    assert.match(opensslVerify(ca.certPem, ca.certPem, 'sslserver'), /: OK\n$/, 'the CA is a trust anchor');
  });

  it('openssl refuses the serving certificate as a client one, the client certificate as a serving one, and another CA', () => {
    const refused = (caPem: string, leafPem: string, purpose: 'sslserver' | 'sslclient'): string =>
      inTempDir((dir) => {
        writeFileSync(join(dir, 'ca.pem'), caPem);
        writeFileSync(join(dir, 'leaf.pem'), leafPem);
        const result = spawnSync('openssl', ['verify', '-purpose', purpose, '-CAfile', join(dir, 'ca.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
        assert.notEqual(result.status, 0, `openssl verify accepted it:\n${result.stdout}`);
        return result.stdout + result.stderr;
      });
    assert.match(refused(ca.certPem, serving.certPem, 'sslclient'), /unsuitable certificate purpose/);
    assert.match(refused(ca.certPem, client.certPem, 'sslserver'), /unsuitable certificate purpose/);
    assert.match(refused(createCertificateAuthority('other').certPem, serving.certPem, 'sslserver'), /unable to get local issuer certificate/);
  });

  it('CA extensions: basicConstraints CA:TRUE and keyUsage critical, subjectKeyIdentifier = SHA-1 of the key bits', () => {
    const text = opensslText(ca.certPem);
    assert.deepEqual(extensionOf(text, 'Basic Constraints'), { critical: true, value: 'CA:TRUE' });
    assert.deepEqual(extensionOf(text, 'Key Usage'), { critical: true, value: 'Digital Signature, Certificate Sign, CRL Sign' });
    assert.deepEqual(extensionOf(text, 'Subject Key Identifier'), { critical: false, value: colonHex(sha1KeyId(ca.certPem)) });
    assert.equal(keyIdentifier(new X509Certificate(ca.certPem).publicKey).toString('hex'), sha1KeyId(ca.certPem));
    assert.equal(extensionOf(text, 'Authority Key Identifier'), undefined);
    assert.equal(extensionOf(text, 'Extended Key Usage'), undefined);
    assert.equal(new X509Certificate(ca.certPem).keyUsage, undefined, 'no extKeyUsage');
  });

  it('serving extensions: CA:FALSE, keyUsage digitalSignature only, serverAuth, SANs, authorityKeyIdentifier', () => {
    const text = opensslText(serving.certPem);
    assert.deepEqual(extensionOf(text, 'Basic Constraints'), { critical: false, value: 'CA:FALSE' });
    assert.deepEqual(extensionOf(text, 'Key Usage'), { critical: true, value: 'Digital Signature' });
    assert.deepEqual(extensionOf(text, 'Extended Key Usage'), { critical: false, value: 'TLS Web Server Authentication' });
    assert.deepEqual(extensionOf(text, 'Subject Alternative Name'), {
      critical: false,
      value: 'IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost, DNS:node-a',
    });
    assert.deepEqual(extensionOf(text, 'Authority Key Identifier'), { critical: false, value: colonHex(sha1KeyId(ca.certPem)) });
    assert.deepEqual(new X509Certificate(serving.certPem).keyUsage, ['1.3.6.1.5.5.7.3.1']);
  });

  it('client extensions: CA:FALSE, digitalSignature, clientAuth only, no SANs', () => {
    const text = opensslText(client.certPem);
    assert.deepEqual(extensionOf(text, 'Basic Constraints'), { critical: false, value: 'CA:FALSE' });
    assert.deepEqual(extensionOf(text, 'Key Usage'), { critical: true, value: 'Digital Signature' });
    assert.deepEqual(new X509Certificate(client.certPem).keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(extensionOf(text, 'Subject Alternative Name'), undefined);
    assert.deepEqual(extensionOf(text, 'Authority Key Identifier'), { critical: false, value: colonHex(sha1KeyId(ca.certPem)) });
  });

  it('the client subject is the user as CN, then each group as O, in the order given', () => {
    const cert = new X509Certificate(client.certPem);
    assert.equal(cert.subject, 'CN=alice\nO=team-a\nO=admins\nO=ops_oncall');
    const noGroups = new X509Certificate(createClientCertificate(ca, 'bob').certPem);
    assert.equal(noGroups.subject, 'CN=bob');
    const unicode = new X509Certificate(createClientCertificate(ca, 'zoë', ['équipe']).certPem);
    assert.equal(unicode.subject, 'CN=zoë\nO=équipe');
  });

  it("a leaf's issuer is the CA's subject, byte for byte", () => {
    const caSubject = subjectNameOf(new X509Certificate(ca.certPem).raw);
    assert.ok(caSubject.equals(tbsFieldsOf(ca.certPem)[5]!));
    for (const pem of [serving.certPem, client.certPem]) {
      assert.ok(tbsFieldsOf(pem)[3]!.equals(caSubject));
      assert.ok(new X509Certificate(pem).checkIssued(new X509Certificate(ca.certPem)));
      assert.ok(signedBy(pem, ca.certPem));
    }
  });

  it('IPv6 and IPv4 SANs are matched by checkIP, DNS SANs by checkHost', () => {
    const cert = new X509Certificate(createServingCertificate(ca, 'n', ['2001:db8::8a2e:370:7334', '::ffff:10.0.0.1', '10.9.8.7', 'node-x.example']).certPem);
    assert.equal(cert.checkIP('2001:db8::8a2e:370:7334'), '2001:db8::8a2e:370:7334');
    assert.equal(cert.checkIP('2001:db8:0:0:0:8a2e:370:7334'), '2001:db8:0:0:0:8a2e:370:7334', 'compared as addresses, not text');
    assert.equal(cert.checkIP('2001:db8::8a2e:370:7335'), undefined);
    assert.notEqual(cert.checkIP('::ffff:10.0.0.1'), undefined);
    assert.equal(cert.checkIP('10.9.8.7'), '10.9.8.7');
    assert.equal(cert.checkIP('10.0.0.1'), undefined, 'a v4-mapped v6 address is a v6 SAN');
    assert.equal(cert.checkHost('node-x.example'), 'node-x.example');
    assert.equal(cert.checkHost('10.9.8.7'), undefined, 'an IP SAN is not a DNS name');
  });

  it('a DNS name that is not ASCII is refused rather than mis-encoded', () => {
    assert.throws(() => createServingCertificate(ca, 'n', ['bücher.example']), /not ASCII/);
  });
});

describe('self-signed certificates: leaves from a CA made elsewhere', () => {
  it('an RSA CA with a PKCS#1 key (older installs) signs EC leaves with sha256WithRSAEncryption', () => {
    const rsaCA = opensslCA('/CN=execlet-ca-node-a/O=execlet');
    assert.match(rsaCA.keyPem, /^-----BEGIN RSA PRIVATE KEY-----\n/);
    const leaf = createServingCertificate(rsaCA, 'node-a', ['127.0.0.1', '::1', 'localhost']);
    assertP256(leaf.certPem, leaf.keyPem);
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(rsaCA.certPem);
    assert.ok(cert.verify(caCert.publicKey));
    assert.ok(cert.checkIssued(caCert));
    assert.equal(tbsFieldsOf(leaf.certPem)[2]!.toString('hex'), '300d06092a864886f70d01010b0500', 'sha256WithRSAEncryption, NULL parameters');
    assert.match(opensslText(leaf.certPem), /Signature Algorithm: sha256WithRSAEncryption/);
    assert.deepEqual(extensionOf(opensslText(leaf.certPem), 'Key Usage'), { critical: true, value: 'Digital Signature' });
    assert.match(opensslVerify(rsaCA.certPem, leaf.certPem, 'sslserver'), /: OK\n$/);
    asn1parse(leaf.certPem);
    assert.ok(certificateCovers(leaf.certPem, ['127.0.0.1', '::1', 'localhost'], 30, rsaCA.certPem));
  });

  it("the issuer name is copied from the CA's certificate, whatever string types it uses", () => {
    // openssl writes UTF8String names; the leaf must carry exactly those bytes, not a rebuilt name.
    const foreign = opensslCA('/CN=Some CA/O=ops_team/O=Zürich');
    const leaf = createClientCertificate(foreign, 'carol', ['x']);
    assert.ok(tbsFieldsOf(leaf.certPem)[3]!.equals(tbsFieldsOf(foreign.certPem)[5]!));
    assert.match(opensslVerify(foreign.certPem, leaf.certPem, 'sslclient'), /: OK\n$/);
  });

  it("authorityKeyIdentifier repeats the CA's own subjectKeyIdentifier, even one that is not the key hash", () => {
    const odd = opensslCA('/CN=odd-ski', { subjectKeyIdentifier: '0102030405060708' });
    const leaf = createServingCertificate(odd, 'node-a', ['localhost']);
    assert.deepEqual(extensionOf(opensslText(leaf.certPem), 'Authority Key Identifier'), { critical: false, value: '01:02:03:04:05:06:07:08' });
    // openssl rejects an issuer whose subjectKeyIdentifier differs from the leaf's authorityKeyIdentifier.
    assert.match(opensslVerify(odd.certPem, leaf.certPem, 'sslserver'), /: OK\n$/);
  });

  it('a CA without subjectKeyIdentifier: the key hash is used', () => {
    const bare = opensslCA('/CN=no-ski', { subjectKeyIdentifier: 'none' });
    assert.equal(extensionOf(opensslText(bare.certPem), 'Subject Key Identifier'), undefined);
    const leaf = createServingCertificate(bare, 'node-a', ['localhost']);
    assert.deepEqual(extensionOf(opensslText(leaf.certPem), 'Authority Key Identifier'), { critical: false, value: colonHex(sha1KeyId(bare.certPem)) });
    // Not -x509_strict: that wants a subjectKeyIdentifier in every CA certificate.
    assert.match(opensslVerify(bare.certPem, leaf.certPem, 'sslserver', false), /: OK\n$/);
  });

  it('refuses a CA key that cannot sign certificates here, or that is not the CA certificate\'s', () => {
    assert.throws(() => createServingCertificate(opensslCA('/CN=ed', { key: 'ed25519' }), 'n', ['localhost']), /cannot sign certificates with a ed25519 key/);
    const other = createCertificateAuthority('other');
    assert.throws(() => createServingCertificate({ certPem: ca.certPem, keyPem: other.keyPem }, 'n', ['localhost']), /CA key does not belong/);
  });

  it('prepareLocalCredentials keeps an RSA CA from an older install and re-issues the serving certificate from it', () => {
    const s = settings();
    const pki = join(s.stateDir, 'pki');
    mkdirSync(pki, { recursive: true, mode: 0o700 });
    const rsaCA = opensslCA('/CN=execlet-ca-node-a/O=execlet');
    writeFileSync(join(pki, 'ca.crt'), rsaCA.certPem);
    writeFileSync(join(pki, 'ca.key'), rsaCA.keyPem, { mode: 0o600 });
    const old = createServingCertificate(rsaCA, 'node-a', ['localhost']); // lacks names: re-issued
    writeFileSync(join(pki, 'serving.crt'), old.certPem);
    writeFileSync(join(pki, 'serving.key'), old.keyPem, { mode: 0o600 });

    const creds = prepareLocalCredentials(s);
    assert.equal(creds.caPem, rsaCA.certPem, 'the CA in existing kubeconfigs stays');
    assert.equal(readFileSync(join(pki, 'ca.key'), 'utf8'), rsaCA.keyPem);
    assert.notEqual(creds.certPem, old.certPem, 're-issued');
    assert.ok(signedBy(creds.certPem, rsaCA.certPem));
    assert.ok(certificateCovers(creds.certPem, ['127.0.0.1', '::1', 'localhost', 'node-a'], 30, rsaCA.certPem));
    assertP256(creds.certPem, creds.keyPem);
    assert.match(opensslVerify(rsaCA.certPem, creds.certPem, 'sslserver'), /: OK\n$/);
  });
});

interface ServerSide {
  authorized: boolean;
  authorizationError: string | undefined;
  subject: Record<string, string | string[]> | undefined;
}

interface Handshake {
  error?: NodeJS.ErrnoException;
  authorized?: boolean;
  peer?: tls.PeerCertificate;
  server?: ServerSide;
}

/**
 * One TLS connection: a server with `serverOptions` on `listenHost`, a client with `clientOptions`;
 * what each side saw of the other, or the client's error. Resolves once the server has closed.
 */
function handshake(serverOptions: tls.TlsOptions, listenHost: string, clientOptions: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let server: ServerSide | undefined;
    const tlsServer = tls.createServer(serverOptions, (socket) => {
      socket.on('error', () => {});
      const peer = socket.getPeerCertificate();
      server = {
        authorized: socket.authorized,
        authorizationError: socket.authorizationError === undefined || socket.authorizationError === null ? undefined : String(socket.authorizationError),
        subject: peer.subject ? { ...(peer.subject as unknown as Record<string, string | string[]>) } : undefined,
      };
      socket.end('hello');
    });
    tlsServer.on('tlsClientError', () => {}); // the client reports why it gave up
    tlsServer.once('error', reject);
    tlsServer.listen(0, listenHost, () => {
      const { port } = tlsServer.address() as AddressInfo;
      const client = tls.connect({ host: listenHost, port, ...clientOptions });
      let result: Handshake | undefined;
      const done = (outcome: Handshake): void => {
        if (result) return;
        result = outcome;
        client.destroy();
        tlsServer.close(() => resolve({ ...result!, server }));
      };
      client.on('error', (error) => done({ error }));
      client.on('secureConnect', () => {
        const peer = client.getPeerCertificate();
        client.once('data', () => done({ authorized: client.authorized, peer }));
      });
    });
  });
}

describe('self-signed certificates: TLS handshakes', () => {
  let client: KeyAndCert;

  before(() => {
    ca ??= createCertificateAuthority('execlet-ca-test');
    serving ??= createServingCertificate(ca, 'node-a', HOSTS);
    client = createClientCertificate(ca, 'alice', ['team-a', 'admins']);
  });

  it('a client trusting the CA connects to 127.0.0.1 and sees a P-256 certificate', async () => {
    const result = await handshake({ key: serving.keyPem, cert: serving.certPem }, '127.0.0.1', { ca: ca.certPem });
    assert.equal(result.error, undefined, result.error?.message);
    assert.equal(result.authorized, true);
    assert.equal(result.peer!.subject.CN, 'node-a');
    assert.equal((result.peer as tls.PeerCertificate & { asn1Curve?: string }).asn1Curve, 'prime256v1');
  });

  it('… and to localhost', async () => {
    const result = await handshake({ key: serving.keyPem, cert: serving.certPem }, '127.0.0.1', {
      ca: ca.certPem,
      host: 'localhost',
      // The server listens on 127.0.0.1: resolve localhost to that even where ::1 comes first.
      ...({ family: 4 } as tls.ConnectionOptions),
    });
    assert.equal(result.error, undefined, result.error?.message);
    assert.equal(result.authorized, true);
  });

  it('… and to [::1]', async (t) => {
    let result: Handshake;
    try {
      result = await handshake({ key: serving.keyPem, cert: serving.certPem }, '::1', { ca: ca.certPem });
    } catch (err) {
      t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
      return;
    }
    assert.equal(result.error, undefined, result.error?.message);
    assert.equal(result.authorized, true);
  });

  it('a name the certificate does not hold, or a client trusting another CA, is refused', async () => {
    const wrongName = await handshake({ key: serving.keyPem, cert: serving.certPem }, '127.0.0.1', { ca: ca.certPem, servername: 'node-b' });
    assert.equal(wrongName.error?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    const otherCA = await handshake({ key: serving.keyPem, cert: serving.certPem }, '127.0.0.1', { ca: createCertificateAuthority('other').certPem });
    assert.equal(otherCA.error?.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('an EC serving certificate from an RSA CA works in a handshake', async () => {
    const rsaCA = opensslCA('/CN=execlet-ca-legacy/O=execlet');
    const leaf = createServingCertificate(rsaCA, 'node-a', ['127.0.0.1']);
    const result = await handshake({ key: leaf.keyPem, cert: leaf.certPem }, '127.0.0.1', { ca: rsaCA.certPem });
    assert.equal(result.error, undefined, result.error?.message);
    assert.equal(result.authorized, true);
  });

  it('mTLS: the server accepts a client certificate from the CA and reads CN and the O list in order', async () => {
    const mtls = { key: serving.keyPem, cert: serving.certPem, requestCert: true, rejectUnauthorized: false, ca: ca.certPem };
    const result = await handshake(mtls, '127.0.0.1', { ca: ca.certPem, key: client.keyPem, cert: client.certPem });
    assert.equal(result.error, undefined, result.error?.message);
    assert.deepEqual(result.server, { authorized: true, authorizationError: undefined, subject: { CN: 'alice', O: ['team-a', 'admins'] } });
  });

  it('mTLS: a client certificate from another CA is not authorized', async () => {
    const foreign = createClientCertificate(createCertificateAuthority('someone-elses-ca'), 'mallory', ['admins']);
    const mtls = { key: serving.keyPem, cert: serving.certPem, requestCert: true, rejectUnauthorized: false, ca: ca.certPem };
    const result = await handshake(mtls, '127.0.0.1', { ca: ca.certPem, key: foreign.keyPem, cert: foreign.certPem });
    assert.equal(result.error, undefined, result.error?.message);
    assert.equal(result.server?.authorized, false);
    assert.match(result.server?.authorizationError ?? '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify/i);
  });
});

describe('loopback and client hosts', () => {
  it('isLoopbackHost', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopbackHost(host), true, host);
    for (const host of ['0.0.0.0', '::', '', '10.0.0.1', '128.0.0.1', 'localhost.example', '127.0.0.1.evil', '::ffff:127.0.0.1x']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  it('localClientHost maps wildcards to 127.0.0.1 and keeps everything else', () => {
    assert.equal(localClientHost('0.0.0.0'), '127.0.0.1');
    assert.equal(localClientHost('::'), '127.0.0.1');
    assert.equal(localClientHost(''), '127.0.0.1');
    assert.equal(localClientHost('::1'), '::1');
    assert.equal(localClientHost('10.0.0.1'), '10.0.0.1');
  });
});

describe('prepareLocalCredentials: generated identity', () => {
  let s: Settings;
  let first: LocalCredentials;

  before(() => {
    s = settings();
    first = prepareLocalCredentials(s);
  });

  it('creates the CA, serving certificate, keys and token in the state dir', () => {
    for (const file of ['pki/ca.crt', 'pki/ca.key', 'pki/serving.crt', 'pki/serving.key', 'token']) {
      assert.ok(existsSync(join(s.stateDir, file)), file);
    }
    assert.equal(readFileSync(join(s.stateDir, 'pki/ca.crt'), 'utf8'), first.caPem);
    assert.equal(readFileSync(join(s.stateDir, 'pki/serving.crt'), 'utf8'), first.certPem);
    assert.equal(readFileSync(join(s.stateDir, 'pki/serving.key'), 'utf8'), first.keyPem);
    assert.equal(readFileSync(join(s.stateDir, 'token'), 'utf8'), `${first.token}\n`);
  });

  it('keys and token are private (0600), directories 0700, no temp files left', () => {
    for (const file of ['pki/ca.key', 'pki/serving.key', 'token']) assert.equal(modeOf(join(s.stateDir, file)), 0o600, file);
    assert.equal(modeOf(s.stateDir), 0o700);
    assert.equal(modeOf(join(s.stateDir, 'pki')), 0o700);
    for (const dir of [s.stateDir, join(s.stateDir, 'pki')]) {
      for (const name of readdirSync(dir)) assert.ok(!name.includes('.tmp-'), `temp file ${name} left in ${dir}`);
    }
  });

  it('the serving certificate is signed by the returned CA, matches its key and names the node', () => {
    assert.ok(first.caPem);
    assert.ok(signedBy(first.certPem, first.caPem!));
    assert.ok(keyMatches(first.certPem, first.keyPem));
    assert.ok(certificateCovers(first.certPem, ['127.0.0.1', '::1', 'localhost', 'node-a']));
  });

  it('the token is long and URL-safe', () => {
    assert.ok(first.token.length >= 40, first.token);
    assert.match(first.token, /^[A-Za-z0-9_-]+$/);
  });

  it('a second call reuses everything: same CA, same serving certificate, same token', () => {
    const second = prepareLocalCredentials(s);
    assert.equal(second.caPem, first.caPem);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.equal(second.token, first.token);
  });

  it('a new node name re-issues the serving certificate from the same CA', () => {
    const renamed = prepareLocalCredentials({ ...s, nodeName: 'node-b' });
    assert.equal(renamed.caPem, first.caPem);
    assert.notEqual(renamed.certPem, first.certPem);
    assert.ok(signedBy(renamed.certPem, first.caPem!));
    assert.ok(keyMatches(renamed.certPem, renamed.keyPem));
    assert.ok(certificateCovers(renamed.certPem, ['node-b', 'localhost', '127.0.0.1', '::1']));
    assert.equal(renamed.token, first.token);
    assert.equal(readFileSync(join(s.stateDir, 'pki/serving.crt'), 'utf8'), renamed.certPem, 'written back');
    assert.equal(modeOf(join(s.stateDir, 'pki/serving.key')), 0o600);
  });

  it('a specific (non-wildcard) listen host is added to the certificate', () => {
    const other = prepareLocalCredentials({ ...s, listen: '127.0.0.2:10350' });
    assert.ok(certificateCovers(other.certPem, ['127.0.0.2']));
    assert.equal(other.caPem, first.caPem);
  });

  it('a state token that is too short is replaced', () => {
    writeFileSync(join(s.stateDir, 'token'), 'short\n');
    const again = prepareLocalCredentials(s);
    assert.notEqual(again.token, 'short');
    assert.ok(again.token.length >= 16);
    assert.equal(readFileSync(join(s.stateDir, 'token'), 'utf8'), `${again.token}\n`);
  });
});

describe('prepareLocalCredentials: CA rotation', () => {
  it(
    'after the CA key is removed, the serving certificate is re-issued by the new CA',

    () => {
      const s = settings();
      const before = prepareLocalCredentials(s);
      unlinkSync(join(s.stateDir, 'pki/ca.key'));
      const after = prepareLocalCredentials(s);
      assert.notEqual(after.caPem, before.caPem, 'a new CA was made');
      assert.ok(signedBy(after.certPem, after.caPem!), 'the serving certificate verifies against the CA put in the kubeconfig');
    },
  );
});

describe('prepareLocalCredentials: refusals', () => {
  it('refuses a wildcard or network listen with the generated certificate', () => {
    for (const listen of ['0.0.0.0:10350', '[::]:10350', '10.1.2.3:10350']) {
      credentialsError(() => prepareLocalCredentials(settings({ listen })), `refusing to listen on ${listen}`, '--insecure-self-signed-on-network', '--tls-cert-file');
    }
  });

  it('a refusal writes nothing to the state dir', () => {
    const s = settings({ listen: '0.0.0.0:10350' });
    credentialsError(() => prepareLocalCredentials(s), 'refusing');
    assert.equal(existsSync(s.stateDir), false);
  });

  it('accepts loopback listens: 127.x, [::1], localhost', () => {
    for (const listen of ['127.0.0.1:0', '[::1]:10350', 'localhost:10350']) {
      const s = settings({ listen });
      assert.ok(prepareLocalCredentials(s).caPem, listen);
    }
  });

  it('accepts a network listen with insecureSelfSignedOnNetwork, naming the listen host in the certificate', () => {
    const wildcard = prepareLocalCredentials(settings({ listen: '0.0.0.0:10350', insecureSelfSignedOnNetwork: true }));
    assert.ok(certificateCovers(wildcard.certPem, ['127.0.0.1', 'node-a']));
    const specific = prepareLocalCredentials(settings({ listen: '10.1.2.3:10350', insecureSelfSignedOnNetwork: true }));
    assert.ok(certificateCovers(specific.certPem, ['10.1.2.3', '127.0.0.1']));
  });

  it('refuses certFile without keyFile and keyFile without certFile', () => {
    credentialsError(() => prepareLocalCredentials(settings({ tls: { certFile: '/c.pem' } })), 'tls.certFile and tls.keyFile must be set together');
    credentialsError(() => prepareLocalCredentials(settings({ tls: { keyFile: '/k.pem' } })), 'must be set together');
    // Checked before the listen address: the operator learns about the real mistake.
    credentialsError(() => prepareLocalCredentials(settings({ listen: '0.0.0.0:1', tls: { certFile: '/c.pem' } })), 'must be set together');
  });
});

describe('prepareLocalCredentials: configured TLS files', () => {
  it('uses the given certificate and key on any listen address, with no CA and no pki dir', () => {
    const s = settings({ listen: '0.0.0.0:10350' });
    const certFile = join(root, `cert-${dirCount}.pem`);
    const keyFile = join(root, `key-${dirCount}.pem`);
    const own = createServingCertificate(createCertificateAuthority('operator-ca'), 'node-a', ['node-a']);
    writeFileSync(certFile, own.certPem);
    writeFileSync(keyFile, own.keyPem);
    const creds = prepareLocalCredentials({ ...s, tls: { certFile, keyFile } });
    assert.equal(creds.certPem, own.certPem);
    assert.equal(creds.keyPem, own.keyPem);
    assert.equal(creds.caPem, null);
    assert.equal(existsSync(join(s.stateDir, 'pki')), false);
  });

  it('an unreadable certificate file is refused, naming it', () => {
    const certFile = join(root, 'missing-cert.pem');
    credentialsError(() => prepareLocalCredentials(settings({ tls: { certFile, keyFile: certFile } })), `cannot read TLS certificate ${certFile}`);
  });
});

describe('prepareLocalCredentials: the local token', () => {
  it('is generated once in the state dir, even when a token file of other users is configured', () => {
    const path = join(root, `token-${++dirCount}`);
    writeFileSync(path, 'someone-elses-token alice team-a\n');
    const s = settings({ tokenFile: path });
    const first = prepareLocalCredentials(s);
    assert.notEqual(first.token, 'someone-elses-token');
    assert.equal(readFileSync(join(s.stateDir, 'token'), 'utf8').trim(), first.token);
    assert.equal(prepareLocalCredentials(s).token, first.token, 'reused on the next start');
  });
});

describe('writeLocalKubeconfig', () => {
  interface Kubeconfig {
    clusters: Array<{ name: string; cluster: { server: string; 'certificate-authority-data'?: string } }>;
    users: Array<{ name: string; user: { token: unknown } }>;
    contexts: Array<{ name: string; context: { cluster: string; user: string; namespace: string } }>;
    'current-context': string;
  }

  function write(listen: string, port: number, creds?: Partial<LocalCredentials>): { kubeconfig: Kubeconfig; path: string; serverUrl: string; s: Settings } {
    const s = settings({ listen });
    mkdirSync(s.stateDir, { recursive: true }); // prepareLocalCredentials makes it in real use
    const full: LocalCredentials = { keyPem: 'KEY', certPem: 'CERT', caPem: ca.certPem, generatedCA: null, token: 'tok-123456789abcdef', ...creds };
    const { path, serverUrl } = writeLocalKubeconfig(s, full, port);
    return { kubeconfig: parseYaml(readFileSync(path, 'utf8')) as Kubeconfig, path, serverUrl, s };
  }

  it('points a wildcard listen at 127.0.0.1 and the bound port', () => {
    for (const listen of ['0.0.0.0:0', '[::]:0']) {
      const { kubeconfig, serverUrl } = write(listen, 43210);
      assert.equal(serverUrl, 'https://127.0.0.1:43210');
      assert.equal(kubeconfig.clusters[0]!.cluster.server, 'https://127.0.0.1:43210');
    }
  });

  it('keeps a specific host, bracketing IPv6', () => {
    assert.equal(write('[::1]:10350', 10350).serverUrl, 'https://[::1]:10350');
    assert.equal(write('localhost:8443', 8443).serverUrl, 'https://localhost:8443');
  });

  it('holds the CA data, the token and a current context, in a private file in the state dir', () => {
    const { kubeconfig, path, s } = write('127.0.0.1:10350', 10350);
    assert.equal(path, join(s.stateDir, 'kubeconfig'));
    assert.equal(modeOf(path), 0o600);
    const cluster = kubeconfig.clusters[0]!;
    assert.equal(Buffer.from(cluster.cluster['certificate-authority-data']!, 'base64').toString(), ca.certPem);
    assert.equal(kubeconfig.users[0]!.user.token, 'tok-123456789abcdef');
    const context = kubeconfig.contexts.find((c) => c.name === kubeconfig['current-context']);
    assert.ok(context, 'the current context exists');
    assert.equal(context!.context.cluster, cluster.name);
    assert.equal(context!.context.user, kubeconfig.users[0]!.name);
    assert.equal(context!.context.namespace, 'docker');
  });

  it('a node name YAML would misread names the current context exactly', () => {
    const s = { ...settings({ listen: '127.0.0.1:10350' }), nodeName: 'node: "a" #1' };
    mkdirSync(s.stateDir, { recursive: true });
    const { path } = writeLocalKubeconfig(s, { caPem: null, token: 'tok-123456789abcdef' }, 10350);
    const kubeconfig = parseYaml(readFileSync(path, 'utf8')) as Kubeconfig;
    assert.equal(kubeconfig['current-context'], 'execlet@node: "a" #1');
    assert.deepEqual(kubeconfig.contexts.map((c) => c.name), ['execlet@node: "a" #1']);
  });

  it('without an agent CA (operator TLS) there is no certificate-authority-data', () => {
    const { kubeconfig } = write('127.0.0.1:10350', 10350, { caPem: null });
    assert.equal(kubeconfig.clusters[0]!.cluster['certificate-authority-data'], undefined);
    assert.equal(kubeconfig.clusters[0]!.cluster.server, 'https://127.0.0.1:10350');
  });

  it('works end to end with prepared credentials', () => {
    const s = settings();
    const creds = prepareLocalCredentials(s);
    const { path } = writeLocalKubeconfig(s, creds, 10350);
    const kubeconfig = parseYaml(readFileSync(path, 'utf8')) as Kubeconfig;
    assert.equal(kubeconfig.users[0]!.user.token, creds.token);
    const caPem = Buffer.from(kubeconfig.clusters[0]!.cluster['certificate-authority-data']!, 'base64').toString();
    assert.ok(signedBy(creds.certPem, caPem));
  });

  it(
    'an operator token that YAML would read as another type or syntax stays the same string',

    () => {
      for (const token of ['1234567890123456789', 'null', 'true', '*starts-with-star', '@starts-with-at', "'quoted'", 'a: b', 'double "quote" and \\ backslash', '# not a comment', 'tab\there']) {
        const { kubeconfig } = write('127.0.0.1:10350', 10350, { token });
        assert.equal(kubeconfig.users[0]!.user.token, token, token);
      }
    },
  );
});
