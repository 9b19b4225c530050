// Makes the agent usable and safe out of the box: a TLS identity (configured, or a self-signed CA
// and serving certificate created once in the state dir), a bearer token, and a kubeconfig for them.
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { makeDirectories } from '../make-directories.js';
import { isLoopbackHost, splitListen, type Settings } from '../config/settings.js';
import { certificateCovers, createCertificateAuthority, createServingCertificate, type KeyAndCert } from './self-signed.js';

export interface LocalCredentials {
  keyPem: string;
  certPem: string;
  /** PEM of the CA that signed the serving certificate, when the agent made it (goes in the kubeconfig). */
  caPem: string | null;
  /** That CA with its key, to renew the serving certificate from while the agent runs; null with an operator's certificate. */
  generatedCA: KeyAndCert | null;
  token: string;
}

export interface LocalKubeconfig {
  path: string;
  /** https URL a client on this machine uses. */
  serverUrl: string;
}

export class CredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialsError';
  }
}

/** Writes a secret file atomically with mode 0600. */
/** Writes a whole file or nothing (a new file renamed over it): a full disk never leaves half a PEM. */
function writePrivate(path: string, content: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, content, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the error that matters is the one that stopped the write
    }
    throw err;
  }
}

/** Whether the certificate and key parse and belong together. */
function isKeyPair({ certPem, keyPem }: KeyAndCert): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new CredentialsError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** The host name clients on this machine use to reach the listener. */
export function localClientHost(listenHost: string): string {
  if (isWildcardHost(listenHost)) return '127.0.0.1';
  return listenHost;
}

/** A host as a URL holds it: an IPv6 address in brackets. */
export function formatHostForUrl(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** A generated serving certificate with fewer days left than this is issued anew (at start-up, and daily). */
export const RENEW_WITH_DAYS_LEFT = 30;

/** The names a generated serving certificate holds: loopback, the node's name, the listen address. */
function servingHosts(settings: Settings, listenHost: string): string[] {
  const hosts = ['127.0.0.1', '::1', 'localhost', settings.nodeName];
  if (!isWildcardHost(listenHost)) hosts.push(listenHost);
  return hosts;
}

function loadOrCreateSelfSigned(settings: Settings, listenHost: string): { serving: KeyAndCert; ca: KeyAndCert } {
  const pkiDir = join(settings.stateDir, 'pki');
  makeDirectories(pkiDir, 0o700);
  const caCertPath = join(pkiDir, 'ca.crt');
  const caKeyPath = join(pkiDir, 'ca.key');
  const certPath = join(pkiDir, 'serving.crt');
  const keyPath = join(pkiDir, 'serving.key');

  // A CA (or a serving pair) that does not parse, or whose key is not its certificate's (a disk
  // that filled up mid-write, a hand edit), is made anew rather than stopping every start: the
  // kubeconfig, written at each start, then holds the new CA.
  let ca: KeyAndCert | null = null;
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    const existing = { certPem: readText(caCertPath, 'CA certificate'), keyPem: readText(caKeyPath, 'CA key') };
    if (isKeyPair(existing)) ca = existing;
  }
  if (!ca) {
    ca = createCertificateAuthority(`execlet-ca-${settings.nodeName}`);
    writePrivate(caKeyPath, ca.keyPem);
    writePrivate(caCertPath, ca.certPem, 0o644);
  }

  const hosts = servingHosts(settings, listenHost);
  let serving: KeyAndCert | null = null;
  if (existsSync(certPath) && existsSync(keyPath)) {
    const existing = { certPem: readText(certPath, 'serving certificate'), keyPem: readText(keyPath, 'serving key') };
    if (isKeyPair(existing) && certificateCovers(existing.certPem, hosts, RENEW_WITH_DAYS_LEFT, ca.certPem)) serving = existing;
  }
  if (!serving) {
    // Re-issued from the same CA when missing, broken, expiring, or lacking a name: kubeconfigs stay valid.
    serving = createServingCertificate(ca, settings.nodeName, hosts);
    saveGeneratedServing(settings, serving);
  }
  return { serving, ca };
}

/** The agent's own token (STATE/token): the local operator's credential, written into the kubeconfig. */
function loadOrCreateToken(settings: Settings): string {
  const tokenPath = join(settings.stateDir, 'token');
  if (existsSync(tokenPath)) {
    const token = readText(tokenPath, 'token file').trim();
    if (token.length >= 16) return token;
  }
  const token = randomBytes(32).toString('base64url');
  writePrivate(tokenPath, `${token}\n`);
  return token;
}

/**
 * The kubeconfig, written out directly (loading a YAML library at every start for it would cost the
 * agent memory): every variable value is a double-quoted scalar, which JSON's string syntax is.
 */
function kubeconfigText(serverUrl: string, caPem: string | null, token: string, nodeName: string): string {
  const quote = (value: string) => JSON.stringify(value);
  const context = quote(`execlet@${nodeName}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: execlet',
    '    cluster:',
    `      server: ${quote(serverUrl)}`,
    ...(caPem ? [`      certificate-authority-data: ${quote(Buffer.from(caPem).toString('base64'))}`] : []),
    'users:',
    '  - name: execlet',
    '    user:',
    `      token: ${quote(token)}`,
    'contexts:',
    `  - name: ${context}`,
    '    context:',
    '      cluster: execlet',
    '      user: execlet',
    '      namespace: docker',
    `current-context: ${context}`,
    '',
  ].join('\n');
}

/**
 * Prepares TLS material and the token, refusing a network-facing listener that would only have the
 * generated self-signed certificate unless the operator explicitly allowed it.
 */
export function prepareLocalCredentials(settings: Settings): LocalCredentials {
  const { host: listenHost } = splitListen(settings.listen);
  const { certFile, keyFile } = settings.tls;
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new CredentialsError('tls.certFile and tls.keyFile must be set together (--tls-cert-file, --tls-key-file)');
  }
  if (!certFile && !isLoopbackHost(listenHost) && !settings.insecureSelfSignedOnNetwork) {
    throw new CredentialsError(
      `refusing to listen on ${settings.listen} with a generated self-signed certificate: ` +
        'set tls.certFile/tls.keyFile (--tls-cert-file, --tls-key-file), listen on loopback, ' +
        'or pass --insecure-self-signed-on-network',
    );
  }
  try {
    makeDirectories(settings.stateDir, 0o700);
  } catch (err) {
    throw new CredentialsError(`cannot create the state dir ${settings.stateDir} (setting stateDir, --state-dir): ${(err as Error).message}`);
  }

  let keyPem: string;
  let certPem: string;
  let generatedCA: KeyAndCert | null;
  if (certFile && keyFile) {
    certPem = readText(certFile, 'TLS certificate');
    keyPem = readText(keyFile, 'TLS key');
    generatedCA = null;
  } else {
    const { serving, ca } = loadOrCreateSelfSigned(settings, listenHost);
    ({ keyPem, certPem } = serving);
    generatedCA = ca;
  }
  return { keyPem, certPem, caPem: generatedCA?.certPem ?? null, generatedCA, token: loadOrCreateToken(settings) };
}

/**
 * The generated serving certificate as it should be now: `current` itself while it has more than
 * `minDaysLeft` days left, else a new one from the agent's CA (the one it started with, whatever
 * STATE/pki holds now: kubeconfigs hold that CA). For an agent that runs longer than its
 * certificate's year. A CA is never made here: one made while the agent runs would fail every
 * kubeconfig written before.
 */
export function renewGeneratedServing<Current extends KeyAndCert>(settings: Settings, ca: KeyAndCert, current: Current, minDaysLeft = RENEW_WITH_DAYS_LEFT): Current | KeyAndCert {
  const hosts = servingHosts(settings, splitListen(settings.listen).host);
  if (certificateCovers(current.certPem, hosts, minDaysLeft, ca.certPem)) return current;
  return createServingCertificate(ca, settings.nodeName, hosts);
}

/** Writes a renewed serving certificate and key to STATE/pki, where the next start finds them. */
export function saveGeneratedServing(settings: Settings, serving: KeyAndCert): void {
  const pkiDir = join(settings.stateDir, 'pki');
  makeDirectories(pkiDir, 0o700);
  writePrivate(join(pkiDir, 'serving.key'), serving.keyPem);
  writePrivate(join(pkiDir, 'serving.crt'), serving.certPem, 0o644);
}

/** Writes `STATE/kubeconfig` for the listener's actual port (which may have been chosen by the kernel). */
export function writeLocalKubeconfig(settings: Settings, credentials: Pick<LocalCredentials, 'caPem' | 'token'>, boundPort: number): LocalKubeconfig {
  const { host: listenHost } = splitListen(settings.listen);
  const serverUrl = `https://${formatHostForUrl(localClientHost(listenHost))}:${boundPort}`;
  const path = join(settings.stateDir, 'kubeconfig');
  try {
    writePrivate(path, kubeconfigText(serverUrl, credentials.caPem, credentials.token, settings.nodeName));
  } catch (err) {
    throw new CredentialsError(`cannot write the local kubeconfig ${path}: ${(err as Error).message} (setting stateDir, --state-dir)`);
  }
  return { path, serverUrl };
}
