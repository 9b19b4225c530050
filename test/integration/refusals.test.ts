// Every refusal is a Kubernetes Status with the right HTTP code and a message a person
// understands: authentication, unknown names, bad queries, unsupported transports.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { dockerClient } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { execPath, openExec } from '../helpers/exec-client.js';

let docker: TestDocker;
let agent: TestAgent;
const containers: TestContainer[] = [];

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker);
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'app') }));
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'side') }));
  const stopped = await startContainer(docker, { labels: podLabels('default', 'stopped', 'main') });
  containers.push(stopped);
  await dockerClient(docker).getContainer(stopped.id).kill();
});

after(async () => {
  for (const c of containers) await c.remove();
  await agent?.stop();
  await docker?.stop();
});

interface HttpResult {
  status: number;
  headers?: Record<string, string | string[] | undefined>;
  body: string;
  json: { kind?: string; apiVersion?: string; status?: string; reason?: string; message?: string; code?: number };
}

function httpRequest(method: string, path: string, headers: Record<string, string> = {}, token: string | null = agent.token): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: agent.port, method, path, ca: agent.caPem, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          let json = {};
          try {
            json = JSON.parse(body);
          } catch {
            // not JSON: the assertions below will say so
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, json });
        });
      },
    );
    // An upgrade that should have been refused: resolved as the 101 it is, so the test says so.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, headers: res.headers, body: '', json: {} });
    });
    req.on('error', reject);
    req.end();
  });
}

async function refusedUpgrade(path: string, protocols?: string[], token?: string | null): Promise<HttpResult> {
  try {
    await openExec(agent, path, { ...(protocols ? { protocols } : {}), ...(token !== undefined ? { token } : {}) });
  } catch (err) {
    const e = err as { statusCode?: number; body?: string };
    if (e.statusCode === undefined) throw err;
    return { status: e.statusCode, body: e.body ?? '', json: JSON.parse(e.body ?? '{}') };
  }
  throw new Error(`upgrade of ${path} was accepted`);
}

/** Sends `text` as it is over a new TLS connection and reads the answer until the agent closes it. */
function rawExchange(text: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem, servername: 'localhost' }, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const answer = Buffer.concat(chunks).toString('utf8');
      const [head = '', body = ''] = answer.split('\r\n\r\n', 2);
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0);
      let json = {};
      try {
        json = JSON.parse(body);
      } catch {
        // not JSON: the assertions will say so
      }
      const headers = Object.fromEntries(head.split('\r\n').slice(1).map((line) => [line.split(':', 1)[0]!.toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      resolve({ status, headers, body: answer, json });
    });
  });
}

function assertStatus(r: HttpResult, code: number, reason: string, message: RegExp): void {
  assert.equal(r.status, code, r.body);
  assert.equal(r.json.kind, 'Status', r.body);
  assert.equal(r.json.apiVersion, 'v1');
  assert.equal(r.json.status, 'Failure');
  assert.equal(r.json.code, code);
  assert.equal(r.json.reason, reason);
  assert.match(r.json.message ?? '', message);
}

const good = { command: 'true', container: 'app', stdout: true };

describe('authentication', () => {
  test('no token: 401 on discovery, pods and exec', async () => {
    assertStatus(await httpRequest('GET', '/api', {}, null), 401, 'Unauthorized', /bearer token/);
    assertStatus(await httpRequest('GET', '/api/v1/namespaces/default/pods/web', {}, null), 401, 'Unauthorized', /bearer token/);
    assertStatus(await refusedUpgrade(execPath('default', 'web', good), undefined, null), 401, 'Unauthorized', /bearer token/);
  });

  test('a wrong token, and a prefix of the right one: 401', async () => {
    assertStatus(await httpRequest('GET', '/api/v1', {}, 'wrong-token'), 401, 'Unauthorized', /bearer token/);
    assertStatus(await refusedUpgrade(execPath('default', 'web', good), undefined, agent.token.slice(0, -1)), 401, 'Unauthorized', /bearer token/);
  });

  test('health endpoints need no token; metrics and version do', async () => {
    assert.equal((await httpRequest('GET', '/healthz', {}, null)).status, 200);
    assert.equal((await httpRequest('GET', '/readyz', {}, null)).status, 200);
    assert.equal((await httpRequest('GET', '/metrics', {}, null)).status, 401);
    assert.equal((await httpRequest('GET', '/version', {}, null)).status, 401);
  });

  test('the token never appears in the agent output', async () => {
    await httpRequest('GET', '/api', {}, 'not-the-token');
    assert.equal(agent.output().includes(agent.token), false);
  });
});

describe('names', () => {
  test('unknown pod: 404 NotFound naming it', async () => {
    assertStatus(await httpRequest('GET', '/api/v1/namespaces/default/pods/nosuch'), 404, 'NotFound', /pods "nosuch" not found/);
    assertStatus(await refusedUpgrade(execPath('default', 'nosuch', good)), 404, 'NotFound', /pods "nosuch" not found in namespace "default"/);
  });

  test('unknown container: 400 (apiserver shape) and 404 (kubelet shape), listing the containers', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'web', { ...good, container: 'nosuch' })), 400, 'BadRequest', /container nosuch is not valid for pod web.*\[app side\]/);
    assertStatus(await refusedUpgrade('/exec/default/web/nosuch?command=true&output=1'), 404, 'NotFound', /container nosuch is not valid/);
  });

  test('no container named in a two-container pod: choose one of', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'web', { command: 'true', stdout: true })), 400, 'BadRequest', /a container name must be specified for pod web, choose one of: \[app side\]/);
  });

  test('a container that is not running: 409 with its state', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'stopped', { command: 'true', container: 'main', stdout: true })), 409, 'Conflict', /not running \(state: exited\)/);
  });

  test('unknown URL: 404 Status', async () => {
    assertStatus(await httpRequest('GET', '/api/v1/nodes'), 404, 'NotFound', /could not find the requested resource/);
  });
});

describe('queries', () => {
  test('missing command: 400', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'web', { container: 'app', stdout: true })), 400, 'BadRequest', /at least one command/);
  });

  test('no streams: 400', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'web', { command: 'true', container: 'app', stdout: false })), 400, 'BadRequest', /at least 1 of stdin, stdout, stderr/);
    // kubelet rules: only "1" is true, so output=true asks for nothing
    assertStatus(await refusedUpgrade('/exec/default/web/app?command=true&output=true'), 400, 'BadRequest', /at least 1 of stdin, stdout, stderr/);
  });

  test('tty with stderr on the kubelet route is accepted with stderr dropped, as the kubelet does', async () => {
    const ws = await openExec(agent, '/exec/default/web/app?command=true&output=1&error=1&tty=1');
    ws.close();
  });

  test('tty with stderr on the apiserver route is accepted with stderr dropped (client-node sends it)', async () => {
    const ws = await openExec(agent, execPath('default', 'web', { command: 'true', container: 'app', stdout: true, stderr: true, tty: true }));
    ws.close();
  });
});

describe('transports', () => {
  test('SPDY upgrade (POST): 400 saying SPDY is not supported yet', async () => {
    const r = await httpRequest('POST', execPath('default', 'web', good), {
      connection: 'Upgrade',
      upgrade: 'SPDY/3.1',
      'x-stream-protocol-version': 'v4.channel.k8s.io',
      'content-length': '0',
    });
    assertStatus(r, 400, 'BadRequest', /SPDY is not supported by execlet yet/);
  });

  test('SPDY still reports a bad request first, so kubectl shows the real error', async () => {
    const r = await httpRequest('POST', execPath('default', 'nosuch', good), { connection: 'Upgrade', upgrade: 'SPDY/3.1', 'content-length': '0' });
    assertStatus(r, 404, 'NotFound', /pods "nosuch" not found/);
  });

  test('no subprotocol offered, or none supported: 400 listing what execlet speaks', async () => {
    assertStatus(await refusedUpgrade(execPath('default', 'web', good), []), 400, 'BadRequest', /no WebSocket subprotocol was offered; execlet speaks v5\.channel\.k8s\.io/);
    assertStatus(await refusedUpgrade(execPath('default', 'web', good), ['v3.channel.k8s.io', 'v2.channel.k8s.io']), 400, 'BadRequest', /none of the offered subprotocols \(v3\.channel\.k8s\.io, v2\.channel\.k8s\.io\) is supported/);
  });

  test('a Sec-WebSocket-Protocol header the handshake would refuse (not a token list, a name twice): 400 Status naming it', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };
    for (const header of ['v5.channel.k8s.io, a@b', 'v5.channel.k8s.io,,v4.channel.k8s.io', 'v5.channel.k8s.io,']) {
      const r = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-protocol': header });
      assertStatus(r, 400, 'BadRequest', /^invalid Sec-WebSocket-Protocol header: it must be a comma-separated list of tokens; entry \d of \d (holds "@", which a token may not|is empty)$/);
    }
    const twice = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-protocol': 'v5.channel.k8s.io, v4.channel.k8s.io,v5.channel.k8s.io' });
    assertStatus(twice, 400, 'BadRequest', /subprotocol v5\.channel\.k8s\.io is offered twice/);
  });

  test('percent-encoding that is not UTF-8 text: 400 Status naming the parameter, and nothing run', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'v5.channel.k8s.io' };
    // What kubectl sends for `exec -- echo $'caf\xe9'`: before, the program ran with the argument `caf%E9`.
    const latin1 = await httpRequest('GET', '/api/v1/namespaces/default/pods/web/exec?container=app&stdout=true&command=echo&command=caf%E9', upgrade);
    assertStatus(latin1, 400, 'BadRequest', /^the 2nd query parameter "command" is not valid percent-encoding of UTF-8 text$/);
    const kubelet = await httpRequest('GET', '/exec/default/web/app?command=%zz&output=1', upgrade);
    assertStatus(kubelet, 400, 'BadRequest', /^query parameter "command" is not valid percent-encoding of UTF-8 text$/);
    const pods = await httpRequest('GET', '/api/v1/pods?labelSelector=%E0%A4');
    assertStatus(pods, 400, 'BadRequest', /^query parameter "labelSelector" is not valid/);
  });

  test("what Node.js's HTTP parser refuses, and CONNECT: a Status, and the connection closed", async () => {
    const longCommand = Array.from({ length: 3000 }, (_, i) => `command=arg${i}`).join('&');
    const overflow = await rawExchange(`GET /api/v1/namespaces/default/pods/web/exec?${longCommand} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    assertStatus(overflow, 431, 'BadRequest', /^the request's headers, its URL included, are longer than 16 KiB: send a longer command in the body of POST \/v1\/sessions$/);
    const badHeader = await rawExchange(`GET /version HTTP/1.1\r\nHost: localhost\r\nNo colon here\r\n\r\n`);
    assertStatus(badHeader, 400, 'BadRequest', /^the request is not valid HTTP\/1\.1 \(HPE_[A-Z_]+: Parse Error: .+\)$/);
    const badLine = await rawExchange(`GET /version with spaces HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    assertStatus(badLine, 400, 'BadRequest', /^the request is not valid HTTP\/1\.1/);
    const noHost = await rawExchange(`GET /healthz HTTP/1.1\r\n\r\n`);
    assertStatus(noHost, 400, 'BadRequest', /^the request has no Host header, which HTTP\/1\.1 requires$/);
    // HTTP/1.0 has no Host header to require.
    const http10 = await rawExchange(`GET /healthz HTTP/1.0\r\n\r\n`);
    assert.equal(http10.status, 200, http10.body);
    const connect = await rawExchange(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`);
    assertStatus(connect, 405, 'MethodNotAllowed', /^CONNECT is not supported: execlet is not a proxy$/);
    for (const r of [overflow, badHeader, badLine, noHost, connect]) {
      assert.equal(r.headers?.connection, 'close');
      assert.equal(Number(r.headers?.['content-length']), Buffer.byteLength(JSON.stringify(r.json)), 'the whole Status arrived');
    }
  });

  test('an upgrade to a route that takes no WebSocket: 400 Status naming the route, and the connection closed', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13', 'sec-websocket-protocol': 'v5.channel.k8s.io' };
    for (const [path, route, token] of [
      ['/version', '/version', agent.token],
      ['/api/v1/namespaces/default/pods?limit=1', '/api/v1/namespaces/:namespace/pods', agent.token],
      ['/metrics', '/metrics', agent.token],
      ['/healthz', '/healthz', null],
    ] as const) {
      const r = await httpRequest('GET', path, upgrade, token);
      assertStatus(r, 400, 'BadRequest', new RegExp(`^GET ${route.replace(/[/.]/g, '\\$&')} takes no WebSocket or other upgrade: send it as a plain HTTP request$`));
      assert.equal(r.headers?.connection, 'close', `${path}: the connection is not kept`);
    }
    const h2c = await httpRequest('GET', '/api/v1/pods', { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA' });
    assertStatus(h2c, 400, 'BadRequest', /^GET \/api\/v1\/pods takes no WebSocket or other upgrade/);
    // The same routes answer plain requests, and an unknown path is still a 404.
    assert.equal((await httpRequest('GET', '/version')).status, 200);
    assertStatus(await httpRequest('GET', '/no/such/path', upgrade), 404, 'NotFound', /could not find the requested resource/);
  });

  test('a token carried in a subprotocol (as browsers send one to Kubernetes) is in no refusal, and so in no log', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };
    const carried = `base64url.bearer.authorization.k8s.io.${Buffer.from(agent.token).toString('base64url')}`;
    const unsupported = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-protocol': `${carried}, v3.channel.k8s.io` });
    assertStatus(unsupported, 400, 'BadRequest', /none of the offered subprotocols \(base64url\.bearer\.authorization\.k8s\.io\.\[redacted\], v3\.channel\.k8s\.io\) is supported/);
    const twice = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-protocol': `${carried}, ${carried}` });
    assertStatus(twice, 400, 'BadRequest', /subprotocol base64url\.bearer\.authorization\.k8s\.io\.\[redacted\] is offered twice/);
    // Not a list of tokens: nothing of the header is repeated.
    const malformed = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-protocol': `v5.channel.k8s.io;${agent.token}` });
    assertStatus(malformed, 400, 'BadRequest', /entry 1 of 1 holds ";", which a token may not$/);
    for (const r of [unsupported, twice, malformed]) assert.ok(!r.body.includes(Buffer.from(agent.token).toString('base64url')) && !r.body.includes(agent.token));
    const logged = agent.output() + readFileSync(join(agent.stateDir, 'audit.log'), 'utf8');
    assert.ok(!logged.includes(Buffer.from(agent.token).toString('base64url')), 'the carried token is not logged or audited');
    assert.ok(!logged.includes(agent.token), 'the token is not logged or audited');
  });

  test('a WebSocket upgrade with a malformed key or an unknown version: 400 Status naming the header', async () => {
    const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-protocol': 'v5.channel.k8s.io' };
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    assertStatus(await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-version': '13' }), 400, 'BadRequest', /missing or invalid Sec-WebSocket-Key/);
    assertStatus(await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-version': '13', 'sec-websocket-key': 'short' }), 400, 'BadRequest', /missing or invalid Sec-WebSocket-Key/);
    const noVersion = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-key': key });
    assertStatus(noVersion, 400, 'BadRequest', /missing Sec-WebSocket-Version header: execlet speaks 13/);
    const oldVersion = await httpRequest('GET', execPath('default', 'web', good), { ...upgrade, 'sec-websocket-key': key, 'sec-websocket-version': '7' });
    assertStatus(oldVersion, 400, 'BadRequest', /Sec-WebSocket-Version 7 is not supported: execlet speaks 13/);
    assert.equal(oldVersion.headers?.['sec-websocket-version'], '13, 8');
  });

  test('exec without an upgrade: 400 Upgrade request required', async () => {
    assertStatus(await httpRequest('GET', execPath('default', 'web', good)), 400, 'BadRequest', /Upgrade request required/);
    assertStatus(await httpRequest('POST', execPath('default', 'web', good)), 400, 'BadRequest', /Upgrade request required/);
  });
});
