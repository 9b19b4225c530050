// Files that cannot be watched — a node out of inotify instances, where fs.watch fails with EMFILE —
// do not stop the agent: it serves, says that the token file and the TLS files are not watched, and
// SIGHUP still reloads them. The agent runs as a child process whose fs.watch always fails (a
// preload replaces it before the agent's modules load).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { AGENT_MAIN } from '../helpers/agent.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { waitUntil } from '../helpers/proc-scan.js';

const FAILING_WATCH = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
fs.watch = () => {
  const err = new Error('EMFILE: too many open files, watch');
  err.code = 'EMFILE';
  throw err;
};
syncBuiltinESMExports();
`;

const OLD_TOKEN = 'token-old-0123456789abcdef';
const NEW_TOKEN = 'token-new-0123456789abcdef';

const ca = createCertificateAuthority('unwatchable files test CA');
const serving = createServingCertificate(ca, 'execlet', ['127.0.0.1']);
let docker: TestDocker;
let dir: string;
let tokenFile: string;
let agent: ChildProcess;
let output = '';
let port: number;

/** The HTTP status of an authenticated request with `token`. */
function statusWith(token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/api/v1/namespaces/default/pods', ca: ca.certPem, agent: false, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-unwatchable-'));
  const preload = join(dir, 'failing-watch.mjs');
  writeFileSync(preload, FAILING_WATCH);
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem, { mode: 0o600 });
  tokenFile = join(dir, 'tokens');
  writeFileSync(tokenFile, `${OLD_TOKEN} alice\n`, { mode: 0o600 });
  agent = spawn(
    process.execPath,
    [
      AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state'), '--docker-host', docker.host, '--node-name', 'test-node',
      '--tls-cert-file', join(dir, 'tls.crt'), '--tls-key-file', join(dir, 'tls.key'), '--token-file', tokenFile,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` } },
  );
  agent.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  agent.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exitedEarly = once(agent, 'exit').then(([code, signal]) => {
    throw new Error(`the agent exited (code ${String(code)}, signal ${String(signal)}) before serving:\n${output}`);
  });
  exitedEarly.catch(() => undefined); // a later exit (after() stops it) is not a failure
  // pino writes its lines asynchronously: its own "execlet is serving" comes after both warnings.
  const servingNow = waitUntil(() => /execlet: serving https:\/\/127\.0\.0\.1:\d+/.test(output) && output.includes('execlet is serving'), 20_000, 'the agent serving');
  servingNow.catch(() => undefined); // when the agent exits first, that is the failure reported
  await Promise.race([servingNow, exitedEarly]);
  port = Number(/execlet: serving https:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1]);
});

after(async () => {
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    const exited = once(agent, 'exit');
    agent.kill('SIGTERM');
    const timer = setTimeout(() => agent.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the agent serves though neither its token file nor its TLS files can be watched, and says so', () => {
  assert.match(output, /the token file is not watched for changes; SIGHUP reloads it/);
  assert.match(output, /the TLS files are not watched for changes; SIGHUP reloads them/);
  assert.match(output, /EMFILE/);
});

test('SIGHUP reloads the unwatched files: a token added to the token file authenticates, the TLS files are re-read', async () => {
  assert.equal(await statusWith(NEW_TOKEN), 401, 'a token not in the file yet');
  assert.notEqual(await statusWith(OLD_TOKEN), 401, 'a token in the file');
  writeFileSync(tokenFile, `${OLD_TOKEN} alice\n${NEW_TOKEN} bob\n`, { mode: 0o600 });
  const count = (pattern: RegExp) => (output.match(pattern) ?? []).length;
  const [tokenReloads, tlsReloads] = [count(/token file reloaded/g), count(/"why":"SIGHUP"[^\n]*TLS certificate and key reloaded/g)];
  agent.kill('SIGHUP');
  // Logged once the reload is done; a request the agent reads after that sees the new file.
  await waitUntil(() => count(/token file reloaded/g) > tokenReloads, 5000, 'the agent reloading the token file on SIGHUP');
  assert.notEqual(await statusWith(NEW_TOKEN), 401);
  await waitUntil(() => count(/"why":"SIGHUP"[^\n]*TLS certificate and key reloaded/g) > tlsReloads, 5000, 'the agent reloading the TLS files on SIGHUP');
});
