// The operator's serving certificate and key are re-read without a restart: when the files are
// replaced (a rename over them, as cert-manager and editors do) and on SIGHUP (agent.reload()).
// New connections get the new certificate, with the agent's cipher order; an open connection goes
// on; files that do not fit together — a key not the certificate's, an empty key, a client CA file
// without a certificate, a certificate already expired — leave the previous material in force,
// counted and logged.
// The agent runs in this process, so the test can call its SIGHUP handler and read its metrics.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tls from 'node:tls';
import { startAgent, type Agent } from '../../src/cli/agent.js';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { defaultSettings } from '../../src/config/settings.js';
import { registry } from '../../src/metrics.js';
import { AGENT_MAIN } from '../helpers/agent.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { runCommand } from '../helpers/run-command.js';
import { waitUntil } from '../helpers/proc-scan.js';

const ca = createCertificateAuthority('reload test CA');
// Different lifetimes, so the expiry gauge tells them apart.
const [first, second, third] = [365, 200, 100].map((days, i) => createServingCertificate(ca, `execlet-${i}`, ['127.0.0.1'], days)) as [
  ReturnType<typeof createServingCertificate>,
  ReturnType<typeof createServingCertificate>,
  ReturnType<typeof createServingCertificate>,
];
const fingerprint = (certPem: string) => new X509Certificate(certPem).fingerprint256;

let docker: TestDocker;
let agent: Agent;
let dir: string;
let port: number;
let certFile: string;
let keyFile: string;
let clientCAFile: string;
const clientCA = createCertificateAuthority('reload test client CA');

/** Replaces a file the way an editor or a tool does: a new file renamed over it. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.new`, text, { mode: 0o600 });
  renameSync(`${path}.new`, path);
}

/** What a new connection is served: the certificate's fingerprint and the cipher. */
async function served(): Promise<{ fingerprint: string; cipher: string }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem });
  try {
    await once(socket, 'secureConnect');
    return { fingerprint: socket.getPeerCertificate().fingerprint256, cipher: socket.getCipher().name };
  } finally {
    socket.destroy();
  }
}

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await registry.getSingleMetric(name)!.get();
  const values = metric.values as Array<{ value: number; labels: Record<string, string | number> }>;
  return values.find((v) => Object.entries(labels).every(([key, value]) => v.labels[key] === value))?.value ?? 0;
}

/** One HTTP request on an already open TLS connection: the status line. */
async function statusLineOn(socket: tls.TLSSocket): Promise<string> {
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('latin1').split('\r\n')[0]!;
}

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-tls-reload-'));
  mkdirSync(join(dir, 'tls'));
  certFile = join(dir, 'tls', 'tls.crt');
  keyFile = join(dir, 'tls', 'tls.key');
  writeFileSync(certFile, first.certPem);
  writeFileSync(keyFile, first.keyPem, { mode: 0o600 });
  clientCAFile = join(dir, 'tls', 'client-ca.crt');
  writeFileSync(clientCAFile, clientCA.certPem);
  const settings = defaultSettings();
  agent = await startAgent({
    ...settings,
    listen: '127.0.0.1:0',
    dockerHost: docker.host,
    stateDir: join(dir, 'state'),
    nodeName: 'tls-reload',
    logLevel: 'silent',
    tls: { ...settings.tls, certFile, keyFile, clientCAFile },
  });
  port = Number(new URL(agent.kubeconfig.serverUrl).port);
});

after(async () => {
  await agent?.close();
  await docker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('replaced files reach new connections, an open one goes on, a mismatch keeps the last good pair, SIGHUP re-reads', async (t) => {
  assert.equal((await served()).fingerprint, fingerprint(first.certPem));
  assert.equal(await metricValue('execlet_serving_certificate_expiry_timestamp_seconds'), Date.parse(new X509Certificate(first.certPem).validTo) / 1000);
  const open = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem });
  t.after(() => open.destroy()); // even when an assertion fails first: the agent's close() waits for it
  await once(open, 'secureConnect');
  const successes = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' });

  // Replaced: the key first, then the certificate (a moment where they do not match is tolerated).
  replace(keyFile, second.keyPem);
  replace(certFile, second.certPem);
  await waitUntil(async () => (await served()).fingerprint === fingerprint(second.certPem), 5000, 'the second certificate served');
  assert.equal((await served()).cipher, 'TLS_AES_128_GCM_SHA256', "the agent's cipher order holds after a reload");
  assert.ok((await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' })) > successes);
  assert.equal(await metricValue('execlet_serving_certificate_expiry_timestamp_seconds'), Date.parse(new X509Certificate(second.certPem).validTo) / 1000);
  assert.equal(open.getPeerCertificate().fingerprint256, fingerprint(first.certPem));
  assert.equal(await statusLineOn(open), 'HTTP/1.1 200 OK', 'the connection opened before the reload still serves');
  open.destroy();

  // Refused, counted, and the second pair stays: an empty key, a client CA file without a
  // certificate (Node.js would trust its default roots without one), a key not the certificate's.
  // Each is put right again before the next, so each is refused for its own fault.
  for (const [file, broken, good, what] of [
    [keyFile, '', second.keyPem, 'an empty key'],
    [clientCAFile, '', clientCA.certPem, 'an empty client CA file'],
    [clientCAFile, clientCA.keyPem, clientCA.certPem, 'a client CA file holding a key'],
  ] as const) {
    const failuresBefore = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' });
    replace(file, broken);
    await waitUntil(async () => (await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' })) > failuresBefore, 5000, `${what} refused`);
    assert.equal((await served()).fingerprint, fingerprint(second.certPem), `after ${what}`);
    const successesBefore = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' });
    replace(file, good);
    await waitUntil(async () => (await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' })) > successesBefore, 5000, `${what} put right`);
  }
  // A certificate that has expired already (with its own key): refused, and put right.
  const expired = createServingCertificate(ca, 'execlet-expired', ['127.0.0.1'], -0.001);
  const failuresBeforeExpired = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' });
  replace(keyFile, expired.keyPem);
  replace(certFile, expired.certPem);
  await waitUntil(async () => (await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' })) > failuresBeforeExpired, 5000, 'the expired certificate refused');
  assert.equal((await served()).fingerprint, fingerprint(second.certPem));
  const successesBeforeRestore = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' });
  replace(keyFile, second.keyPem);
  replace(certFile, second.certPem);
  await waitUntil(async () => (await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' })) > successesBeforeRestore, 5000, 'the second pair back');

  const failuresBefore = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' });
  replace(keyFile, third.keyPem);
  await waitUntil(async () => (await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' })) > failuresBefore, 5000, "a key not the certificate's refused");
  assert.equal((await served()).fingerprint, fingerprint(second.certPem));

  // SIGHUP re-reads the files whether or not a change was seen.
  const failuresAfterWatch = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' });
  agent.reload();
  assert.equal(await metricValue('execlet_serving_tls_reloads_total', { outcome: 'failure' }), failuresAfterWatch + 1);
  replace(certFile, third.certPem);
  await waitUntil(async () => (await served()).fingerprint === fingerprint(third.certPem), 5000, 'the third certificate served');
  const successesAfterWatch = await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' });
  agent.reload();
  assert.equal(await metricValue('execlet_serving_tls_reloads_total', { outcome: 'success' }), successesAfterWatch + 1);
  assert.equal((await served()).fingerprint, fingerprint(third.certPem));
});

test('an agent that cannot listen exits with its reason, though it has TLS and token files to watch', async () => {
  // The busy port is the in-process agent's own. Watchers set up before a failed listen kept such an
  // agent running with nothing served.
  const tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, 'token-0123456789abcdef alice\n', { mode: 0o600 });
  const result = await runCommand(
    process.execPath,
    [AGENT_MAIN, 'serve', '--listen', `127.0.0.1:${port}`, '--state-dir', join(dir, 'busy-state'), '--docker-host', docker.host, '--tls-cert-file', certFile, '--tls-key-file', keyFile, '--token-file', tokenFile],
    { timeoutMs: 20_000 },
  );
  assert.equal(result.code, 2, result.stderr.toString());
  assert.match(result.stderr.toString(), /cannot listen on 127\.0\.0\.1:\d+: the address is already in use/);
});

test('a generated serving certificate near its end is renewed while the agent runs, from the same CA', async () => {
  // A second agent, with generated TLS material, checking every 50 ms and counting a year-long certificate as near its end.
  const settings = defaultSettings();
  const stateDir = join(dir, 'generated-state');
  const generated = await startAgent(
    { ...settings, listen: '127.0.0.1:0', dockerHost: docker.host, stateDir, nodeName: 'tls-renewal', logLevel: 'silent' },
    { generatedRenewal: { everyMs: 50, daysLeft: 400 } },
  );
  try {
    const generatedPort = Number(new URL(generated.kubeconfig.serverUrl).port);
    const caPem = readFileSync(join(stateDir, 'pki', 'ca.crt'), 'utf8');
    const servedNow = async () => {
      const socket = tls.connect({ host: '127.0.0.1', port: generatedPort, ca: caPem });
      try {
        await once(socket, 'secureConnect'); // verified against the kubeconfig's CA
        return socket.getPeerCertificate().fingerprint256;
      } finally {
        socket.destroy();
      }
    };
    const initial = await servedNow();
    // A new certificate is served, and it verifies against the CA the kubeconfig already holds.
    await waitUntil(async () => (await servedNow()) !== initial, 10_000, 'a renewed certificate to be served');
    // The PKI files go away (a wiped or restored state dir) while the agent runs: renewals go on
    // from the CA it started with, and no other CA is made, which would fail every kubeconfig.
    rmSync(join(stateDir, 'pki'), { recursive: true, force: true });
    const afterRemoval = await servedNow();
    await waitUntil(async () => (await servedNow()) !== afterRemoval, 10_000, 'a certificate renewed after the PKI files went away');
    assert.equal(existsSync(join(stateDir, 'pki', 'ca.crt')), false, 'no CA made while the agent runs');
    assert.ok(existsSync(join(stateDir, 'pki', 'serving.crt')), 'the renewed certificate is written for the next start');
    // A state dir that cannot be written (here STATE/pki is a file): renewed certificates are served all the same.
    rmSync(join(stateDir, 'pki'), { recursive: true, force: true });
    writeFileSync(join(stateDir, 'pki'), 'not a directory');
    const unwritable = await servedNow();
    await waitUntil(async () => (await servedNow()) !== unwritable, 10_000, 'a certificate renewed while the state dir cannot be written');
  } finally {
    await generated.close();
  }
});
