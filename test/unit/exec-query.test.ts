// Unit tests for exec query parsing (src/server/exec-query.ts): the apiserver's bool conversion
// (absent/0/false false, anything else — even empty — true; first value wins), the kubelet's (only
// `1`), command/container handling and the refusals. Input is what fastify's querystring parser gives.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { ExecQueryError, MAX_ARGUMENT_BYTES, parseApiserverExecQuery, parseKubeletExecQuery, type ExecRequestOptions } from '../../src/server/exec-query.js';

type Query = Record<string, string | string[]>;

/** The fields these tests are about (other fields, e.g. namespaces, are checked on their own). */
function core(q: ExecRequestOptions): Pick<ExecRequestOptions, 'command' | 'container' | 'stdin' | 'stdout' | 'stderr' | 'tty'> {
  return { command: q.command, container: q.container, stdin: q.stdin, stdout: q.stdout, stderr: q.stderr, tty: q.tty };
}

function refused(fn: () => ExecRequestOptions, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ExecQueryError, `expected ExecQueryError, got ${String(err)}`);
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`);
    return true;
  });
}

describe('parseApiserverExecQuery: bool rules (Convert_Slice_string_To_bool)', () => {
  const stdoutFor = (value: string | string[] | undefined): boolean => {
    // stdin=true keeps the request valid whatever stdout turns out to be.
    const query: Query = { command: 'ls', stdin: 'true' };
    if (value !== undefined) query.stdout = value;
    return parseApiserverExecQuery(query).stdout;
  };

  it('absent is false', () => assert.equal(stdoutFor(undefined), false));
  for (const value of ['0', 'false', 'FALSE', 'False', 'fAlSe']) {
    it(`${JSON.stringify(value)} is false`, () => assert.equal(stdoutFor(value), false));
  }
  for (const value of ['true', 'TRUE', '1', 'yes', 'no', 'off', '', '00', ' false', '2']) {
    it(`${JSON.stringify(value)} is true`, () => assert.equal(stdoutFor(value), true));
  }
  it('a repeated parameter: the first value wins', () => {
    assert.equal(stdoutFor(['false', 'true']), false);
    assert.equal(stdoutFor(['true', 'false']), true);
    assert.equal(stdoutFor(['', '0']), true);
  });
  it('applies to every stream flag and tty', () => {
    const all = parseApiserverExecQuery({ command: 'sh', stdin: '', stdout: '1', tty: 'yes' });
    assert.equal(all.stdin, true);
    assert.equal(all.stdout, true);
    assert.equal(all.tty, true);
  });
});

describe('parseApiserverExecQuery: command and container', () => {
  it('keeps a repeated command in order, including empty arguments after the first', () => {
    const q = parseApiserverExecQuery({ command: ['sh', '-c', 'echo "$0" "$1"', '', 'b'], stdout: 'true' });
    assert.deepEqual(q.command, ['sh', '-c', 'echo "$0" "$1"', '', 'b']);
  });
  it('a single command is a one-element argv', () => {
    assert.deepEqual(parseApiserverExecQuery({ command: 'date', stdout: 'true' }).command, ['date']);
  });
  it('container: given, empty → undefined, absent → undefined, repeated → first', () => {
    assert.equal(parseApiserverExecQuery({ command: 'ls', stdout: 'true', container: 'app' }).container, 'app');
    assert.equal(parseApiserverExecQuery({ command: 'ls', stdout: 'true', container: '' }).container, undefined);
    assert.equal(parseApiserverExecQuery({ command: 'ls', stdout: 'true' }).container, undefined);
    assert.equal(parseApiserverExecQuery({ command: 'ls', stdout: 'true', container: ['a', 'b'] }).container, 'a');
  });
  it('ignores unknown parameters', () => {
    const q = parseApiserverExecQuery({ command: 'ls', stdout: 'true', pretty: 'x', input: '1' });
    assert.deepEqual(core(q), { command: ['ls'], container: undefined, stdin: false, stdout: true, stderr: false, tty: false });
  });
});

describe('namespaces (nsenter mode)', () => {
  it('absent is empty; single and repeated values are kept as given, in order', () => {
    assert.deepEqual(parseApiserverExecQuery({ command: 'ls', stdout: 'true' }).namespaces, []);
    assert.deepEqual(parseApiserverExecQuery({ command: 'ls', stdout: 'true', namespaces: 'net,pid' }).namespaces, ['net,pid']);
    assert.deepEqual(parseKubeletExecQuery({ command: 'ls', output: '1', namespaces: ['pid', 'net'] }, 'c').namespaces, ['pid', 'net']);
  });
});

describe('parseApiserverExecQuery: tty and stderr', () => {
  it('drops stderr quietly with a tty (client-node sends stderr=true with tty)', () => {
    const q = parseApiserverExecQuery({ command: 'sh', stdin: 'true', stdout: 'true', stderr: 'true', tty: 'true' });
    assert.deepEqual(core(q), { command: ['sh'], container: undefined, stdin: true, stdout: true, stderr: false, tty: true });
  });
  it('keeps stderr without a tty', () => {
    const q = parseApiserverExecQuery({ command: 'sh', stderr: 'true', tty: 'false' });
    assert.equal(q.stderr, true);
    assert.equal(q.tty, false);
  });
  it('tty with only stderr leaves no stream at all, which is refused', () => {
    refused(() => parseApiserverExecQuery({ command: 'sh', stderr: 'true', tty: 'true' }), 'at least 1 of stdin, stdout, stderr');
  });
});

describe('parseApiserverExecQuery: refusals', () => {
  it('no stream', () => {
    refused(() => parseApiserverExecQuery({ command: 'ls' }), 'you must specify at least 1 of stdin, stdout, stderr');
    refused(() => parseApiserverExecQuery({ command: 'ls', stdin: 'false', stdout: '0', stderr: 'FALSE' }), 'at least 1 of stdin, stdout, stderr');
  });
  it('no command', () => {
    refused(() => parseApiserverExecQuery({ stdout: 'true' }), 'at least one command', '"command"');
    refused(() => parseApiserverExecQuery({ stdout: 'true', command: [] }), 'at least one command');
  });
  it('an empty first command', () => {
    refused(() => parseApiserverExecQuery({ stdout: 'true', command: '' }), 'first "command"', 'must not be empty');
    refused(() => parseApiserverExecQuery({ stdout: 'true', command: ['', 'ls'] }), 'must not be empty');
  });
  it('a NUL byte in any argument, which a program could not receive as the policy saw it', () => {
    refused(() => parseApiserverExecQuery({ stdout: 'true', command: ['grep', 'root\u0000/etc/shadow', 'log'] }), '"command" parameter 2', 'NUL byte');
    refused(() => parseKubeletExecQuery({ output: '1', command: 'a\u0000' }, 'app'), '"command" parameter 1', 'NUL byte');
  });
  it('an argument longer than Linux runs a program with (in bytes: UTF-8)', () => {
    assert.equal(parseApiserverExecQuery({ stdout: 'true', command: ['echo', 'x'.repeat(MAX_ARGUMENT_BYTES)] }).command[1]!.length, MAX_ARGUMENT_BYTES);
    refused(() => parseApiserverExecQuery({ stdout: 'true', command: ['echo', 'x'.repeat(MAX_ARGUMENT_BYTES + 1)] }), '"command" parameter 2', 'longer than 131071 bytes');
    refused(() => parseKubeletExecQuery({ output: '1', command: 'é'.repeat(Math.ceil(MAX_ARGUMENT_BYTES / 2)) }, 'app'), '"command" parameter 1', 'longer than');
  });
  it('a missing query object reads as an empty one', () => {
    refused(() => parseApiserverExecQuery(undefined), 'at least one command');
    refused(() => parseApiserverExecQuery(null), 'at least one command');
  });
  it('a parameter of the wrong shape names the parameter', () => {
    refused(() => parseApiserverExecQuery({ command: 'ls', stdout: { nested: 'x' } }), 'invalid query parameter "stdout"');
  });
});

describe('parseKubeletExecQuery', () => {
  it('only `1` is true: `true` is false', () => {
    const q = parseKubeletExecQuery({ command: 'ls', output: '1', input: 'true', error: 'yes', tty: 'TRUE' }, 'app');
    assert.deepEqual(core(q), { command: ['ls'], container: 'app', stdin: false, stdout: true, stderr: false, tty: false });
  });
  it('an empty value is false (unlike the apiserver)', () => {
    const q = parseKubeletExecQuery({ command: 'ls', output: '1', input: '' }, 'app');
    assert.equal(q.stdin, false);
  });
  it('a repeated parameter: the first value wins', () => {
    assert.equal(parseKubeletExecQuery({ command: 'ls', output: ['1', '0'] }, 'c').stdout, true);
    refused(() => parseKubeletExecQuery({ command: 'ls', output: ['0', '1'] }, 'c'), 'at least 1 of stdin, stdout, stderr');
  });
  it('ignores the apiserver parameter names stdin/stdout', () => {
    refused(() => parseKubeletExecQuery({ command: 'ls', stdout: '1', stdin: '1' }, 'c'), 'at least 1 of stdin, stdout, stderr');
  });
  it('the container comes from the path, not the query', () => {
    assert.equal(parseKubeletExecQuery({ command: 'ls', output: '1', container: 'other' }, 'app').container, 'app');
  });
  it('keeps a repeated command in order', () => {
    assert.deepEqual(parseKubeletExecQuery({ command: ['sh', '-c', 'x'], output: '1' }, 'c').command, ['sh', '-c', 'x']);
  });
  it('drops error quietly with a tty, as the kubelet does', () => {
    const q = parseKubeletExecQuery({ command: 'sh', input: '1', output: '1', error: '1', tty: '1' }, 'c');
    assert.deepEqual(core(q), { command: ['sh'], container: 'c', stdin: true, stdout: true, stderr: false, tty: true });
  });
  it('tty with only error=1 asks for no stream, which is refused', () => {
    refused(() => parseKubeletExecQuery({ command: 'sh', error: '1', tty: '1' }, 'c'), 'at least 1 of stdin, stdout, stderr');
  });
  it('tty with error=true (not 1) is fine: error is simply false', () => {
    const q = parseKubeletExecQuery({ command: 'sh', output: '1', error: 'true', tty: '1' }, 'c');
    assert.equal(q.tty, true);
    assert.equal(q.stderr, false);
  });
  it('refuses no streams, no command and an empty first command', () => {
    refused(() => parseKubeletExecQuery({ command: 'ls', tty: '1' }, 'c'), 'at least 1 of stdin, stdout, stderr');
    refused(() => parseKubeletExecQuery({ output: '1' }, 'c'), 'at least one command');
    refused(() => parseKubeletExecQuery({ command: ['', 'x'], output: '1' }, 'c'), 'must not be empty');
  });
});
