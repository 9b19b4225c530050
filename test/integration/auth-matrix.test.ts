// Who may exec where, against a running agent (in-process, real TLS, real engine) with a policy for
// two teams, a token file, client certificates and a controllable clock: every cell of the matrix
// has the right code and reason, refused attempts start no process, and the audit log has a record
// for each attempt and never a token.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { stringify as toYaml } from 'yaml';
import { startAgent as startInProcessAgent, type Agent } from '../../src/cli/agent.js';
import { createCertificateAuthority, createClientCertificate, type KeyAndCert } from '../../src/auth/self-signed.js';
import { defaultSettings, type Settings } from '../../src/config/settings.js';
import { registry } from '../../src/metrics.js';
import { MAX_ARGUMENT_BYTES } from '../../src/server/exec-query.js';
import { dockerClient, podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';
import { runCommand } from '../helpers/run-command.js';

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';
const TOKENS = { alice: 'alice-token-0123456789abcdef', bob: 'bob-token-0123456789abcdef', carol: 'carol-token-0123456789abcdef' };
/** Ten more users of team-a, to fill the agent's 1000 outstanding stream URLs at 100 (each one's share) apiece. */
const FILLERS = Array.from({ length: 10 }, (_, i) => ({ user: `filler-${i}`, token: `filler-${i}-token-0123456789abcdef` }));
const POLICY = `
rules:
  - name: team-a
    subjects: { groups: [team-a] }
    modes: [exec]
    targets: [{ namespace: team-a }]
  - name: team-b
    subjects: { groups: [team-b] }
    modes: [exec]
    targets: [{ namespace: team-b }]
    commands: [[sh, "**"], [cat, "**"], [echo, "**"], [id]]
  - name: admins
    subjects: { groups: [admins] }
    modes: [exec, nsenter, node]
    targets: [{ namespace: "team-*", pod: "*", container: "*" }]
`;

let docker: TestDocker;
let agent: Agent;
let dir: string;
let port: number;
let serverCA: string;
let localToken: string;
let clientCA: KeyAndCert;
let foreignCA: KeyAndCert;
let now = Date.now();
const containers: TestContainer[] = [];
let teamA: TestContainer;
let teamB: TestContainer;

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-auth-'));
  clientCA = createCertificateAuthority('test-client-ca');
  foreignCA = createCertificateAuthority('someone-elses-ca');
  writeFileSync(join(dir, 'client-ca.crt'), clientCA.certPem);
  const fillers = FILLERS.map((f) => `${f.token} ${f.user} team-a\n`).join('');
  writeFileSync(join(dir, 'tokens'), `# test users\n${TOKENS.alice} alice team-a\n${TOKENS.bob} bob team-b\n${TOKENS.carol} carol admins,team-a\n${fillers}`);
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  teamA = await startContainer(docker, { labels: podLabels('team-a', 'web', 'app') });
  teamB = await startContainer(docker, { labels: podLabels('team-b', 'api', 'main') });
  containers.push(teamA, teamB);
  const settings: Settings = {
    ...defaultSettings(),
    listen: '127.0.0.1:0',
    dockerHost: docker.host,
    stateDir: join(dir, 'state'),
    nodeName: 'auth-node',
    tls: { clientCAFile: join(dir, 'client-ca.crt') },
    tokenFile: join(dir, 'tokens'),
    policyFile: join(dir, 'policy.yaml'),
    nsenter: 'enabled',
    allowedOrigins: ['https://console.example'],
    logLevel: 'silent',
    // The outstanding-URL cap is under test here, not the per-user start rate.
    sessions: { ...defaultSettings().sessions, ratePerUserPerMinute: 100_000 },
  };
  agent = await startInProcessAgent(settings, { clock: { now: () => now } });
  port = Number(new URL(agent.kubeconfig.serverUrl).port);
  serverCA = readFileSync(join(dir, 'state', 'pki', 'ca.crt'), 'utf8');
  localToken = readFileSync(join(dir, 'state', 'token'), 'utf8').trim();
});

after(async () => {
  for (const c of containers) await c.remove();
  await agent?.close();
  await docker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Credentials {
  token?: string;
  cert?: KeyAndCert;
  origin?: string;
  /** The Host header, when not the address connected to. */
  host?: string;
}

interface Reply {
  status: number;
  body: { reason?: string; message?: string; code?: number; [key: string]: unknown };
}

function call(method: string, path: string, credentials: Credentials, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // A Buffer is sent as it is (bytes JSON.stringify would not write).
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca: serverCA,
        // A Host header of another name: the certificate is still checked, for a name it holds.
        ...(credentials.host ? { servername: 'localhost' } : {}),
        ...(credentials.cert ? { cert: credentials.cert.certPem, key: credentials.cert.keyPem } : {}),
        headers: {
          ...(credentials.token ? { authorization: `Bearer ${credentials.token}` } : {}),
          ...(credentials.host ? { host: credentials.host } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Opens an exec-like WebSocket; resolves with the collected result or with the refusal. */
function stream(path: string, credentials: Credentials): Promise<{ refused: Reply } | { stdout: string; status: { status: string; reason?: string; message?: string } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, ['v5.channel.k8s.io'], {
      ca: serverCA,
      ...(credentials.cert ? { cert: credentials.cert.certPem, key: credentials.cert.keyPem } : {}),
      headers: {
        ...(credentials.token ? { authorization: `Bearer ${credentials.token}` } : {}),
        ...(credentials.origin ? { origin: credentials.origin } : {}),
      },
    });
    let stdout = '';
    let status = '';
    ws.on('message', (data: Buffer) => {
      if (data[0] === 1) stdout += data.subarray(1).toString();
      if (data[0] === 3) status += data.subarray(1).toString();
    });
    ws.on('close', () => resolve({ stdout, status: JSON.parse(status || '{}') }));
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ refused: { status: res.statusCode!, body: JSON.parse(text) } }));
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

const execPath = (namespace: string, pod: string, container: string, command: string[], extra = '') =>
  `/api/v1/namespaces/${namespace}/pods/${pod}/exec?${command.map((c) => `command=${encodeURIComponent(c)}`).join('&')}&container=${container}&stdout=true&stderr=true${extra}`;

async function execIds(container: TestContainer): Promise<string[]> {
  return ((await dockerClient(docker).getContainer(container.id).inspect()).ExecIDs ?? []).slice().sort();
}

/** Asserts a refusal with the code and reason, and that no exec was created in either container. */
async function assertRefused(attempt: () => Promise<unknown>, code: number, reason: string, message: RegExp): Promise<void> {
  const before = [await execIds(teamA), await execIds(teamB)];
  const outcome = (await attempt()) as { refused?: Reply } & Reply;
  const reply = outcome.refused ?? outcome;
  assert.equal(reply.status, code, JSON.stringify(reply.body));
  assert.equal(reply.body.reason, reason);
  assert.match(reply.body.message ?? '', message);
  assert.deepEqual([await execIds(teamA), await execIds(teamB)], before, 'no process was started');
}

function auditRecords(): Array<Record<string, unknown>> {
  return readFileSync(join(dir, 'state', 'audit.log'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('authentication', () => {
  test('no credentials: 401', async () => {
    await assertRefused(() => stream(execPath('team-a', 'web', 'app', ['id']), {}), 401, 'Unauthorized', /bearer token or client certificate is required/);
  });

  test('a wrong token: 401', async () => {
    await assertRefused(() => stream(execPath('team-a', 'web', 'app', ['id']), { token: 'not-a-token-of-anyone' }), 401, 'Unauthorized', /valid bearer token/);
  });

  test('a client certificate from a foreign CA: 401', async () => {
    const forged = createClientCertificate(foreignCA, 'mallory', ['admins']);
    await assertRefused(() => stream(execPath('team-a', 'web', 'app', ['id']), { cert: forged }), 401, 'Unauthorized', /not signed by a trusted CA/);
  });

  test("a client certificate naming the local token's identity: 401", async () => {
    for (const [user, groups] of [['execlet:local', []], ['mallory', ['execlet:local']]] as const) {
      const impostor = createClientCertificate(clientCA, user, [...groups]);
      await assertRefused(() => stream(execPath('team-a', 'web', 'app', ['id']), { cert: impostor }), 401, 'Unauthorized', /names execlet:local, which only the agent's local token may/);
    }
  });

  test('a valid client certificate: user from CN, groups from O', async () => {
    const dave = createClientCertificate(clientCA, 'dave', ['team-b']);
    const r = await stream(execPath('team-b', 'api', 'main', ['echo', 'hello-dave']), { cert: dave });
    assert.ok('stdout' in r, JSON.stringify(r));
    assert.equal(r.stdout, 'hello-dave\n');
    assert.equal(r.status.status, 'Success');
    const refused = await stream(execPath('team-a', 'web', 'app', ['id']), { cert: dave });
    assert.ok('refused' in refused && refused.refused.status === 403);
  });

  test('kubectl with a client certificate in its kubeconfig', async () => {
    const erin = createClientCertificate(clientCA, 'erin', ['team-a']);
    const kubeconfig = join(dir, 'erin.kubeconfig');
    writeFileSync(
      kubeconfig,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'node', cluster: { server: agent.kubeconfig.serverUrl, 'certificate-authority-data': Buffer.from(serverCA).toString('base64') } }],
        users: [{ name: 'erin', user: { 'client-certificate-data': Buffer.from(erin.certPem).toString('base64'), 'client-key-data': Buffer.from(erin.keyPem).toString('base64') } }],
        contexts: [{ name: 'erin', context: { cluster: 'node', user: 'erin' } }],
        'current-context': 'erin',
      }),
    );
    const r = await runCommand(KUBECTL, ['exec', '-n', 'team-a', 'web', '-c', 'app', '--', 'sh', '-c', 'echo via-mtls; exit 4'], { env: { KUBECONFIG: kubeconfig, HOME: dir } });
    assert.equal(r.stdout.toString(), 'via-mtls\n');
    assert.equal(r.code, 4);
    const denied = await runCommand(KUBECTL, ['exec', '-n', 'team-b', 'api', '-c', 'main', '--', 'id'], { env: { KUBECONFIG: kubeconfig, HOME: dir } });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr.toString(), /Forbidden.*user "erin" may not exec into team-b\/api\/main/);
  });
});

describe('authorization', () => {
  test("team A's token on team B's pod: 403 naming what was denied", async () => {
    await assertRefused(() => stream(execPath('team-b', 'api', 'main', ['id']), { token: TOKENS.alice }), 403, 'Forbidden', /^user "alice" may not exec into team-b\/api\/main$/);
  });

  test('nsenter, toolbox and node by a user granted only exec: 403', async () => {
    await assertRefused(() => stream(execPath('team-a', 'web', 'app.nsenter', ['id']), { token: TOKENS.alice }), 403, 'Forbidden', /may not use the nsenter mode/);
    await assertRefused(() => stream(execPath('team-a', 'web', 'app.toolbox', ['id']), { token: TOKENS.alice }), 403, 'Forbidden', /may not use the nsenter mode/);
    await assertRefused(
      () => stream('/api/v1/namespaces/execlet-node/pods/auth-node/exec?command=id&stdout=true', { token: TOKENS.alice }),
      403,
      'Forbidden',
      /may not use the node mode on node auth-node/,
    );
  });

  test('an admin gets nsenter', async () => {
    const r = await stream(execPath('team-a', 'web', 'app.nsenter', ['echo', 'admin-ok']), { token: TOKENS.carol });
    assert.ok('stdout' in r && r.stdout === 'admin-ok\n', JSON.stringify(r));
  });

  test('a command outside the allowlist: 403', async () => {
    await assertRefused(() => stream(execPath('team-b', 'api', 'main', ['rm', '-rf', '/tmp/x']), { token: TOKENS.bob }), 403, 'Forbidden', /may not run "rm" in team-b\/api\/main \(command not allowed\)/);
    const allowed = await stream(execPath('team-b', 'api', 'main', ['echo', 'listed']), { token: TOKENS.bob });
    assert.ok('stdout' in allowed && allowed.stdout === 'listed\n');
  });

  test('the local token is its own identity, and the policy grants it nothing here', async () => {
    await assertRefused(() => stream(execPath('team-a', 'web', 'app', ['id']), { token: localToken }), 403, 'Forbidden', /user "execlet:local" may not/);
  });

  test('GET /v1/targets lists what each caller may reach, with modes', async () => {
    const alice = await call('GET', '/v1/targets', { token: TOKENS.alice });
    assert.deepEqual(
      (alice.body.targets as Array<{ namespace: string; pod: string; modes: string[] }>).map((t) => `${t.namespace}/${t.pod}:${t.modes.join('+')}`),
      ['team-a/web:exec'],
    );
    const carol = await call('GET', '/v1/targets', { token: TOKENS.carol });
    const seen = (carol.body.targets as Array<{ namespace: string; pod: string; modes: string[] }>).map((t) => `${t.namespace}/${t.pod}:${t.modes.join('+')}`);
    assert.deepEqual(seen, ['team-a/web:exec+nsenter+toolbox', 'team-b/api:exec+nsenter+toolbox', 'execlet-node/auth-node:node']);
  });
});

describe('single-use stream URLs', () => {
  const body = { target: { namespace: 'team-a', pod: 'web', container: 'app' }, command: ['echo', 'from-a-url'] };

  async function issue(token: string, request: unknown = body): Promise<Reply> {
    return call('POST', '/v1/sessions', { token }, request);
  }

  test("the URL names the host the caller used, a Docker name with its port included, else the address it came in on", async () => {
    for (const [host, expected] of [
      ['execlet_agent:10350', 'execlet_agent:10350'],
      ['node-7.example:8443', 'node-7.example:8443'],
      ['[::1]:10350', '[::1]:10350'],
      ['evil.example/x?', `127.0.0.1:${port}`],
    ] as const) {
      const issued = await call('POST', '/v1/sessions', { token: TOKENS.alice, host }, body);
      assert.equal(issued.status, 201, JSON.stringify(issued.body));
      assert.equal(new URL(issued.body.url as string).host, expected, host);
    }
  });

  test('a URL opens the stream with no other credential, once', async () => {
    const issued = await issue(TOKENS.alice);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const url = new URL(issued.body.url as string);
    assert.equal(url.protocol, 'wss:');
    assert.match(url.pathname, /^\/v1\/streams\/[A-Za-z0-9_-]{43}$/);
    assert.ok(Date.parse(issued.body.expiresAt as string) > now);
    const first = await stream(url.pathname, {});
    assert.ok('stdout' in first && first.stdout === 'from-a-url\n', JSON.stringify(first));
    await assertRefused(() => stream(url.pathname, {}), 404, 'NotFound', /unknown, already used, or expired/);
  });

  test('a GET that is not an upgrade is refused and leaves the URL unused', async () => {
    const issued = await issue(TOKENS.alice);
    const path = new URL(issued.body.url as string).pathname;
    const plain = await call('GET', path, {});
    assert.equal(plain.status, 400);
    assert.match(plain.body.message ?? '', /Upgrade request required/);
    const opened = await stream(path, {});
    assert.ok('stdout' in opened && opened.stdout === 'from-a-url\n', JSON.stringify(opened));
  });

  test('an expired URL: 404', async () => {
    const issued = await issue(TOKENS.alice);
    now += 61_000;
    await assertRefused(() => stream(new URL(issued.body.url as string).pathname, {}), 404, 'NotFound', /unknown, already used, or expired/);
  });

  test('an unknown URL: 404', async () => {
    await assertRefused(() => stream('/v1/streams/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', {}), 404, 'NotFound', /unknown, already used, or expired/);
  });

  test('a session request is authorized like a direct exec', async () => {
    const denied = await issue(TOKENS.alice, { ...body, target: { namespace: 'team-b', pod: 'api', container: 'main' } });
    assert.equal(denied.status, 403);
    assert.match(denied.body.message ?? '', /user "alice" may not exec into team-b\/api\/main/);
    const nsenter = await issue(TOKENS.alice, { ...body, mode: 'nsenter' });
    assert.equal(nsenter.status, 403);
    const byId = await issue(TOKENS.carol, { target: { container: teamB.id }, command: ['id'], mode: 'toolbox' });
    assert.equal(byId.status, 201, JSON.stringify(byId.body));
  });

  test('a malformed session request names the field; unknown fields are refused', async () => {
    const unknownField = await issue(TOKENS.alice, { ...body, shell: true });
    assert.equal(unknownField.status, 400);
    assert.match(unknownField.body.message ?? '', /unknown field shell/);
    const badTarget = await issue(TOKENS.alice, { ...body, target: { pod: 'web' } });
    assert.equal(badTarget.status, 400);
    assert.match(badTarget.body.message ?? '', /^invalid session request: target: expected one of/);
    const noCommand = await issue(TOKENS.alice, { ...body, command: [] });
    assert.match(noCommand.body.message ?? '', /command: must name the program to run/);
    // A policy sees ["grep", "root\0/etc/shadow"] as two arguments; a program would get three.
    const withNul = await issue(TOKENS.alice, { ...body, command: ['grep', 'root\u0000/etc/shadow'] });
    assert.equal(withNul.status, 400);
    assert.match(withNul.body.message ?? '', /command\.1: contains a NUL byte/);
    // Not text: a lone surrogate (sent as a \ud800 escape), or bytes that are not UTF-8. Before, the
    // program ran with U+FFFD in their place.
    const surrogate = await issue(TOKENS.alice, { ...body, command: ['echo', 'a\ud800b'] });
    assert.equal(surrogate.status, 400);
    assert.match(surrogate.body.message ?? '', /command\.1: holds a lone UTF-16 surrogate/);
    // 'café' in Latin-1: é is the one byte E9, which UTF-8 does not allow alone.
    const notUtf8 = await issue(TOKENS.alice, Buffer.from(JSON.stringify({ ...body, command: ['echo', 'café'] }), 'latin1'));
    assert.equal(notUtf8.status, 400);
    assert.match(notUtf8.body.message ?? '', /^the request body is not UTF-8 text, which JSON must be$/);
    // Longer than Linux runs a program with: refused before the audit and the policy work through it.
    const tooLong = await issue(TOKENS.alice, { ...body, command: ['echo', 'x'.repeat(MAX_ARGUMENT_BYTES + 1)] });
    assert.equal(tooLong.status, 400);
    assert.match(tooLong.body.message ?? '', /command\.1: is longer than 131071 bytes/);
    // Streams that do not fit together are refused, and audited like every other refusal.
    const ttyAndStderr = await issue(TOKENS.alice, { ...body, tty: true, stderr: true });
    assert.equal(ttyAndStderr.status, 400);
    assert.match(ttyAndStderr.body.message ?? '', /tty and stderr cannot both be true/);
    const noStreams = await issue(TOKENS.alice, { ...body, stdout: false, stderr: false });
    assert.equal(noStreams.status, 400);
    const refusals = auditRecords().filter((r) => r.event === 'access.denied' && r.code === 400).map((r) => r.message as string);
    assert.ok(refusals.some((m) => /tty and stderr cannot both be true/.test(m)), 'the tty-and-stderr refusal is audited');
    assert.ok(refusals.some((m) => /at least one of stdin, stdout, stderr is needed/.test(m)), 'the no-streams refusal is audited');
  });

  test('a URL whose access a policy reload revoked is refused when it is opened: 403', async () => {
    const issued = await issue(TOKENS.alice);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    writeFileSync(join(dir, 'policy.yaml'), POLICY.replace('targets: [{ namespace: team-a }]', 'targets: [{ namespace: team-c }]'));
    agent.reload();
    try {
      await assertRefused(() => stream(new URL(issued.body.url as string).pathname, {}), 403, 'Forbidden', /alice/);
    } finally {
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      agent.reload();
    }
    const denial = auditRecords().findLast((r) => r.event === 'access.denied');
    assert.equal((denial?.identity as { method?: string } | undefined)?.method, 'stream-token');
  });

  test('URLs asked for while no session ran cannot open more sessions than the limit allows: 429', async () => {
    // A rule allowing one session at a time; two URLs are issued while none is live.
    writeFileSync(join(dir, 'policy.yaml'), POLICY.replace('targets: [{ namespace: team-a }]', 'targets: [{ namespace: team-a }]\n    maxSessions: 1'));
    agent.reload();
    let first: WebSocket | undefined;
    try {
      // The second would end by itself if it were let through: refused, it starts nothing.
      const [one, two] = [await issue(TOKENS.alice, { ...body, command: ['sleep', '3100002'] }), await issue(TOKENS.alice)];
      assert.equal(one.status, 201, JSON.stringify(one.body));
      assert.equal(two.status, 201, JSON.stringify(two.body));
      first = new WebSocket(one.body.url as string, ['v5.channel.k8s.io'], { ca: serverCA });
      await waitUntil(() => pidsWithCommandLine('sleep 3100002').length === 1, 10_000, 'the first session to run');
      await assertRefused(() => stream(new URL(two.body.url as string).pathname, {}), 429, 'TooManyRequests', /already has 1 open sessions/);
      assert.equal(pidsWithCommandLine('sleep 3100002').length, 1);
    } finally {
      first?.close();
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      agent.reload();
    }
    await waitUntil(() => pidsWithCommandLine('sleep 3100002').length === 0, 5_000, 'the first session to end');
  });

  test('a URL whose token the token file no longer holds does not open: 401; one whose groups changed is judged by them: 403', async () => {
    const tokens = readFileSync(join(dir, 'tokens'), 'utf8');
    const removed = await issue(TOKENS.alice);
    const regrouped = await issue(TOKENS.alice);
    assert.equal(removed.status, 201, JSON.stringify(removed.body));
    assert.equal(regrouped.status, 201, JSON.stringify(regrouped.body));
    try {
      writeFileSync(join(dir, 'tokens'), tokens.replace(`${TOKENS.alice} alice team-a\n`, ''));
      agent.reload();
      await assertRefused(() => stream(new URL(removed.body.url as string).pathname, {}), 401, 'Unauthorized', /the token of user "alice" that asked for this stream URL is no longer accepted/);
      const denial = auditRecords().findLast((r) => r.event === 'access.denied');
      assert.equal(denial?.code, 401);
      assert.equal((denial?.identity as { method?: string } | undefined)?.method, 'stream-token');
      const aliceDigest = createHash('sha256').update(TOKENS.alice).digest('hex');
      const audited = readFileSync(join(dir, 'state', 'audit.log'), 'utf8');
      assert.ok(!audited.includes(TOKENS.alice) && !audited.includes(aliceDigest), 'the audit log holds neither the token nor its digest');
      // alice is in team-b now, whose rule does not reach team-a.
      writeFileSync(join(dir, 'tokens'), tokens.replace(`${TOKENS.alice} alice team-a\n`, `${TOKENS.alice} alice team-b\n`));
      agent.reload();
      await assertRefused(() => stream(new URL(regrouped.body.url as string).pathname, {}), 403, 'Forbidden', /user "alice" may not exec/);
    } finally {
      writeFileSync(join(dir, 'tokens'), tokens);
      agent.reload();
    }
  });

  /**
   * alice opens one session (`sleep MARKER`) under `before`, a policy whose rule allows her one;
   * the policy becomes `after`, and her next URL must be refused: the live session still counts.
   */
  async function secondSessionRefusedAfterReload(marker: string, before: string, after: string): Promise<void> {
    writeFileSync(join(dir, 'policy.yaml'), before);
    agent.reload();
    let first: WebSocket | undefined;
    try {
      const one = await issue(TOKENS.alice, { ...body, command: ['sleep', marker] });
      assert.equal(one.status, 201, JSON.stringify(one.body));
      first = new WebSocket(one.body.url as string, ['v5.channel.k8s.io'], { ca: serverCA });
      await waitUntil(() => pidsWithCommandLine(`sleep ${marker}`).length === 1, 10_000, 'the first session to run');
      writeFileSync(join(dir, 'policy.yaml'), after);
      agent.reload();
      assert.equal(pidsWithCommandLine(`sleep ${marker}`).length, 1, 'the live session goes on');
      const two = await issue(TOKENS.alice);
      assert.equal(two.status, 429, JSON.stringify(two.body));
      assert.match(String(two.body.message), /already has 1 open sessions/);
    } finally {
      first?.close();
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      agent.reload();
    }
    await waitUntil(() => pidsWithCommandLine(`sleep ${marker}`).length === 0, 5_000, 'the first session to end');
  }

  test('a reload that moves an unnamed rule gives nobody a fresh session budget: 429', async () => {
    const alices = '  - subjects: { users: [alice] }\n    modes: [exec]\n    targets: [{ namespace: team-a }]\n    maxSessions: 1\n';
    // Another unnamed rule above it: alice's rule is rules[1] now, and the same rule all the same.
    await secondSessionRefusedAfterReload('3100003', `rules:\n${alices}`, `rules:\n  - subjects: { users: [bob] }\n    modes: [exec]\n${alices}`);
  });

  test('a reload that changes the rule of a live session counts that session in the changed rule: 429', async () => {
    const alices = (targets: string) => `rules:\n  - subjects: { users: [alice] }\n    modes: [exec]\n    targets: ${targets}\n    maxSessions: 1\n`;
    // The rule now grants more: another rule, which still allows the live session, and counts it.
    await secondSessionRefusedAfterReload('3100004', alices('[{ namespace: team-a }]'), alices('[{ namespace: team-a }, { namespace: team-b }]'));
  });

  test("a user's 101st outstanding URL (its share: --max-sessions-per-user) is refused with 429 naming it; another user's is not", async () => {
    now += 120_000; // let earlier URLs expire
    for (let i = 0; i < 100; i++) assert.equal((await issue(TOKENS.alice)).status, 201, `URL ${i + 1}`);
    const refused = await issue(TOKENS.alice);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.reason, 'TooManyRequests');
    assert.match(refused.body.message ?? '', /^user "alice" already holds 100 stream URLs not yet opened, the limit \(--max-sessions-per-user\)/);
    assert.equal(auditRecords().at(-1)?.code, 429, 'the refusal is audited');
    assert.equal((await issue(TOKENS.carol)).status, 201, 'another user is not locked out');
    now += 61_000;
    assert.equal((await issue(TOKENS.alice)).status, 201, 'expired URLs make room again');
  });

  test('the 1001st outstanding URL: 429', async () => {
    now += 120_000;
    for (const filler of FILLERS) {
      for (let i = 0; i < 100; i++) assert.equal((await issue(filler.token)).status, 201, `${filler.user}'s URL ${i + 1}`);
    }
    const refused = await issue(TOKENS.alice);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.reason, 'TooManyRequests');
    assert.equal(refused.body.message, 'too many stream URLs are outstanding; try again in a minute');
    assert.equal(auditRecords().at(-1)?.code, 429, 'the refusal is audited');
    now += 61_000;
    assert.equal((await issue(TOKENS.alice)).status, 201, 'expired URLs make room again');
  });
});

describe('browser safety', () => {
  test('a cross-site Origin is refused; an allowed one works', async () => {
    await assertRefused(
      () => stream(execPath('team-a', 'web', 'app', ['id']), { token: TOKENS.alice, origin: 'https://evil.example' }),
      403,
      'Forbidden',
      /cross-origin WebSocket from https:\/\/evil\.example refused/,
    );
    const issued = await call('POST', '/v1/sessions', { token: TOKENS.alice }, { target: { namespace: 'team-a', pod: 'web', container: 'app' }, command: ['echo', 'allowed'] });
    const ok = await stream(new URL(issued.body.url as string).pathname, { origin: 'https://console.example' });
    assert.ok('stdout' in ok && ok.stdout === 'allowed\n');
  });
});

describe('policy change', () => {
  test('a reload that revokes access ends the live session with a Status saying so', async () => {
    const result = stream(execPath('team-a', 'web', 'app', ['sleep', '3100001']), { token: TOKENS.alice });
    await waitUntil(() => pidsWithCommandLine('sleep 3100001').length === 1, 10_000, 'the session to run');
    writeFileSync(join(dir, 'policy.yaml'), POLICY.replace('targets: [{ namespace: team-a }]', 'targets: [{ namespace: team-c }]'));
    agent.reload();
    const r = await result;
    assert.ok('status' in r, JSON.stringify(r));
    assert.equal(r.status.reason, 'Forbidden');
    assert.equal(r.status.message, 'the session was ended: a reload of the policy or the token file revoked this access');
    await waitUntil(() => pidsWithCommandLine('sleep 3100001').length === 0, 3_000, 'the process to be gone');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    agent.reload();
  });

  test("a token file reload ends the live sessions of a token it no longer holds, and of a user whose groups no longer grant them; others run on", async () => {
    const tokens = readFileSync(join(dir, 'tokens'), 'utf8');
    const alices = stream(execPath('team-a', 'web', 'app', ['sleep', '3100004']), { token: TOKENS.alice });
    const bobs = stream(execPath('team-b', 'api', 'main', ['sh', '-c', 'exec sleep 3100005']), { token: TOKENS.bob });
    const carols = stream(execPath('team-a', 'web', 'app', ['sleep', '3100006']), { token: TOKENS.carol });
    await waitUntil(() => ['3100004', '3100005', '3100006'].every((n) => pidsWithCommandLine(`sleep ${n}`).length === 1), 10_000, 'the sessions to run');
    try {
      // alice's token is gone; bob is moved from team-b to team-a (whose rule does not reach team-b); carol is untouched.
      writeFileSync(join(dir, 'tokens'), tokens.replace(`${TOKENS.alice} alice team-a\n`, '').replace(`${TOKENS.bob} bob team-b\n`, `${TOKENS.bob} bob team-a\n`));
      agent.reload();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the sessions were still running 10 s after the reload')), 10_000)));
      const ended = await Promise.race([Promise.all([alices, bobs]), late]).finally(() => clearTimeout(timer));
      for (const result of ended) {
        assert.ok('status' in result, JSON.stringify(result));
        assert.equal(result.status.reason, 'Forbidden');
        assert.equal(result.status.message, 'the session was ended: a reload of the policy or the token file revoked this access');
      }
      await waitUntil(() => pidsWithCommandLine('sleep 3100004').length + pidsWithCommandLine('sleep 3100005').length === 0, 3_000, 'their processes to be gone');
      assert.equal(pidsWithCommandLine('sleep 3100006').length, 1, "carol's session runs on");
    } finally {
      writeFileSync(join(dir, 'tokens'), tokens);
      agent.reload();
      for (const pid of pidsWithCommandLine('sleep 3100006')) process.kill(pid, 'SIGKILL');
      await carols.catch(() => undefined);
    }
  });
});

/** Waits (at most 10 s) for a session to end with the Status of a token-file change that revoked it. */
async function assertRevokedByTokenFileChange(session: ReturnType<typeof stream>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the session was still running 10 s after the change')), 10_000)));
  const result = await Promise.race([session, late]).finally(() => clearTimeout(timer));
  assert.ok('status' in result, JSON.stringify(result));
  assert.equal(result.status.message, 'the session was ended: a change of the token file revoked this access');
}

describe('token file change', () => {
  test('a token removed from the watched file ends its live session once the file has settled, without a SIGHUP', async () => {
    const tokens = readFileSync(join(dir, 'tokens'), 'utf8');
    const alices = stream(execPath('team-a', 'web', 'app', ['sleep', '3100007']), { token: TOKENS.alice });
    await waitUntil(() => pidsWithCommandLine('sleep 3100007').length === 1, 10_000, 'the session to run');
    try {
      writeFileSync(join(dir, 'tokens'), tokens.replace(`${TOKENS.alice} alice team-a\n`, ''));
      await assertRevokedByTokenFileChange(alices);
    } finally {
      writeFileSync(join(dir, 'tokens'), tokens);
      agent.reload();
    }
    await waitUntil(() => pidsWithCommandLine('sleep 3100007').length === 0, 3_000, 'the process to be gone');
  });

  test('a token removed, then a write that does not parse: the session still ends, judged by the tokens in force', async () => {
    const tokens = readFileSync(join(dir, 'tokens'), 'utf8');
    const alices = stream(execPath('team-a', 'web', 'app', ['sleep', '3100008']), { token: TOKENS.alice });
    await waitUntil(() => pidsWithCommandLine('sleep 3100008').length === 1, 10_000, 'the session to run');
    const failures = async () => (await registry.getSingleMetric('execlet_token_file_reloads_total')!.get()).values.find((v) => v.labels.outcome === 'failure')?.value ?? 0;
    const failedBefore = await failures();
    try {
      // alice's line is removed (it parses: new requests of hers get a 401)…
      writeFileSync(join(dir, 'tokens'), tokens.replace(`${TOKENS.alice} alice team-a\n`, ''));
      await waitUntil(async () => (await call('GET', '/v1/targets', { token: TOKENS.alice })).status === 401, 5_000, "the file without alice's line to be in force");
      // …then, within the settling second, a write that does not parse (a script's bad follow-up line).
      writeFileSync(join(dir, 'tokens'), `${tokens.replace(`${TOKENS.alice} alice team-a\n`, '')}only-half-a-line\n`);
      await waitUntil(async () => (await failures()) > failedBefore, 5_000, 'the broken file to be read and refused');
      await assertRevokedByTokenFileChange(alices);
    } finally {
      writeFileSync(join(dir, 'tokens'), tokens);
      agent.reload();
      for (const pid of pidsWithCommandLine('sleep 3100008')) process.kill(pid, 'SIGKILL');
      await alices.catch(() => undefined);
    }
  });
});

test("names as long as Kubernetes allows reach the routes; a longer path part is a 414 Status that does not repeat it", async () => {
  const long = 'p'.repeat(253);
  const found = await call('GET', `/api/v1/namespaces/default/pods/${long}`, { token: localToken });
  assert.equal(found.status, 404);
  assert.equal(found.body.kind, 'Status');
  const tooLong = await call('GET', `/api/v1/namespaces/default/pods/${'q'.repeat(2000)}`, { token: localToken });
  assert.equal(tooLong.status, 414);
  assert.equal(tooLong.body.kind, 'Status');
  assert.match(tooLong.body.message ?? '', /longer than 1024 characters/);
  assert.ok(!(tooLong.body.message ?? '').includes('qqqq'));
});

describe('audit log', () => {
  test('has start and end records for allowed sessions and a record for each denial, and no token', async () => {
    const records = auditRecords();
    const starts = records.filter((r) => r.event === 'session.start');
    const ends = records.filter((r) => r.event === 'session.end');
    const denied = records.filter((r) => r.event === 'access.denied');
    assert.ok(starts.length >= 5 && ends.length === starts.length, `${starts.length} starts, ${ends.length} ends`);
    const dave = ends.find((r) => (r.identity as { user: string }).user === 'dave')!;
    assert.deepEqual(dave.identity, { user: 'dave', groups: ['team-b'], method: 'client-certificate', address: '127.0.0.1' });
    assert.deepEqual((dave.outcome as { reason: string; exitCode: number }).reason, 'exited');
    assert.deepEqual(dave.command, ['echo', 'hello-dave']);
    assert.equal((dave.target as { namespace: string }).namespace, 'team-b');
    const viaUrl = starts.find((r) => (r.command as string[])[1] === 'from-a-url')!;
    assert.equal((viaUrl.identity as { method: string; user: string }).method, 'stream-token');
    assert.equal((viaUrl.identity as { method: string; user: string }).user, 'alice');
    const reasons = denied.map((r) => `${r.code}`);
    for (const code of ['401', '403', '404']) assert.ok(reasons.includes(code), `a ${code} denial is audited`);
    const aliceDenied = denied.find((r) => r.code === 403 && (r.identity as { user: string } | null)?.user === 'alice')!;
    assert.match(aliceDenied.message as string, /may not exec into team-b\/api\/main/);
    const text = readFileSync(join(dir, 'state', 'audit.log'), 'utf8');
    for (const token of [...Object.values(TOKENS), localToken]) assert.ok(!text.includes(token), 'no token in the audit log');
    assert.ok(!/v1\/streams\/[A-Za-z0-9_-]{20,}/.test(text), 'no stream token in the audit log');
  });

  test("an exec whose query is not UTF-8 text is refused after the caller is known, and audited with the caller", async () => {
    const path = '/api/v1/namespaces/team-a/pods/web/exec?container=app&stdout=true&command=echo&command=caf%E9';
    const refused = await call('GET', path, { token: TOKENS.alice });
    assert.equal(refused.status, 400);
    assert.match(refused.body.message ?? '', /^the 2nd query parameter "command" is not valid percent-encoding of UTF-8 text$/);
    const denial = auditRecords().findLast((r) => r.event === 'access.denied')!;
    assert.equal(denial.code, 400);
    assert.equal((denial.identity as { user: string }).user, 'alice');
    assert.equal(denial.message, refused.body.message);
    // Without a credential it is a 401, as for any request, whatever its query.
    assert.equal((await call('GET', path, {})).status, 401);
  });

  test('refusals without an identity are rate-limited: a flood of 200 leaves at most the burst of 60 in the log', async () => {
    const before = auditRecords().filter((r) => r.event === 'access.denied' && r.identity === null).length;
    const startedAt = performance.now();
    const replies = await Promise.all(Array.from({ length: 200 }, () => call('POST', '/v1/sessions', { token: 'not-a-valid-token' }, { target: { node: true }, command: ['sh'] })));
    // The rate adds one record a second: a flood that took longer than a second on a busy machine may have earned more.
    const earned = Math.ceil((performance.now() - startedAt) / 1000);
    assert.ok(replies.every((r) => r.status === 401), 'every one refused');
    const added = auditRecords().filter((r) => r.event === 'access.denied' && r.identity === null).length - before;
    assert.ok(added > 0 && added <= 60 + earned, `${added} records of 200 refusals in ${earned} s`);
    assert.ok(added < 200, 'the flood was cut short');
  });
});

