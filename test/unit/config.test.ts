// Unit tests for settings loading (src/config/load.ts, src/config/settings.ts): defaults, the layering
// defaults ← YAML file ← EXECLET_* env ← flags, validation, and error messages naming setting + source.
// Every call passes an explicit env object; process.env is never read or changed by these tests.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import { listenFailure } from '../../src/cli/listen-failure.js';
import { ConfigError, loadSettings } from '../../src/config/load.js';
import { ForbiddenYamlKey, parseYaml } from '../../src/config/yaml.js';
import { defaultSettings, SETTINGS, splitListen } from '../../src/config/settings.js';

let dir: string;
let fileCount = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'execlet-config-test-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a YAML config file in the temp dir and returns its path. */
function configFile(text: string): string {
  const path = join(dir, `config-${++fileCount}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** loadSettings must throw a ConfigError whose message matches every pattern. */
function assertConfigError(fn: () => unknown, ...patterns: Array<string | RegExp>): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  for (const pattern of patterns) {
    if (typeof pattern === 'string') assert.ok(caught.message.includes(pattern), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(pattern)}`);
    else assert.match(caught.message, pattern);
  }
  return caught;
}

describe('defaults', () => {
  it('listens on 127.0.0.1:10350, uses the default docker socket and the lowercased hostname', () => {
    const { settings, sources, printConfig, help } = loadSettings([], {});
    assert.equal(settings.listen, '127.0.0.1:10350');
    assert.equal(settings.dockerHost, 'unix:///var/run/docker.sock');
    assert.equal(settings.nodeName, hostname().toLowerCase());
    assert.deepEqual(settings.tls, {});
    assert.equal(settings.tokenFile, undefined);
    assert.equal(settings.insecureSelfSignedOnNetwork, false);
    assert.equal(settings.logLevel, 'info');
    assert.equal(settings.killGraceMs, 1000);
    assert.equal(sources.size, 0, 'nothing was set explicitly');
    assert.equal(printConfig, false);
    assert.equal(help, false);
  });

  it('takes dockerHost from DOCKER_HOST, ignoring an empty DOCKER_HOST', () => {
    assert.equal(loadSettings([], { DOCKER_HOST: 'tcp://10.0.0.5:2375' }).settings.dockerHost, 'tcp://10.0.0.5:2375');
    assert.equal(loadSettings([], { DOCKER_HOST: '' }).settings.dockerHost, 'unix:///var/run/docker.sock');
  });

  it('EXECLET_DOCKER_HOST and --docker-host override DOCKER_HOST', () => {
    const env = { DOCKER_HOST: 'tcp://10.0.0.5:2375', EXECLET_DOCKER_HOST: 'unix:///run/env.sock' };
    assert.equal(loadSettings([], env).settings.dockerHost, 'unix:///run/env.sock');
    assert.equal(loadSettings(['--docker-host', 'unix:///run/flag.sock'], env).settings.dockerHost, 'unix:///run/flag.sock');
  });

  it('puts the state dir under /var/lib as root, else under XDG_STATE_HOME', () => {
    const isRoot = process.getuid?.() === 0;
    const stateDir = defaultSettings({ XDG_STATE_HOME: '/xdg/state' }).stateDir;
    assert.equal(stateDir, isRoot ? '/var/lib/execlet' : '/xdg/state/execlet');
  });

  it('returns a fresh object each time (loading never mutates shared defaults)', () => {
    const a = defaultSettings({});
    const b = defaultSettings({});
    assert.notEqual(a, b);
    assert.notEqual(a.tls, b.tls);
    loadSettings(['--tls-cert-file', '/c.pem', '--tls-key-file', '/k.pem'], {});
    assert.deepEqual(loadSettings([], {}).settings.tls, {});
  });

  it('every descriptor has a unique flag and env name derived consistently', () => {
    assert.equal(new Set(SETTINGS.map((s) => s.flag)).size, SETTINGS.length);
    assert.equal(new Set(SETTINGS.map((s) => s.env)).size, SETTINGS.length);
    for (const s of SETTINGS) {
      assert.match(s.flag, /^--[a-z][a-z0-9-]*$/);
      assert.match(s.env, /^EXECLET_[A-Z0-9_]+$/);
    }
  });
});

describe('layering: defaults ← file ← env ← flags', () => {
  // One string (listen), one boolean (insecureSelfSignedOnNetwork), one integer (killGraceMs) and a
  // nested string (tls.certFile), each set at every layer so only the precedence decides.
  const fileText = [
    'listen: 127.0.0.1:1001',
    'insecureSelfSignedOnNetwork: true',
    'killGraceMs: 111',
    'tls:',
    '  certFile: /file/cert.pem',
    '  keyFile: /file/key.pem',
    '',
  ].join('\n');

  it('the config file overrides defaults (via --config)', () => {
    const path = configFile(fileText);
    const { settings, sources } = loadSettings(['--config', path], {});
    assert.equal(settings.listen, '127.0.0.1:1001');
    assert.equal(settings.insecureSelfSignedOnNetwork, true);
    assert.equal(settings.killGraceMs, 111);
    assert.deepEqual(settings.tls, { certFile: '/file/cert.pem', keyFile: '/file/key.pem' });
    assert.equal(sources.get('listen'), `config file ${path}`);
    assert.equal(sources.get('tls.certFile'), `config file ${path}`);
    assert.equal(settings.logLevel, 'info', 'settings absent from the file keep their defaults');
    assert.equal(sources.has('logLevel'), false);
  });

  it('the config file is also found through EXECLET_CONFIG; --config wins over it', () => {
    const fromEnv = configFile('listen: 127.0.0.1:2002\n');
    const fromFlag = configFile('listen: 127.0.0.1:3003\n');
    assert.equal(loadSettings([], { EXECLET_CONFIG: fromEnv }).settings.listen, '127.0.0.1:2002');
    const both = loadSettings(['--config', fromFlag], { EXECLET_CONFIG: fromEnv });
    assert.equal(both.settings.listen, '127.0.0.1:3003');
    assert.equal(both.sources.get('listen'), `config file ${fromFlag}`);
  });

  it('an empty EXECLET_CONFIG means no config file', () => {
    assert.equal(loadSettings([], { EXECLET_CONFIG: '' }).settings.listen, '127.0.0.1:10350');
  });

  it('env overrides the file, per setting, including nested tls.certFile (tls.keyFile keeps the file value)', () => {
    const path = configFile(fileText);
    const env = {
      EXECLET_CONFIG: path,
      EXECLET_LISTEN: '127.0.0.1:4004',
      EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK: 'false',
      EXECLET_KILL_GRACE_MS: '444',
      EXECLET_TLS_CERT_FILE: '/env/cert.pem',
    };
    const { settings, sources } = loadSettings([], env);
    assert.equal(settings.listen, '127.0.0.1:4004');
    assert.equal(settings.insecureSelfSignedOnNetwork, false);
    assert.equal(settings.killGraceMs, 444);
    assert.deepEqual(settings.tls, { certFile: '/env/cert.pem', keyFile: '/file/key.pem' });
    assert.equal(sources.get('listen'), 'EXECLET_LISTEN');
    assert.equal(sources.get('insecureSelfSignedOnNetwork'), 'EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK');
    assert.equal(sources.get('killGraceMs'), 'EXECLET_KILL_GRACE_MS');
    assert.equal(sources.get('tls.certFile'), 'EXECLET_TLS_CERT_FILE');
    assert.equal(sources.get('tls.keyFile'), `config file ${path}`);
  });

  it('flags override env and file, per setting', () => {
    const path = configFile(fileText.replace('insecureSelfSignedOnNetwork: true', 'insecureSelfSignedOnNetwork: false'));
    const env = {
      EXECLET_LISTEN: '127.0.0.1:4004',
      EXECLET_KILL_GRACE_MS: '444',
      EXECLET_TLS_CERT_FILE: '/env/cert.pem',
    };
    const argv = [
      '--config',
      path,
      '--listen',
      '127.0.0.1:5005',
      '--insecure-self-signed-on-network',
      '--kill-grace-ms',
      '555',
      '--tls-cert-file',
      '/flag/cert.pem',
    ];
    const { settings, sources } = loadSettings(argv, env);
    assert.equal(settings.listen, '127.0.0.1:5005');
    assert.equal(settings.insecureSelfSignedOnNetwork, true);
    assert.equal(settings.killGraceMs, 555);
    assert.deepEqual(settings.tls, { certFile: '/flag/cert.pem', keyFile: '/file/key.pem' });
    assert.equal(sources.get('listen'), '--listen');
    assert.equal(sources.get('insecureSelfSignedOnNetwork'), '--insecure-self-signed-on-network');
    assert.equal(sources.get('killGraceMs'), '--kill-grace-ms');
    assert.equal(sources.get('tls.certFile'), '--tls-cert-file');
  });

  it('accepts --flag=value as well as --flag value', () => {
    assert.equal(loadSettings(['--listen=127.0.0.1:6006'], {}).settings.listen, '127.0.0.1:6006');
  });

  it('an empty config file is no settings at all', () => {
    const path = configFile('');
    assert.equal(loadSettings(['--config', path], {}).settings.listen, '127.0.0.1:10350');
  });
});

describe('error messages name the setting and its source', () => {
  it('--max-connections at or below --max-sessions: no room for anything but sessions', () => {
    assertConfigError(() => loadSettings(['--max-connections', '1000'], {}), 'invalid setting maxConnections (from --max-connections): 1000', 'sessions.maxPerNode (1000)');
    assertConfigError(() => loadSettings(['--max-sessions', '5000', '--max-connections', '4096'], {}), 'invalid setting maxConnections (from --max-connections): 4096', 'sessions.maxPerNode (5000)');
    assert.equal(loadSettings(['--max-sessions', '5000', '--max-connections', '10000'], {}).settings.maxConnections, 10000);
    // Left at its default, the cap follows a session limit raised past it (configs from before it).
    assert.equal(loadSettings(['--max-sessions', '5000'], {}).settings.maxConnections, 5000 + 1024);
    assert.equal(loadSettings([], { EXECLET_MAX_SESSIONS: '4096' }).settings.maxConnections, 4096 + 1024);
    assert.equal(loadSettings([], {}).settings.maxConnections, 4096);
  });

  it('an audit redaction pattern keeps its commas: one per flag, one per line in the environment', () => {
    assert.deepEqual(loadSettings(['--audit-redact', 'pin=\\d{4,8}', '--audit-redact', 'a,b'], {}).settings.audit.redact, ['pin=\\d{4,8}', 'a,b']);
    assert.deepEqual(loadSettings([], { EXECLET_AUDIT_REDACT: 'pin=\\d{4,8}\nkey=[a-z]{2,}\n' }).settings.audit.redact, ['pin=\\d{4,8}', 'key=[a-z]{2,}']);
    // Other lists are still comma-separated.
    assert.deepEqual(loadSettings(['--allowed-origins', 'https://a.example,https://b.example'], {}).settings.allowedOrigins, ['https://a.example', 'https://b.example']);
  });

  it('an empty boolean in the environment is an error, not true', () => {
    assertConfigError(() => loadSettings([], { EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK: '' }), 'invalid setting insecureSelfSignedOnNetwork (from EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK): expected true or false, got ""');
  });

  it('a reaper interval beyond a day is refused (a timer that long would run every millisecond)', () => {
    assertConfigError(() => loadSettings(['--reaper-interval-seconds', '2592000'], {}), 'invalid setting reaperIntervalSeconds (from --reaper-interval-seconds): ');
    assert.equal(loadSettings(['--reaper-interval-seconds', '86400'], {}).settings.reaperIntervalSeconds, 86_400);
  });

  it('--listen', () => {
    assertConfigError(() => loadSettings(['--listen', 'nope'], {}), 'invalid setting listen (from --listen): ', 'HOST:PORT');
  });

  it('EXECLET_LISTEN', () => {
    assertConfigError(() => loadSettings([], { EXECLET_LISTEN: 'nope' }), 'invalid setting listen (from EXECLET_LISTEN): ');
  });

  it('the config file', () => {
    const path = configFile('listen: nope\n');
    assertConfigError(() => loadSettings(['--config', path], {}), `invalid setting listen (from config file ${path}): `);
  });

  it('names the layer that supplied the final (bad) value, not an overridden one', () => {
    const path = configFile('listen: 127.0.0.1:1\n');
    assertConfigError(() => loadSettings(['--config', path], { EXECLET_LISTEN: 'bad' }), '(from EXECLET_LISTEN)');
    const badFile = configFile('listen: bad\n');
    // A good flag over a bad file value: valid, no error at all.
    assert.equal(loadSettings(['--config', badFile, '--listen', '127.0.0.1:9'], {}).settings.listen, '127.0.0.1:9');
  });

  it('a nested setting from the file is named by its dotted path', () => {
    const path = configFile('tls:\n  certFile: ""\n');
    assertConfigError(() => loadSettings(['--config', path], {}), `invalid setting tls.certFile (from config file ${path}): `, 'must not be empty');
  });

  it('integers: a non-integer text names the setting and source', () => {
    assertConfigError(() => loadSettings(['--kill-grace-ms', '1.5'], {}), 'invalid setting killGraceMs (from --kill-grace-ms): expected an integer, got "1.5"');
    assertConfigError(() => loadSettings([], { EXECLET_KILL_GRACE_MS: '1e3' }), 'invalid setting killGraceMs (from EXECLET_KILL_GRACE_MS): expected an integer');
    assertConfigError(() => loadSettings([], { EXECLET_KILL_GRACE_MS: '' }), '(from EXECLET_KILL_GRACE_MS)');
  });

  it('integers: out of range and wrong YAML type', () => {
    assertConfigError(() => loadSettings(['--kill-grace-ms', '60001'], {}), 'invalid setting killGraceMs (from --kill-grace-ms)');
    assertConfigError(() => loadSettings(['--kill-grace-ms=-1'], {}), 'invalid setting killGraceMs (from --kill-grace-ms)');
    assert.equal(loadSettings(['--kill-grace-ms', ' 60000 '], {}).settings.killGraceMs, 60000, 'surrounding spaces are trimmed');
    const path = configFile('killGraceMs: "500"\n');
    assertConfigError(() => loadSettings(['--config', path], {}), `invalid setting killGraceMs (from config file ${path})`);
  });

  it('an enum setting lists nothing surprising and names the source', () => {
    assertConfigError(() => loadSettings([], { EXECLET_LOG_LEVEL: 'loud' }), 'invalid setting logLevel (from EXECLET_LOG_LEVEL)');
  });

  it('a nodeName that is not a DNS subdomain is refused', () => {
    assertConfigError(() => loadSettings(['--node-name', 'Upper_Case'], {}), 'invalid setting nodeName (from --node-name)', 'DNS subdomain');
    for (const name of ['a..b', '.a', 'a.', 'a.-b', 'a-.b', `${'a'.repeat(254)}`]) {
      assertConfigError(() => loadSettings(['--node-name', name], {}), 'invalid setting nodeName (from --node-name)', 'DNS subdomain');
    }
    for (const name of ['node-1', 'node-1.eu-west.example', 'a', '1.2.3.4']) assert.equal(loadSettings(['--node-name', name], {}).settings.nodeName, name);
  });

  it('an empty --config is refused, not taken for no file (which would hide EXECLET_CONFIG)', () => {
    assertConfigError(() => loadSettings(['--config', ''], { EXECLET_CONFIG: '/etc/execlet/config.yaml' }), '--config needs the path of a config file');
    assertConfigError(() => loadSettings(['--config='], {}), '--config needs the path of a config file');
  });

  it('reports every invalid setting, one per line', () => {
    const err = assertConfigError(() => loadSettings(['--listen', 'x'], { EXECLET_LOG_LEVEL: 'loud' }), 'listen', 'logLevel');
    assert.equal(err.message.split('\n').length, 2);
  });

  it(
    'an invalid DOCKER_HOST is named as the source of the bad dockerHost',

    () => {
      assertConfigError(() => loadSettings([], { DOCKER_HOST: 'ssh://me@remote' }), 'invalid setting dockerHost (from DOCKER_HOST)');
    },
  );
});

describe('config file problems', () => {
  it('refuses an unknown top-level key, naming it', () => {
    const path = configFile('listen: 127.0.0.1:1\nlistn: 127.0.0.1:2\n');
    assertConfigError(() => loadSettings(['--config', path], {}), 'unknown setting: listn');
  });

  it('refuses several unknown keys, naming them all', () => {
    const path = configFile('foo: 1\nbar: 2\n');
    assertConfigError(() => loadSettings(['--config', path], {}), 'unknown settings: ', 'foo', 'bar');
  });

  it('refuses an unknown key nested under tls, naming the key and where it is', () => {
    const path = configFile('tls:\n  certFile: /c.pem\n  keyFil: /k.pem\n');
    assertConfigError(() => loadSettings(['--config', path], {}), 'unknown setting in tls: keyFil');
  });

  it('refuses a YAML sequence or scalar instead of a mapping', () => {
    for (const text of ['- listen\n- 127.0.0.1:1\n', 'just a string\n', '42\n']) {
      const path = configFile(text);
      assertConfigError(() => loadSettings(['--config', path], {}), `config file ${path} must hold a mapping of settings`);
    }
  });

  it('refuses invalid YAML, naming the file', () => {
    for (const text of ['listen: "unterminated\n', 'listen: 1\nlisten: 2\n', 'a: [b\n']) {
      const path = configFile(text);
      assertConfigError(() => loadSettings(['--config', path], {}), `config file ${path} is not valid YAML: `);
    }
  });

  it('refuses a __proto__ key, at the top or nested, and no object is changed by it', () => {
    for (const [text, at] of [
      ['__proto__:\n  polluted: yes\n', '__proto__'],
      ['tls:\n  __proto__: {polluted: yes}\n', 'tls.__proto__'],
      ['{"sessions": {"__proto__": {"polluted": true}}}', 'sessions.__proto__'],
    ] as const) {
      const path = configFile(text);
      assertConfigError(() => loadSettings(['--config', path], {}), `config file ${path} is not valid YAML: the key "__proto__" (at ${at}) is not allowed`);
      assert.equal(({} as Record<string, unknown>)['polluted'], undefined, 'Object.prototype is untouched');
    }
  });

  it('refuses an unknown tag (its text would otherwise be the value, with a warning nobody reads), naming line and column', () => {
    const path = configFile('listen: !custom 127.0.0.1:1\n');
    assertConfigError(() => loadSettings(['--config', path], {}), `config file ${path} is not valid YAML: Unresolved tag: !custom at line 1, column 9`);
  });

  it('a document whose aliases make a cycle is walked once per object: no stack overflow, and a __proto__ in it is still found', () => {
    assert.doesNotThrow(() => parseYaml('a: &x {b: *x}\n'));
    assert.throws(() => parseYaml('a: &x {b: *x, __proto__: 1}\n'), ForbiddenYamlKey);
  });

  it('refuses a missing file, from --config and from EXECLET_CONFIG', () => {
    const missing = join(dir, 'does-not-exist.yaml');
    assertConfigError(() => loadSettings(['--config', missing], {}), `cannot read config file ${missing}: `, 'ENOENT');
    assertConfigError(() => loadSettings([], { EXECLET_CONFIG: missing }), `cannot read config file ${missing}`);
  });

  it('refuses a tls value that is not a mapping', () => {
    const path = configFile('tls: /c.pem\n');
    assertConfigError(() => loadSettings(['--config', path], {}), `invalid setting tls (from config file ${path})`);
  });
});

describe('flags', () => {
  it('refuses an unknown flag, pointing at --help', () => {
    assertConfigError(() => loadSettings(['--bogus'], {}), "'--bogus'", '(see execlet serve --help)');
  });

  it('refuses a positional argument', () => {
    assertConfigError(() => loadSettings(['serve-me'], {}), 'serve-me', '(see execlet serve --help)');
  });

  it('refuses a string flag without its value', () => {
    assertConfigError(() => loadSettings(['--listen'], {}), '--listen');
  });

  it('parses --print-config and --help', () => {
    assert.equal(loadSettings(['--print-config'], {}).printConfig, true);
    assert.equal(loadSettings(['--print-config'], {}).help, false);
    assert.equal(loadSettings(['--help'], {}).help, true);
    assert.equal(loadSettings(['--help'], {}).printConfig, false);
  });

  it('--print-config still validates the settings it would print', () => {
    assertConfigError(() => loadSettings(['--print-config', '--listen', 'x'], {}), 'invalid setting listen (from --listen)');
  });
});

describe('listen address', () => {
  const accepted = ['127.0.0.1:10350', '0.0.0.0:0', 'localhost:65535', '[::1]:10350', '[::]:443', 'node-1.example:8443'];
  for (const listen of accepted) {
    it(`accepts ${listen}`, () => {
      assert.equal(loadSettings(['--listen', listen], {}).settings.listen, listen);
    });
  }

  const refused: Array<[string, string]> = [
    ['127.0.0.1:65536', 'port must be 0–65535'],
    ['127.0.0.1:99999', 'port must be 0–65535'],
    ['127.0.0.1:123456', 'HOST:PORT'],
    ['127.0.0.1', 'HOST:PORT'],
    [':10350', 'HOST:PORT'],
    ['::1:10350', 'HOST:PORT'],
    ['[::1]', 'HOST:PORT'],
    ['127.0.0.1:http', 'HOST:PORT'],
    ['127.0.0.1:', 'HOST:PORT'],
    ['my host:80', 'HOST:PORT'],
    ['[::::]:0', 'a host in brackets must be an IPv6 address'],
    ['[1.2.3.4]:0', 'a host in brackets must be an IPv6 address'],
  ];
  for (const [listen, why] of refused) {
    it(`refuses ${JSON.stringify(listen)}`, () => {
      assertConfigError(() => loadSettings(['--listen', listen], {}), 'invalid setting listen (from --listen)', why);
    });
  }

  it('a listen that fails is an error naming the setting: a host that does not resolve, an address in use or not here', () => {
    const failure = (err: object) => listenFailure(Object.assign(new Error('raw'), err), 'nosuch.invalid:0')?.message;
    assert.equal(
      failure({ syscall: 'getaddrinfo', code: 'ENOTFOUND', hostname: 'nosuch.invalid' }),
      'cannot listen on nosuch.invalid:0: the host nosuch.invalid does not resolve (ENOTFOUND) (setting listen, --listen)',
    );
    assert.match(failure({ syscall: 'listen', code: 'EADDRINUSE' })!, /: the address is already in use \(is another execlet running\?\) \(setting listen, --listen\)$/);
    assert.match(failure({ syscall: 'listen', code: 'EADDRNOTAVAIL' })!, /: no interface has that address/);
    assert.equal(failure({ code: 'EISDIR' }), undefined, 'not about the address: passed on');
  });

  it('splitListen strips IPv6 brackets and parses the port', () => {
    assert.deepEqual(splitListen('[::1]:10350'), { host: '::1', port: 10350 });
    assert.deepEqual(splitListen('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(splitListen('localhost:8443'), { host: 'localhost', port: 8443 });
  });
});

describe('boolean environment values', () => {
  const env = 'EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK';
  const truthy = ['true', 'TRUE', 'True', '1', 'yes', 'on', ' true '];
  const falsy = ['false', 'FALSE', '0', 'no', 'off'];
  for (const value of truthy) {
    it(`${JSON.stringify(value)} is true`, () => {
      assert.equal(loadSettings([], { [env]: value }).settings.insecureSelfSignedOnNetwork, true);
    });
  }
  for (const value of falsy) {
    it(`${JSON.stringify(value)} is false, even over a true config file`, () => {
      const path = configFile('insecureSelfSignedOnNetwork: true\n');
      assert.equal(loadSettings(['--config', path], { [env]: value }).settings.insecureSelfSignedOnNetwork, false);
    });
  }
  it('a value that is neither is refused, naming the variable and the value', () => {
    assertConfigError(() => loadSettings([], { [env]: 'maybe' }), `invalid setting insecureSelfSignedOnNetwork (from ${env}): expected true or false, got "maybe"`);
  });
  it('a YAML string is not coerced to a boolean', () => {
    const path = configFile('insecureSelfSignedOnNetwork: "yes"\n');
    assertConfigError(() => loadSettings(['--config', path], {}), 'invalid setting insecureSelfSignedOnNetwork (from config file');
  });
  it('a boolean flag takes no value, and the error names its --no- form', () => {
    assertConfigError(() => loadSettings(['--insecure-self-signed-on-network=false'], {}), 'to turn it off, give --no-insecure-self-signed-on-network');
  });
  it('--no-FLAG sets a boolean false over the config file and the environment', () => {
    const path = configFile('audit:\n  failClosed: true\n  stdout: true\n');
    const loaded = loadSettings(['--config', path, '--no-audit-fail-closed'], { EXECLET_AUDIT_STDOUT: 'true' });
    assert.equal(loaded.settings.audit.failClosed, false);
    assert.equal(loaded.settings.audit.stdout, true);
    assert.equal(loadSettings(['--config', path, '--no-audit-stdout'], { EXECLET_AUDIT_STDOUT: 'true' }).settings.audit.stdout, false);
  });
  it('a flag and its --no- form together are refused', () => {
    assertConfigError(() => loadSettings(['--audit-stdout', '--no-audit-stdout'], {}), '--audit-stdout and --no-audit-stdout are both given');
  });
  it('--no- exists only for yes/no settings', () => {
    assertConfigError(() => loadSettings(['--no-listen'], {}), "Unknown option '--no-listen'");
  });
});
