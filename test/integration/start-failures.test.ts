// An agent that cannot start exits 2 with its reason, naming the file and the setting, instead of a
// stack trace (exit 1) or running on half started: the local kubeconfig cannot be written
// (STATE/kubeconfig is a directory; found only after the listener, the engine's event stream and
// the orphan sweep have started), a TLS key that is not the certificate's, a token file or policy
// that does not load, a state dir that cannot be made, an audit log that cannot be opened while
// audit.failClosed is on.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AGENT_MAIN, startAgent } from '../helpers/agent.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { runCommand } from '../helpers/run-command.js';

let docker: TestDocker;
let dir: string;

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-start-failures-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a kubeconfig that cannot be written: exit 2 naming the file, and nothing left running', async () => {
  const state = join(dir, 'state');
  mkdirSync(join(state, 'kubeconfig'), { recursive: true });
  const result = await runCommand(process.execPath, [AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', state, '--docker-host', docker.host], {
    timeoutMs: 20_000,
  });
  assert.equal(result.code, 2, result.stderr.toString());
  assert.match(result.stderr.toString(), /cannot write the local kubeconfig .*\/state\/kubeconfig: .*--state-dir/);
  assert.ok(existsSync(join(state, 'kubeconfig')));
  assert.deepEqual(readdirSync(state).filter((name) => name.includes('.tmp-')), [], 'no temporary file left in the state dir');
});

/** `execlet serve` on loopback with a state dir of its own and `args`; its exit code and stderr. */
async function serve(name: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const result = await runCommand(process.execPath, [AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', join(dir, `state-${name}`), '--docker-host', docker.host, ...args], {
    timeoutMs: 20_000,
  });
  return { code: result.code, stderr: result.stderr.toString() };
}

test('start-up inputs that cannot work: exit 2, naming the file and the setting, never a stack trace', async () => {
  const ca = createCertificateAuthority('start failures CA');
  const one = createServingCertificate(ca, 'execlet', ['127.0.0.1']);
  const other = createServingCertificate(ca, 'execlet', ['127.0.0.1']);
  writeFileSync(join(dir, 'tls.crt'), one.certPem);
  writeFileSync(join(dir, 'other.key'), other.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'tokens'), 'only-one-field\n', { mode: 0o600 });
  writeFileSync(join(dir, 'policy.yaml'), 'rules: [{ modes: [exec] }]\n');
  mkdirSync(join(dir, 'a-directory'));
  const cases: Array<{ name: string; args: string[]; says: RegExp }> = [
    { name: 'tls', args: ['--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'other.key')], says: /the TLS key .*other\.key does not fit the certificate .*tls\.crt/ },
    { name: 'tokens', args: ['--token-file', join(dir, 'tokens')], says: /tokens.*line 1[^]*\(setting tokenFile, --token-file\)/ },
    { name: 'no-tokens', args: ['--token-file', join(dir, 'missing-tokens')], says: /missing-tokens[^]*\(setting tokenFile, --token-file\)/ },
    { name: 'policy', args: ['--policy-file', join(dir, 'policy.yaml')], says: /policy .*policy\.yaml[^]*subjects[^]*\(setting policyFile, --policy-file\)/ },
    { name: 'audit', args: ['--audit-file', join(dir, 'a-directory'), '--audit-fail-closed'], says: /cannot open the audit log .*a-directory: .*--audit-fail-closed[^]*\(setting audit\.file, --audit-file\)/ },
  ];
  for (const { name, args, says } of cases) {
    const { code, stderr } = await serve(name, args);
    assert.equal(code, 2, `${name}: ${stderr}`);
    assert.match(stderr, says, name);
    assert.doesNotMatch(stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  const stateDir = await runCommand(process.execPath, [AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', '/dev/null/state', '--docker-host', docker.host], { timeoutMs: 20_000 });
  assert.equal(stateDir.code, 2, stateDir.stderr.toString());
  assert.match(stateDir.stderr.toString(), /cannot create the state dir \/dev\/null\/state \(setting stateDir, --state-dir\)/);
});

test('generated TLS files that no longer parse (a disk that filled up mid-write) are made anew, and the agent serves', async () => {
  const state = join(dir, 'state-broken-pki');
  const first = await startAgent(docker, { stateDir: state });
  await first.stop();
  // Half a CA certificate, and a serving key that is not a key.
  const caCert = readFileSync(join(state, 'pki', 'ca.crt'), 'utf8');
  writeFileSync(join(state, 'pki', 'ca.crt'), caCert.slice(0, caCert.length / 2));
  writeFileSync(join(state, 'pki', 'serving.key'), 'not a key\n', { mode: 0o600 });
  const second = await startAgent(docker, { stateDir: state });
  try {
    assert.notEqual(second.caPem, caCert, 'a new CA');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: second.port, path: '/healthz', ca: second.caPem }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200, 'served with a certificate the new CA (in the kubeconfig) verifies');
    assert.ok(readFileSync(second.kubeconfig, 'utf8').includes(Buffer.from(second.caPem).toString('base64')), 'the kubeconfig holds the new CA');
  } finally {
    await second.stop();
  }
});
