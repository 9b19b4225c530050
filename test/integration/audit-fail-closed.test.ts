// When the audit log cannot be written — here /dev/full, which opens but refuses every write (a
// full disk) — the failure is counted, and with audit.failClosed the session is refused before its
// process starts; without it the session runs. (A file that cannot even be opened stops a
// fail-closed agent at start-up: start-failures.test.ts.)
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startAgent, type Agent } from '../../src/cli/agent.js';
import { defaultSettings } from '../../src/config/settings.js';
import { registry } from '../../src/metrics.js';
import { dockerClient, podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

let docker: TestDocker;
let dir: string;
let container: TestContainer;
const agents: Agent[] = [];

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-audit-'));
  container = await startContainer(docker, { labels: podLabels('default', 'audited', 'app') });
});

after(async () => {
  for (const agent of agents) await agent.close();
  await container?.remove();
  await docker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function agentWith(failClosed: boolean, name: string): Promise<{ port: number; token: string; ca: string }> {
  const stateDir = join(dir, name);
  const agent = await startAgent({
    ...defaultSettings(),
    listen: '127.0.0.1:0',
    dockerHost: docker.host,
    stateDir,
    nodeName: name,
    logLevel: 'silent',
    audit: { ...defaultSettings().audit, file: '/dev/full', failClosed },
  });
  agents.push(agent);
  return {
    port: Number(new URL(agent.kubeconfig.serverUrl).port),
    token: readFileSync(join(stateDir, 'token'), 'utf8').trim(),
    ca: readFileSync(join(stateDir, 'pki', 'ca.crt'), 'utf8'),
  };
}

/** The session's output and final Status: over the WebSocket, or as the HTTP refusal of the upgrade (`httpCode`). */
function run(target: { port: number; token: string; ca: string }, command: string[]): Promise<{ stdout: string; status: { status: string; message?: string }; httpCode?: number }> {
  const query = `${command.map((c) => `command=${encodeURIComponent(c)}`).join('&')}&container=app&stdout=true`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${target.port}/api/v1/namespaces/default/pods/audited/exec?${query}`, ['v5.channel.k8s.io'], {
      ca: target.ca,
      headers: { authorization: `Bearer ${target.token}` },
    });
    let stdout = '';
    let status = '';
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) stdout += data.subarray(1).toString();
      if (data[0] === 3) status += data.subarray(1).toString();
    });
    ws.on('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ stdout, status: JSON.parse(body), httpCode: response.statusCode! }));
    });
    ws.on('close', () => resolve({ stdout, status: JSON.parse(status) }));
    ws.on('error', reject);
  });
}

async function auditFailures(): Promise<number> {
  const metric = await registry.getSingleMetric('execlet_audit_write_failures_total')!.get();
  return metric.values.reduce((sum, v) => sum + v.value, 0);
}

test('fail closed: the session is refused before the upgrade (500) and no process starts', async () => {
  const target = await agentWith(true, 'closed');
  const execsBefore = (await dockerClient(docker).getContainer(container.id).inspect()).ExecIDs ?? [];
  const failuresBefore = await auditFailures();
  const r = await run(target, ['echo', 'should-not-run']);
  assert.equal(r.httpCode, 500);
  assert.equal(r.stdout, '');
  assert.equal(r.status.status, 'Failure');
  assert.equal(r.status.message, 'the session was refused: its audit record could not be written');
  assert.deepEqual((await dockerClient(docker).getContainer(container.id).inspect()).ExecIDs ?? [], execsBefore);
  assert.ok((await auditFailures()) > failuresBefore, 'the failure is counted');
});

test('fail open (the default): the session runs, the failure is counted', async () => {
  const target = await agentWith(false, 'open');
  const failuresBefore = await auditFailures();
  const r = await run(target, ['echo', 'runs-anyway']);
  assert.equal(r.stdout, 'runs-anyway\n');
  assert.equal(r.status.status, 'Success');
  assert.equal(r.httpCode, undefined, 'over the WebSocket');
  assert.ok((await auditFailures()) >= failuresBefore + 2, 'start and end records both failed and were counted');
});
