// Without a policy file, every authenticated caller may exec, but the privileged modes — nsenter, its
// toolbox view and node shells, root outside the container's cgroup — are the local token's alone:
// a token-file user (or a client certificate) needs a policy that grants them. Nor may they exec into
// the agent's own container, whose files hold the local token. Against an agent in this process, with
// the nsenter modes enabled, a real engine and two containers, one of them playing the agent's own
// (the agent is given that container's mount namespace as its own, as if it ran there).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DockerBackend } from '../../src/backend/docker.js';
import { startAgent as startInProcessAgent, type Agent } from '../../src/cli/agent.js';
import { defaultSettings } from '../../src/config/settings.js';
import { TargetResolver } from '../../src/target/resolve.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { runExec } from '../helpers/exec-client.js';

const BOB = 'bob-token-no-policy-0123456789';

let docker: TestDocker;
let dir: string;
let agent: Agent;
let container: TestContainer;
let agentsOwn: TestContainer;
let address: { port: number; token: string; caPem: string };

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-no-policy-'));
  writeFileSync(join(dir, 'tokens'), `${BOB} bob admins\n`, { mode: 0o600 });
  container = await startContainer(docker, { labels: podLabels('default', 'web', 'app') });
  agentsOwn = await startContainer(docker, { labels: podLabels('kube-system', 'execlet-x1', 'agent') });
  agent = await startInProcessAgent({
    ...defaultSettings(),
    listen: '127.0.0.1:0',
    dockerHost: docker.host,
    stateDir: join(dir, 'state'),
    nodeName: 'no-policy-node',
    tokenFile: join(dir, 'tokens'),
    nsenter: 'enabled',
    logLevel: 'silent',
  }, { agentMountNamespace: readlinkSync(`/proc/${agentsOwn.hostPid}/ns/mnt`) });
  address = {
    port: Number(new URL(agent.kubeconfig.serverUrl).port),
    token: readFileSync(join(dir, 'state', 'token'), 'utf8').trim(),
    caPem: readFileSync(join(dir, 'state', 'pki', 'ca.crt'), 'utf8'),
  };
});

after(async () => {
  await container?.remove();
  await agentsOwn?.remove();
  await agent?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The HTTP status and Status body of a refused exec, or null when it ran. */
async function refusal(token: string, containerName: string, pod = 'web', namespace = 'default'): Promise<{ statusCode: number; body: { reason: string; message: string } } | null> {
  try {
    await runExec(address, namespace, pod, { command: ['true'], container: containerName, stdout: true }, { token });
    return null;
  } catch (err) {
    const { statusCode, body } = err as { statusCode?: number; body?: string };
    if (statusCode === undefined) throw err;
    return { statusCode, body: JSON.parse(body!) as { reason: string; message: string } };
  }
}

function postSession(token: string, body: unknown): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: address.port, path: '/v1/sessions', method: 'POST', ca: address.caPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ statusCode: res.statusCode!, body: text }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function targetsOf(token: string): Promise<Array<{ namespace: string; pod: string; modes: string[] }>> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: address.port, path: '/v1/targets', ca: address.caPem, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve((JSON.parse(text) as { targets: Array<{ namespace: string; pod: string; modes: string[] }> }).targets));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a token-file user may exec, but not nsenter, toolbox or a node shell: 403 saying a policy is needed', async () => {
  assert.equal(await refusal(BOB, 'app'), null);
  for (const containerName of ['app.nsenter', 'app.toolbox']) {
    const refused = await refusal(BOB, containerName);
    assert.equal(refused?.statusCode, 403, containerName);
    assert.equal(refused?.body.reason, 'Forbidden');
    assert.match(refused?.body.message ?? '', /user "bob" may not use the nsenter mode .*: without a policy \(policyFile, --policy-file\) only the local token may/);
  }
  let node: unknown;
  try {
    await runExec(address, 'execlet-node', 'no-policy-node', { command: ['true'], stdout: true }, { token: BOB });
  } catch (err) {
    node = err;
  }
  assert.equal((node as { statusCode?: number } | undefined)?.statusCode, 403);
});

test('the local token may use every mode', async () => {
  assert.equal(await refusal(address.token, 'app'), null);
  assert.equal(await refusal(address.token, 'app.nsenter'), null);
  assert.equal(await refusal(address.token, 'app.toolbox'), null);
});

test('GET /v1/targets offers a token-file user exec only, and no node', async () => {
  const bob = await targetsOf(BOB);
  assert.deepEqual(bob.find((t) => t.pod === 'web')?.modes, ['exec']);
  assert.equal(bob.find((t) => t.namespace === 'execlet-node'), undefined);
  const local = await targetsOf(address.token);
  assert.deepEqual(local.find((t) => t.pod === 'web')?.modes.sort(), ['exec', 'nsenter', 'toolbox'].sort());
  assert.ok(local.find((t) => t.namespace === 'execlet-node'));
});

test("a token-file user may not exec into the agent's own container; the local token may", async () => {
  const refused = await refusal(BOB, 'agent', 'execlet-x1', 'kube-system');
  assert.equal(refused?.statusCode, 403);
  assert.equal(refused?.body.reason, 'Forbidden');
  assert.match(refused?.body.message ?? '', /user "bob" may not exec into .*it is the agent's own container, which holds the local token; without a policy \(policyFile, --policy-file\) only the local token may/);
  const audited = readFileSync(join(dir, 'state', 'audit.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { event: string; identity?: { user: string }; target?: { pod: string } });
  assert.ok(audited.some((r) => r.event === 'access.denied' && r.identity?.user === 'bob' && r.target?.pod === 'execlet-x1'), 'the refusal is audited');
  assert.equal(await refusal(address.token, 'agent', 'execlet-x1', 'kube-system'), null);
  // The same container reached by its id through the JSON session API is refused alike.
  const session = await postSession(BOB, { target: { container: agentsOwn.id }, mode: 'exec', command: ['true'] });
  assert.equal(session.statusCode, 403);
  assert.match(session.body, /agent's own container/);
  // Known now, it is not offered to bob; the local token still sees it.
  assert.equal((await targetsOf(BOB)).find((t) => t.pod === 'execlet-x1'), undefined);
  assert.deepEqual((await targetsOf(address.token)).find((t) => t.pod === 'execlet-x1')?.modes.sort(), ['exec', 'nsenter', 'toolbox']);
});

test("the agent's own container is found from its engine shim: the one whose init is the agent's topmost ancestor in its mount namespace", async () => {
  const backend = new DockerBackend({ dockerHost: docker.host, killGraceMs: 1000 });
  try {
    const resolver = new TargetResolver(backend, { nodeName: 'n', nsenterEnabled: false, agentMountNamespace: readlinkSync(`/proc/${agentsOwn.hostPid}/ns/mnt`) });
    // As if the agent were the container's init (sleep): its parent is the engine's shim.
    assert.equal(await resolver.findAgentContainer(agentsOwn.hostPid), agentsOwn.id);
    assert.equal(resolver.isKnownAgentContainer(agentsOwn.id), true);
    assert.equal(resolver.isKnownAgentContainer(container.id), false);
    // Seen from a process that is not in that mount namespace, nothing is found.
    const elsewhere = new TargetResolver(backend, { nodeName: 'n', nsenterEnabled: false, agentMountNamespace: readlinkSync(`/proc/${agentsOwn.hostPid}/ns/mnt`) });
    assert.equal(await elsewhere.findAgentContainer(process.pid), null);
  } finally {
    backend.close();
  }
});
