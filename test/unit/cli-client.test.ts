// The client side of `execlet exec` / `execlet targets` without an agent: kubeconfig resolution
// (contexts, data and file forms, overrides, missing pieces), command-line parsing, exec URL
// building for every mode, Status → exit code, and the WebSocket stream against a fake server
// (subprotocol choice, stdin EOF on v5 and v4, resize, refusals, backpressure both ways).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { ClientConfigError, kubeconfigPaths, loadClientConfig, parseCommandLine, refusalMessage, UsageError, type ConnectionFlags } from '../../src/cli/client-config.js';
import {
  AGENT_FAILURE_EXIT_CODE,
  containerForMode,
  execRequestPath,
  exitCodeOf,
  onlyContainerOf,
  parseExecArgs,
  planTarget,
  webSocketUrl,
  type ExecRequest,
} from '../../src/cli/exec.js';
import { openExecStream, outcomeOfStatus, STDIN_HIGH_WATER_MARK, type ExecOutcome, type ExecStreamOptions } from '../../src/cli/exec-stream.js';
import { formatTable, targetsTable } from '../../src/cli/targets.js';
import { createCertificateAuthority, createClientCertificate } from '../../src/auth/self-signed.js';
import { defaultSettings } from '../../src/config/settings.js';
import { exitCodeStatus, failureStatus, httpStatus, successStatus } from '../../src/protocol/status.js';

// ---------------------------------------------------------------------------------------------
// Kubeconfig

// Real certificates: the loader checks that a CA is one, and that a client certificate and key go together.
const CA_PEM = createCertificateAuthority('test server CA').certPem;
const OTHER_CA_PEM = createCertificateAuthority('another server CA').certPem;
const CLIENT_CA = createCertificateAuthority('test client CA');
const { certPem: CERT_PEM, keyPem: KEY_PEM } = createClientCertificate(CLIENT_CA, 'me');
const OTHER_KEY_PEM = createClientCertificate(CLIENT_CA, 'someone-else').keyPem;
const b64 = (text: string) => Buffer.from(text).toString('base64');

/** An in-memory file system for loadClientConfig: absolute path → content; anything else is ENOENT. */
function memoryFiles(files: Record<string, string>): (path: string) => string {
  return (path: string) => {
    const content = files[resolve(path)];
    if (content === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    return content;
  };
}

/** What `execlet serve` writes (src/auth/local-credentials.ts), with two extra contexts. */
const SERVE_KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
  - name: execlet
    cluster:
      server: https://127.0.0.1:10350
      certificate-authority-data: ${b64(CA_PEM)}
  - name: other
    cluster:
      server: https://node-7.example:10350/prefix/
      insecure-skip-tls-verify: true
users:
  - name: execlet
    user:
      token: "0123456789"
  - name: certs
    user:
      client-certificate-data: ${b64(CERT_PEM)}
      client-key-data: ${b64(KEY_PEM)}
contexts:
  - name: execlet@node
    context: { cluster: execlet, user: execlet, namespace: docker }
  - name: other
    context: { cluster: other, user: certs }
current-context: execlet@node
`;

const load = (flags: ConnectionFlags, files: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
  loadClientConfig(flags, { env, readText: memoryFiles(files) });

function assertConfigError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ClientConfigError, `expected a ClientConfigError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('kubeconfig', () => {
  test('the kubeconfig serve writes: server, CA data, token and namespace of the current context', () => {
    const config = load({ kubeconfig: '/k/config' }, { '/k/config': SERVE_KUBECONFIG });
    assert.equal(config.server, 'https://127.0.0.1:10350');
    assert.equal(config.token, '0123456789', 'a numeric-looking token stays a string');
    assert.equal(config.namespace, 'docker');
    assert.deepEqual(config.tls, { ca: CA_PEM, rejectUnauthorized: true });
    assert.match(config.source, /\/k\/config \(context "execlet@node"\)/);
  });

  test('--context picks another context: client certificate data, insecure-skip-tls-verify, namespace default, path prefix kept', () => {
    const config = load({ kubeconfig: '/k/config', context: 'other' }, { '/k/config': SERVE_KUBECONFIG });
    assert.equal(config.server, 'https://node-7.example:10350/prefix');
    assert.equal(config.token, undefined);
    assert.equal(config.namespace, 'default');
    assert.deepEqual(config.tls, { cert: CERT_PEM, key: KEY_PEM, rejectUnauthorized: false });
  });

  test('file forms are read relative to the kubeconfig: certificate-authority, client-certificate/key, tokenFile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'execlet-cli-kubeconfig-'));
    try {
      mkdirSync(join(dir, 'pki'));
      writeFileSync(join(dir, 'pki', 'ca.crt'), CA_PEM);
      writeFileSync(join(dir, 'pki', 'me.crt'), CERT_PEM);
      writeFileSync(join(dir, 'pki', 'me.key'), KEY_PEM);
      writeFileSync(join(dir, 'token'), 'file-token\n');
      writeFileSync(
        join(dir, 'config'),
        `clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority: pki/ca.crt}}]
users: [{name: u, user: {tokenFile: token, client-certificate: pki/me.crt, client-key: ${join(dir, 'pki', 'me.key')}}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
`,
      );
      const config = loadClientConfig({ kubeconfig: join(dir, 'config') }, { env: {} });
      assert.deepEqual(config.tls, { ca: CA_PEM, cert: CERT_PEM, key: KEY_PEM, rejectUnauthorized: true });
      assert.equal(config.token, 'file-token');
      assert.equal(config.namespace, 'team-a');
      assertConfigError(
        () => loadClientConfig({ kubeconfig: join(dir, 'config'), certificateAuthority: 'nope.crt' }, { env: {} }),
        /cannot read certificate authority \(--certificate-authority\) .*nope\.crt: no such file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('data wins over the file form, as in client-go', () => {
    const text = `clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority-data: ${b64(CA_PEM)}, certificate-authority: /missing.crt}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`;
    assert.equal(load({ kubeconfig: '/k' }, { '/k': text }).tls.ca, CA_PEM);
  });

  test('--server, --token, --certificate-authority and --insecure-skip-tls-verify override the kubeconfig', () => {
    const config = load(
      { kubeconfig: '/k/config', server: 'https://10.0.0.7:10350', token: 'flag-token', certificateAuthority: '/other-ca.pem', insecureSkipTlsVerify: true },
      { '/k/config': SERVE_KUBECONFIG, '/other-ca.pem': OTHER_CA_PEM },
    );
    assert.equal(config.server, 'https://10.0.0.7:10350');
    assert.equal(config.token, 'flag-token');
    assert.equal(config.tls.ca, OTHER_CA_PEM);
    assert.throws(
      () => load({ kubeconfig: '/k/config', certificateAuthority: '/other-ca.pem' }, { '/k/config': SERVE_KUBECONFIG, '/other-ca.pem': 'not a certificate' }),
      { message: '--certificate-authority is not a PEM certificate' },
    );
    assert.equal(config.tls.rejectUnauthorized, false);
    assert.equal(config.namespace, 'docker', 'the context namespace still applies');
  });

  test('$KUBECONFIG is a list: missing files are skipped and the first definition of a name wins', () => {
    const first = `clusters: [{name: execlet, cluster: {server: "https://first:1"}}]
current-context: mine
contexts: [{name: mine, context: {cluster: execlet, user: execlet, namespace: first-ns}}]
`;
    const config = load({}, { '/a': first, '/b': SERVE_KUBECONFIG }, { KUBECONFIG: '/missing:/a:/b' });
    assert.equal(config.server, 'https://first:1');
    assert.equal(config.namespace, 'first-ns');
    assert.equal(config.token, '0123456789', 'the user comes from the second file');
  });

  test('without --kubeconfig or $KUBECONFIG, the state dir kubeconfig of execlet serve is used', () => {
    const expected = join(defaultSettings({}).stateDir, 'kubeconfig');
    assert.deepEqual(kubeconfigPaths(undefined, {}), { paths: [expected], named: 'default' });
    // As kubectl: an empty --kubeconfig is no path.
    assert.deepEqual(kubeconfigPaths('', {}), { paths: [expected], named: 'default' });
    assert.deepEqual(kubeconfigPaths('', { KUBECONFIG: '/a' }), { paths: ['/a'], named: 'env' });
    const isRoot = process.getuid?.() === 0;
    if (isRoot) assert.equal(expected, '/var/lib/execlet/kubeconfig');
    else assert.match(expected, /\.local\/state\/execlet\/kubeconfig$/);
    assert.equal(load({}, { [expected]: SERVE_KUBECONFIG }).token, '0123456789');
  });

  test('no kubeconfig at all: --server with --token is enough; otherwise the error says what to pass', () => {
    const config = load({ server: 'https://h:1/', token: 't' }, {});
    assert.deepEqual(config, { server: 'https://h:1', namespace: 'default', token: 't', tls: { rejectUnauthorized: true }, source: '--server' });
    assertConfigError(() => load({}, {}), /no kubeconfig found \(looked for .*kubeconfig, the one "execlet serve" writes\): pass --kubeconfig FILE, or --server URL with --token TOKEN/);
    assertConfigError(() => load({}, {}, { KUBECONFIG: '/nope' }), /no kubeconfig found \(looked for \/nope, from \$KUBECONFIG\)/);
    assertConfigError(() => load({ server: 'https://h:1' }, {}), /--server without a kubeconfig needs --token/);
    assertConfigError(() => load({ kubeconfig: '/nope', server: 'https://h:1', token: 't' }, {}), /kubeconfig \/nope not found/);
  });

  test('missing or broken pieces are named', () => {
    const base = { clusters: 'clusters: [{name: c, cluster: {server: "https://h:1"}}]', users: 'users: [{name: u, user: {token: t}}]' };
    const cases: Array<[string, RegExp]> = [
      [`${base.clusters}\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n`, /has no current-context: pass --context NAME/],
      [`${base.clusters}\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: y\n`, /context "y" not found in kubeconfig \/k \(it has: x\)/],
      [`${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /cluster "c" of context "x" not found/],
      [`clusters: [{name: c, cluster: {}}]\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /cluster "c" in \/k has no server: pass --server URL/],
      [`clusters: [{name: c, cluster: {server: "http://h:1"}}]\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /must be an https:\/\/ URL/],
      [`${base.clusters}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /user "u" of context "x" not found/],
      [`${base.clusters}\ncontexts: [{name: x, context: {cluster: c}}]\ncurrent-context: x\n`, /context "x" in \/k names no user: pass --token TOKEN/],
      [`${base.clusters}\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /user "u" in \/k has no token and no client certificate: pass --token TOKEN/],
      [`${base.clusters}\nusers: [{name: u, user: {exec: {command: gke-auth}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /uses an exec credential plugin, which execlet does not support/],
      [`${base.clusters}\nusers: [{name: u, user: {client-certificate-data: ${b64(CERT_PEM)}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /user "u" in \/k has a client certificate without its key/],
      [`clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority-data: bm90IHBlbQ==}}]\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /certificate-authority of cluster "c"-data in \/k is not base64-encoded PEM/],
      [`clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority: ca.crt}}]\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /cannot read certificate-authority of cluster "c" \/ca\.crt: no such file/],
      ['clusters: {a: 1}\n', /kubeconfig \/k: clusters: /],
      ['clusters: [\n', /kubeconfig \/k is not valid YAML/],
      [
        `${base.clusters}\nusers: [{name: u, user: {client-certificate-data: ${b64(CERT_PEM)}, client-key-data: ${b64(OTHER_KEY_PEM)}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
        /^the client-key of user "u" in \/k is not the key of its client-certificate$/,
      ],
      [
        `${base.clusters}\nusers: [{name: u, user: {client-certificate-data: ${b64(CERT_PEM)}, client-key-data: ${b64(CERT_PEM)}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
        /^the client-key of user "u" in \/k is not a PEM private key$/,
      ],
      [
        `clusters: [{name: c, cluster: {server: "https://h:1", certificate-authority-data: ${b64(KEY_PEM)}}}]\n${base.users}\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
        /^the certificate-authority of cluster "c" in \/k is not a PEM certificate$/,
      ],
      [`${base.clusters}\nusers: [{name: u, user: {token: "tok€n"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`, /^the token of user "u" in \/k holds a character other than printable ASCII/],
      [`${base.clusters}\nusers: [{name: u, user: {__proto__: {token: x}}}]\n`, /^kubeconfig \/k is not valid YAML: the key "__proto__" \(at users\[0\]\.user\.__proto__\) is not allowed$/],
    ];
    for (const [text, pattern] of cases) assertConfigError(() => load({ kubeconfig: '/k' }, { '/k': text }), pattern);
  });

  test('a token no Authorization header can carry is refused, naming where it came from and not the token', () => {
    const kubeconfig = `clusters: [{name: c, cluster: {server: "https://h:1"}}]\nusers: [{name: u, user: {tokenFile: token}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
    assertConfigError(() => load({ kubeconfig: '/k/config' }, { '/k/config': kubeconfig, '/k/token': 'first-line\nsecond-line\n' }), /^the token in the tokenFile of user "u" in \/k\/config holds a character other than printable ASCII/);
    for (const token of ['tok€n', 'a\nb', 'with space']) {
      assertConfigError(() => load({ kubeconfig: '/k/config', token }, { '/k/config': kubeconfig, '/k/token': 'fine\n' }), /^the token given with --token holds a character/);
      assertConfigError(() => load({ server: 'https://h:1', token }, {}), /^the token given with --token holds a character/);
    }
  });

  test('tokenFile takes precedence over token, as in client-go, while it can be read', () => {
    const both = (tokenFile: string) =>
      `clusters: [{name: c, cluster: {server: "https://h:1"}}]\nusers: [{name: u, user: {token: stale-inline, tokenFile: ${tokenFile}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
    assert.equal(load({ kubeconfig: '/k/config' }, { '/k/config': both('token'), '/k/token': 'rotated\n' }).token, 'rotated');
    assert.equal(load({ kubeconfig: '/k/config' }, { '/k/config': both('missing') }).token, 'stale-inline');
    assert.equal(load({ kubeconfig: '/k/config' }, { '/k/config': both('token'), '/k/token': ' \n' }).token, 'stale-inline', 'an empty file: the token');
    const onlyFile = `clusters: [{name: c, cluster: {server: "https://h:1"}}]\nusers: [{name: u, user: {tokenFile: token}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`;
    assertConfigError(() => load({ kubeconfig: '/k/config' }, { '/k/config': onlyFile, '/k/token': '\n' }), /the tokenFile of user "u" in \/k\/config is empty/);
  });

  test('a kubeconfig that is not valid YAML: where, and never the text around it (a token)', () => {
    const text = 'users:\n- name: x\n  user:\n\ttoken: s3cr3t-T0KEN-abcdef\n';
    assert.throws(
      () => load({ kubeconfig: '/k' }, { '/k': text }),
      (err: unknown) => {
        assert.ok(err instanceof ClientConfigError);
        assert.equal(err.message, 'kubeconfig /k is not valid YAML: tab as indent at line 4, column 1');
        return true;
      },
    );
    assertConfigError(() => load({ kubeconfig: '/k' }, { '/k': 'users: [{name: u, user: {token: abc: x}}]\n' }), /^kubeconfig \/k is not valid YAML: [a-z ]+ at line 1, column \d+$/);
  });

  test('a user without credentials is fine when --token is given', () => {
    const text = `clusters: [{name: c, cluster: {server: "https://h:1"}}]\ncontexts: [{name: x, context: {cluster: c, user: gone}}]\ncurrent-context: x\n`;
    assert.equal(load({ kubeconfig: '/k', token: 'tok' }, { '/k': text }).token, 'tok');
  });
});

describe('refusal messages', () => {
  test('a Status body gives its message; anything else the HTTP code and the start of the body', () => {
    assert.equal(refusalMessage(404, JSON.stringify(httpStatus(404, 'NotFound', 'pods "x" not found in namespace "default"'))), 'pods "x" not found in namespace "default"');
    assert.equal(refusalMessage(502, '<html>\n bad gateway </html>'), 'the server answered HTTP 502: <html> bad gateway </html>');
    assert.equal(refusalMessage(500, ''), 'the server answered HTTP 500 with an empty body');
  });
});

// ---------------------------------------------------------------------------------------------
// Command line

const exec = (argv: string[]): ExecRequest => {
  const parsed = parseExecArgs(argv);
  assert.notEqual(parsed, 'help');
  return parsed as ExecRequest;
};

function assertUsageError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected a UsageError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('execlet exec arguments', () => {
  test('flags before and after POD, combined -it, everything after -- is the command', () => {
    const r = exec(['--kubeconfig', '/k', '-n', 'shop', 'web', '-c', 'app', '-it', '--', 'sh', '-c', 'echo -n x --tty', '--']);
    assert.equal(r.pod, 'web');
    assert.equal(r.namespace, 'shop');
    assert.equal(r.container, 'app');
    assert.equal(r.stdin, true);
    assert.equal(r.tty, true);
    assert.equal(r.mode, 'exec');
    assert.deepEqual(r.command, ['sh', '-c', 'echo -n x --tty', '--']);
    assert.equal(r.connection.kubeconfig, '/k');
    assert.deepEqual(exec(['web', '--stdin', '--container=app', '--namespace=x', '--token', '-starts-with-dash', '--', 'true']).connection.token, '-starts-with-dash');
    assert.equal(exec(['pod/web', '--', 'true']).pod, 'web', 'kubectl-style pod/NAME');
  });

  test('--help anywhere before -- is help; after -- it belongs to the command', () => {
    assert.equal(parseExecArgs(['--help']), 'help');
    assert.equal(parseExecArgs(['web', '-h', '--', 'x']), 'help');
    assert.deepEqual(exec(['web', '--', 'ls', '--help']).command, ['ls', '--help']);
  });

  test('mistakes are usage errors naming the flag or what is missing', () => {
    assertUsageError(() => parseExecArgs(['web', '--bogus', '--', 'x']), /^unknown flag --bogus for "execlet exec"$/);
    assertUsageError(() => parseExecArgs(['web', '-x', '--', 'x']), /^unknown flag -x /);
    assertUsageError(() => parseExecArgs(['web', '--', ]), /a command is required after "--"/);
    assertUsageError(() => parseExecArgs(['web', 'ls']), /put the command after "--": execlet exec web -- ls/);
    assertUsageError(() => parseExecArgs(['--', 'ls']), /a pod name is required/);
    assertUsageError(() => parseExecArgs(['web', 'other', '--', 'ls']), /one pod only: unexpected "other"/);
    assertUsageError(() => parseExecArgs(['web', '-n']), /flag -n needs a value/);
    assertUsageError(() => parseExecArgs(['web', '-c', '--', 'ls']), /flag -c needs a value/);
    assertUsageError(() => parseExecArgs(['web', '--tty=false', '--', 'ls']), /flag --tty takes no value/);
    assertUsageError(() => parseExecArgs(['web', '--mode', 'ssh', '--', 'ls']), /--mode must be one of exec, nsenter, toolbox, node, got "ssh"/);
    assertUsageError(() => parseExecArgs(['web', '--namespaces', 'net', '--', 'ls']), /--namespaces applies only to --mode nsenter/);
    assertUsageError(() => parseExecArgs(['web', '--mode', 'toolbox', '--namespaces', 'net', '--', 'ls']), /not toolbox/);
    assertUsageError(() => parseExecArgs(['web', '--mode', 'nsenter', '--namespaces', ',', '--', 'ls']), /needs at least one name/);
    assertUsageError(() => parseExecArgs(['node-1', '--mode', 'node', '-n', 'default', '--', 'ls']), /-n does not apply/);
    assertUsageError(() => parseExecArgs(['node-1', '--mode', 'node', '-c', 'app', '--', 'ls']), /-c does not apply/);
    assertUsageError(() => parseExecArgs(['web', '--mode', 'nsenter', '-c', 'app.toolbox', '--', 'ls']), /-c app\.toolbox already names a mode \(\.toolbox\)/);
  });

  test('the generic parser keeps positionals and the part after --', () => {
    const parsed = parseCommandLine(['a', '-o', 'json', 'b', '--', '-o', 'x'], { output: { type: 'string', short: 'o' } }, 'targets');
    assert.deepEqual(parsed.positionals, ['a', 'b']);
    assert.deepEqual(parsed.afterTerminator, ['-o', 'x']);
    assert.equal(parsed.values.get('output'), 'json');
  });
});

// ---------------------------------------------------------------------------------------------
// Exec URL

describe('exec URL', () => {
  test('query order and escaping: every command word in order, %20 for spaces, no stderr with a TTY', () => {
    const target = { namespace: 'shop', pod: 'web', container: 'app' };
    assert.equal(
      execRequestPath(target, { command: ['sh', '-c', 'echo "a+b c" & x=1;/?#%'], stdin: true, tty: false, namespaces: [] }),
      '/api/v1/namespaces/shop/pods/web/exec?command=sh&command=-c&command=echo%20%22a%2Bb%20c%22%20%26%20x%3D1%3B%2F%3F%23%25&container=app&stdin=true&stdout=true&stderr=true',
    );
    assert.equal(
      execRequestPath(target, { command: ['sh'], stdin: true, tty: true, namespaces: [] }),
      '/api/v1/namespaces/shop/pods/web/exec?command=sh&container=app&stdin=true&stdout=true&tty=true',
    );
    assert.equal(
      execRequestPath({ namespace: 'a b', pod: 'p/q', container: undefined }, { command: ['ls'], stdin: false, tty: false, namespaces: [] }),
      '/api/v1/namespaces/a%20b/pods/p%2Fq/exec?command=ls&stdout=true&stderr=true',
      'no container lets the agent default it',
    );
  });

  test('modes: nsenter/toolbox put the suffix on the container, node targets execlet-node/NODE host, namespaces go along', () => {
    const plan = (argv: string[], contextNamespace = 'docker') => planTarget(exec(argv), contextNamespace);
    assert.deepEqual(plan(['web', '--', 'sh']), { target: { namespace: 'docker', pod: 'web', container: undefined }, needsContainer: false });
    assert.deepEqual(plan(['web', '-n', 'shop', '-c', 'app', '--mode', 'nsenter', '--', 'sh']), { target: { namespace: 'shop', pod: 'web', container: 'app.nsenter' }, needsContainer: false });
    assert.deepEqual(plan(['web', '-c', 'app', '--mode', 'toolbox', '--', 'sh']), { target: { namespace: 'docker', pod: 'web', container: 'app.toolbox' }, needsContainer: false });
    assert.deepEqual(plan(['web', '--mode', 'nsenter', '--', 'sh']), { target: { namespace: 'docker', pod: 'web', container: undefined }, needsContainer: true });
    assert.deepEqual(plan(['web', '-c', 'app.nsenter', '--', 'sh']), { target: { namespace: 'docker', pod: 'web', container: 'app.nsenter' }, needsContainer: false }, 'a suffix typed by hand passes through, as with kubectl');
    assert.deepEqual(plan(['node-7', '--mode', 'node', '--', 'sh']), { target: { namespace: 'execlet-node', pod: 'node-7', container: 'host' }, needsContainer: false });
    assert.equal(containerForMode('app', 'exec'), 'app');
    assert.equal(containerForMode('app', 'node'), 'app');

    const request = exec(['web', '-c', 'app', '--mode', 'nsenter', '--namespaces', 'net, pid', '--', 'ip', 'a']);
    assert.equal(
      execRequestPath(planTarget(request, 'default').target, { command: request.command, stdin: false, tty: false, namespaces: request.namespaces }),
      '/api/v1/namespaces/default/pods/web/exec?command=ip&command=a&container=app.nsenter&namespaces=net%2Cpid&stdout=true&stderr=true',
    );
  });

  test('the WebSocket URL keeps a server path prefix', () => {
    assert.equal(webSocketUrl('https://h:1/prefix', '/api/v1/x?y=1'), 'wss://h:1/prefix/api/v1/x?y=1');
  });

  test('container defaulting for nsenter: the only container, else the list', () => {
    assert.equal(onlyContainerOf({ spec: { containers: [{ name: 'app' }] } }, 'web'), 'app');
    assert.throws(() => onlyContainerOf({ spec: { containers: [{ name: 'app' }, { name: 'side' }] } }, 'web'), /a container name must be specified for pod web, choose one of: \[app side\]/);
    assert.throws(() => onlyContainerOf({}, 'web'), /pod web has no containers/);
  });
});

// ---------------------------------------------------------------------------------------------
// Status → exit code

describe('status → exit code', () => {
  test('Success is 0, NonZeroExitCode its cause, anything else an agent-side failure (255)', () => {
    assert.deepEqual(outcomeOfStatus(successStatus()), { kind: 'exited', code: 0 });
    assert.deepEqual(outcomeOfStatus(exitCodeStatus(3)), { kind: 'exited', code: 3 });
    assert.deepEqual(outcomeOfStatus(exitCodeStatus(255)), { kind: 'exited', code: 255 });
    assert.deepEqual(outcomeOfStatus(exitCodeStatus(137)), { kind: 'exited', code: 137 });
    assert.deepEqual(outcomeOfStatus(failureStatus('Timeout', 'session idle for 30m')), { kind: 'failed', message: 'session idle for 30m' });
    assert.deepEqual(outcomeOfStatus(failureStatus('InternalError', '')), { kind: 'failed', message: 'the session failed (InternalError)' });
    const bad = [
      { status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '0' }] } },
      { status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '256' }] } },
      { status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: 'x' }] } },
      { status: 'Failure', reason: 'NonZeroExitCode' },
      { status: 'Weird' },
      'Success',
      null,
    ];
    for (const status of bad) assert.equal(outcomeOfStatus(status).kind, 'failed', JSON.stringify(status));
    assert.equal(exitCodeOf({ kind: 'exited', code: 3 }), 3);
    assert.equal(exitCodeOf({ kind: 'failed', message: 'x' }), AGENT_FAILURE_EXIT_CODE);
    assert.equal(AGENT_FAILURE_EXIT_CODE, 255);
    assert.equal(exitCodeOf({ kind: 'aborted', reason: 'SIGTERM', exitCode: 143 }), 143);
  });
});

describe('targets table', () => {
  test('kubectl plain style: columns three spaces apart, no trailing blanks', () => {
    assert.equal(formatTable(['A', 'LONGER'], [['xxxx', 'y'], ['z', '']]), 'A      LONGER\nxxxx   y\nz\n');
    const text = targetsTable({ targets: [{ namespace: 'default', pod: 'web', container: 'app', state: 'running', modes: ['exec', 'nsenter'] }] });
    assert.equal(text, 'NAMESPACE   POD   CONTAINER   STATE     MODES\ndefault     web   app         running   exec,nsenter\n');
  });
});

// ---------------------------------------------------------------------------------------------
// The stream against a fake server

interface FakeServer {
  url: string;
  /** Called for each accepted stream with the socket and the upgrade request. */
  onStream: (ws: WebSocket, request: IncomingMessage) => void;
  /** Non-upgrade answer: when set, upgrades are refused with it. */
  refuse?: { code: number; body: string };
  close(): Promise<void>;
}

async function startFakeServer(accepts: string[]): Promise<FakeServer> {
  const server: Server = createServer();
  const fake: FakeServer = {
    url: '',
    onStream: () => undefined,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered].find((p) => accepts.includes(p)) ?? false });
  server.on('upgrade', (req, socket, head) => {
    if (fake.refuse) {
      socket.end(`HTTP/1.1 ${fake.refuse.code} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(fake.refuse.body)}\r\nconnection: close\r\n\r\n${fake.refuse.body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => fake.onStream(ws, req));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/namespaces/ns/pods/p/exec?command=x`;
  return fake;
}

/** A Writable that keeps everything; optionally slow (small buffer, delayed callbacks). */
function sink(options: { delayMs?: number; highWaterMark?: number } = {}): Writable & { data(): Buffer; maxBuffered(): number } {
  const chunks: Buffer[] = [];
  let maxBuffered = 0;
  const writable: Writable = new Writable({
    highWaterMark: options.highWaterMark ?? 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      maxBuffered = Math.max(maxBuffered, writable.writableLength);
      if (options.delayMs) setTimeout(callback, options.delayMs);
      else callback();
    },
  });
  return Object.assign(writable, { data: () => Buffer.concat(chunks), maxBuffered: () => maxBuffered });
}

const frame = (channel: number, payload: string | Buffer) => Buffer.concat([Buffer.from([channel]), Buffer.from(payload)]);
const statusFrame = (status: object) => frame(3, JSON.stringify(status));

function run(fake: FakeServer, options: Partial<ExecStreamOptions> = {}): { outcome: Promise<ExecOutcome>; stdout: ReturnType<typeof sink>; stderr: ReturnType<typeof sink> } {
  const stdout = (options.stdout as ReturnType<typeof sink> | undefined) ?? sink();
  const stderr = sink();
  const stream = openExecStream({ url: fake.url, headers: { authorization: 'Bearer t' }, tls: { rejectUnauthorized: true }, stdin: null, stdout, stderr, ...options });
  return { outcome: stream.outcome, stdout, stderr };
}

describe('exec stream', () => {
  let v5: FakeServer;
  let v4: FakeServer;
  before(async () => {
    v5 = await startFakeServer(['v5.channel.k8s.io', 'v4.channel.k8s.io']);
    v4 = await startFakeServer(['v4.channel.k8s.io']);
  });
  after(async () => {
    await v5.close();
    await v4.close();
  });

  test('v5: offered first; resize first, stdin then the close signal; stdout and stderr apart; the exit code', async () => {
    const received: Buffer[] = [];
    let protocol = '';
    let request: IncomingMessage | undefined;
    v5.onStream = (ws, req) => {
      protocol = ws.protocol;
      request = req;
      ws.on('message', (data: Buffer) => {
        received.push(data);
        if (data[0] === 255) {
          ws.send(frame(1, 'out'));
          ws.send(frame(2, 'err'));
          ws.send(statusFrame(exitCodeStatus(7)));
          ws.close(1000);
        }
      });
    };
    const resizes = new EventEmitter();
    let size = { width: 97, height: 31 };
    const opened: string[] = [];
    const { outcome, stdout, stderr } = run(v5, {
      stdin: Readable.from([Buffer.from('hello '), Buffer.from('world')]),
      terminal: {
        size: () => size,
        onResize: (listener) => {
          resizes.on('resize', listener);
          return () => resizes.off('resize', listener);
        },
      },
      onOpen: (p) => {
        opened.push(p);
        setImmediate(() => {
          size = { width: 120, height: 40 };
          resizes.emit('resize');
        });
      },
      headers: { authorization: 'Bearer secret' },
    });
    assert.deepEqual(await outcome, { kind: 'exited', code: 7 });
    assert.equal(protocol, 'v5.channel.k8s.io');
    assert.equal(request?.headers['sec-websocket-protocol'], 'v5.channel.k8s.io,v4.channel.k8s.io');
    assert.equal(request?.headers.authorization, 'Bearer secret');
    assert.equal(request?.url, '/api/v1/namespaces/ns/pods/p/exec?command=x');
    assert.deepEqual(opened, ['v5.channel.k8s.io']);
    assert.equal(stdout.data().toString(), 'out');
    assert.equal(stderr.data().toString(), 'err');
    assert.deepEqual(received[0], frame(4, '{"Width":97,"Height":31}'), 'the initial size comes first');
    const stdinBytes = Buffer.concat(received.filter((m) => m[0] === 0).map((m) => m.subarray(1)));
    assert.equal(stdinBytes.toString(), 'hello world');
    assert.ok(received.some((m) => m.equals(frame(4, '{"Width":120,"Height":40}'))), 'a resize follows the change');
    const closeAt = received.findIndex((m) => m.equals(Buffer.from([255, 0])));
    assert.ok(closeAt > 0, 'stdin EOF is sent as the v5 close signal');
    assert.ok(received.slice(closeAt + 1).every((m) => m[0] !== 0), 'no stdin after the close signal');
  });

  test('v4: no close signal at stdin EOF, the stream stays open until the agent ends it', async () => {
    const received: Buffer[] = [];
    v4.onStream = (ws) => {
      ws.on('message', (data: Buffer) => received.push(data));
      setTimeout(() => {
        ws.send(statusFrame(successStatus()));
        ws.close(1000);
      }, 300);
    };
    const { outcome } = run(v4, { stdin: Readable.from([Buffer.from('abc')]) });
    assert.deepEqual(await outcome, { kind: 'exited', code: 0 });
    assert.deepEqual(received, [frame(0, 'abc')]);
  });

  test('without stdin nothing is sent on channel 0', async () => {
    const received: Buffer[] = [];
    v5.onStream = (ws) => {
      ws.on('message', (data: Buffer) => received.push(data));
      setTimeout(() => {
        ws.send(statusFrame(successStatus()));
        ws.close(1000);
      }, 100);
    };
    assert.deepEqual(await run(v5).outcome, { kind: 'exited', code: 0 });
    assert.deepEqual(received, []);
  });

  test('a refused upgrade reports the Status message; a close without status and a failure Status are failures', async () => {
    v5.refuse = { code: 404, body: JSON.stringify(httpStatus(404, 'NotFound', 'pods "p" not found in namespace "ns"')) };
    assert.deepEqual(await run(v5).outcome, { kind: 'failed', message: 'pods "p" not found in namespace "ns"' });
    v5.refuse = undefined;

    v5.onStream = (ws) => ws.close(1011, 'boom');
    assert.deepEqual(await run(v5).outcome, { kind: 'failed', message: 'the agent closed the stream without an exit status (close code 1011: boom)' });

    v5.onStream = (ws) => {
      ws.send(statusFrame(failureStatus('ServiceUnavailable', 'the agent is shutting down')));
      ws.close(1000);
    };
    assert.deepEqual(await run(v5).outcome, { kind: 'failed', message: 'the agent is shutting down' });

    v5.onStream = (ws) => ws.send('text on a binary protocol');
    const outcome = await run(v5).outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match((outcome as { message: string }).message, /^protocol error: text message on binary subprotocol/);
  });

  test('an unreachable agent is a failure naming the address', async () => {
    const outcome = await openExecStream({ url: 'ws://127.0.0.1:1/x', headers: {}, tls: { rejectUnauthorized: true }, stdin: null, stdout: sink(), stderr: sink() }).outcome;
    assert.equal(outcome.kind, 'failed');
    assert.match((outcome as { message: string }).message, /cannot connect to 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });

  test('output backpressure: a slow stdout gets every byte in order', async () => {
    const payload = randomBytes(4 * 1024 * 1024);
    v5.onStream = (ws) => {
      for (let offset = 0; offset < payload.length; offset += 32 * 1024) ws.send(frame(1, payload.subarray(offset, offset + 32 * 1024)));
      ws.send(statusFrame(successStatus()));
      ws.close(1000);
    };
    const stdout = sink({ delayMs: 1, highWaterMark: 64 * 1024 });
    const { outcome } = run(v5, { stdout });
    assert.deepEqual(await outcome, { kind: 'exited', code: 0 });
    assert.equal(stdout.data().length, payload.length, 'every byte arrived');
    assert.equal(createHash('sha256').update(stdout.data()).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    assert.ok(stdout.maxBuffered() < 1024 * 1024, `the socket was not paused: up to ${stdout.maxBuffered()} bytes waited for stdout`);
  });

  test('output backpressure with many small frames: one drain listener per writer, not one per frame', async () => {
    const lines = Array.from({ length: 2_000 }, (_, i) => `line ${i}\n`);
    v5.onStream = (ws) => {
      for (const line of lines) ws.send(frame(1, line));
      ws.send(statusFrame(successStatus()));
      ws.close(1000);
    };
    const stdout = sink({ delayMs: 1, highWaterMark: 16 });
    let mostDrainListeners = 0;
    const write = stdout.write.bind(stdout) as (...args: unknown[]) => boolean;
    stdout.write = ((...args: unknown[]) => {
      const ok = write(...args);
      mostDrainListeners = Math.max(mostDrainListeners, stdout.listenerCount('drain'));
      return ok;
    }) as typeof stdout.write;
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const { outcome } = run(v5, { stdout });
      assert.deepEqual(await outcome, { kind: 'exited', code: 0 });
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(stdout.data().toString(), lines.join(''));
    assert.ok(mostDrainListeners <= 1, `${mostDrainListeners} drain listeners at once`);
    assert.deepEqual(warnings, []);
  });

  test('stdin backpressure: while the agent does not read, stdin is not read much beyond the high-water mark', async () => {
    const total = 256 * 1024 * 1024;
    let produced = 0;
    const stdin = new Readable({
      read() {
        if (produced >= total) {
          this.push(null);
          return;
        }
        produced += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024, 7));
      },
    });
    let serverSocket: WebSocket | undefined;
    v5.onStream = (ws) => {
      serverSocket = ws;
      ws.pause(); // the agent stops reading: the socket fills up
    };
    const { outcome } = run(v5, { stdin });
    await new Promise((done) => setTimeout(done, 1500));
    assert.ok(serverSocket, 'the stream was opened');
    assert.ok(produced < 64 * 1024 * 1024, `stdin was read up to ${produced} bytes while nothing was taken (high-water mark ${STDIN_HIGH_WATER_MARK})`);
    assert.ok(produced >= STDIN_HIGH_WATER_MARK, 'stdin was read up to the high-water mark');
    const readBefore = produced;
    await new Promise((done) => setTimeout(done, 300));
    assert.equal(produced, readBefore, 'stdin stays paused');
    serverSocket.send(statusFrame(successStatus()));
    serverSocket.close(1000);
    serverSocket.terminate();
    const result = await outcome;
    assert.ok(result.kind === 'exited' || result.kind === 'failed');
  });
});
