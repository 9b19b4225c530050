// Unit tests for the agent's own TLS identity and token (src/auth/self-signed.ts,
// src/auth/local-credentials.ts): the CA and serving certificate as node:crypto sees them, files and
// modes in a temp state dir, reuse and re-issue, refusals, token files, and the local kubeconfig.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

import {
  CredentialsError,
  localClientHost,
  prepareLocalCredentials,
  writeLocalKubeconfig,
  type LocalCredentials,
} from '../../src/auth/local-credentials.js';
import { certificateCovers, createCertificateAuthority, createServingCertificate, type KeyAndCert } from '../../src/auth/self-signed.js';
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

// RSA key generation is slow-ish: share one CA and serving certificate across the first tests.
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
    const full: LocalCredentials = { keyPem: 'KEY', certPem: 'CERT', caPem: ca.certPem, token: 'tok-123456789abcdef', ...creds };
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
      for (const token of ['1234567890123456789', 'null', 'true', '*starts-with-star', '@starts-with-at', "'quoted'", 'a: b']) {
        const { kubeconfig } = write('127.0.0.1:10350', 10350, { token });
        assert.equal(kubeconfig.users[0]!.user.token, token, token);
      }
    },
  );
});
