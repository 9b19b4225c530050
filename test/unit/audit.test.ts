// Unit tests for the audit log (src/auth/audit.ts): JSON lines with the record fields and a time,
// argv redaction (so no bearer token or password reaches the log), size rotation with a keep limit,
// failure reporting without throwing, the stdout sink, and the file's permissions.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { REDACTED, redactArgv, redactSecrets } from '../../src/auth/argv-redaction.js';
import { AuditLog, type AuditIdentity, type AuditRecord } from '../../src/auth/audit.js';

const BEARER = 'eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig_abcdef0123456789';

const identity: AuditIdentity = { user: 'alice', groups: ['devs'], method: 'token-file', address: '10.0.0.7:51234' };
const target = { node: 'node-1', namespace: 'default', pod: 'web-0', container: 'app', containerId: 'abc123', pid: 4242 };

function start(command: string[] = ['sh', '-c', 'echo hi'], sessionId = 's-1'): Extract<AuditRecord, { event: 'session.start' }> {
  return { event: 'session.start', sessionId, identity, target, mode: 'container', command, tty: false, stdin: true };
}

function end(): Extract<AuditRecord, { event: 'session.end' }> {
  return {
    event: 'session.end',
    sessionId: 's-1',
    identity,
    target,
    mode: 'container',
    command: ['sh'],
    tty: true,
    stdin: true,
    outcome: { reason: 'exited', exitCode: 0, signal: null },
    durationMs: 1234,
    bytesIn: 10,
    bytesOut: 20,
  };
}

function denied(): Extract<AuditRecord, { event: 'access.denied' }> {
  return {
    event: 'access.denied',
    identity: null,
    target: null,
    mode: null,
    command: ['ls'],
    code: 401,
    reason: 'Unauthorized',
    message: 'missing bearer token',
  };
}

function readLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function collectingStream(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'execlet-audit-test-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function logPath(): string {
  return join(dir, `case-${++counter}`, 'audit.log');
}

describe('redactSecrets (the built-in rules)', () => {
  const redact = (argv: string[]): string[] => redactSecrets(argv);

  it('flag=value: keeps the flag, replaces the value', () => {
    assert.deepEqual(redact(['mysql', '--password=hunter2']), ['mysql', `--password=${REDACTED}`]);
    assert.deepEqual(redact(['x', '--api-key=k', '--client_secret=s', '-token=t', '--DB.PASSWD=p', '--credentials=c']), [
      'x',
      `--api-key=${REDACTED}`,
      `--client_secret=${REDACTED}`,
      `-token=${REDACTED}`,
      `--DB.PASSWD=${REDACTED}`,
      `--credentials=${REDACTED}`,
    ]);
  });

  it('a bare long flag: keeps the flag, replaces the next element whatever it is', () => {
    assert.deepEqual(redact(['mysql', '--password', 'hunter2', '-h', 'db']), ['mysql', '--password', REDACTED, '-h', 'db']);
    assert.deepEqual(redact(['tool', '--client-secret', '--looks-like-a-flag', 'next']), ['tool', '--client-secret', REDACTED, 'next']);
    assert.deepEqual(redact(['tool', '--token']), ['tool', '--token'], 'nothing follows: nothing to redact');
  });

  it('environment-style NAME=value when the name is a secret word', () => {
    assert.deepEqual(redact(['env', 'TOKEN=abc', 'DB_PASSWORD=x', 'aws_secret_access_key=y', 'PATH=/usr/bin', 'FOO=bar', 'app']), [
      'env',
      `TOKEN=${REDACTED}`,
      `DB_PASSWORD=${REDACTED}`,
      `aws_secret_access_key=${REDACTED}`,
      'PATH=/usr/bin',
      'FOO=bar',
      'app',
    ]);
  });

  it('HTTP Authorization values and bearer tokens', () => {
    assert.deepEqual(redact(['curl', '-H', `Authorization: Bearer ${BEARER}`, 'https://api']), [
      'curl',
      '-H',
      `Authorization: Bearer ${REDACTED}`,
      'https://api',
    ]);
    assert.deepEqual(redact([`--header=authorization: Basic dXNlcjpwYXNz`]), [`--header=authorization: Basic ${REDACTED}`]);
    assert.deepEqual(redact([`Proxy-Authorization: xyz`]), [`Proxy-Authorization: ${REDACTED}`]);
    assert.deepEqual(redact([`bearer ${BEARER}`]), [`bearer ${REDACTED}`]);
  });

  it('URL passwords', () => {
    assert.deepEqual(redact(['git', 'clone', 'https://bob:s3cret@git.example.com/repo.git']), ['git', 'clone', `https://bob:${REDACTED}`]);
    assert.deepEqual(redact(['curl', 'https://git.example.com:8443/repo.git']), ['curl', 'https://git.example.com:8443/repo.git']);
  });

  it('ordinary arguments are untouched', () => {
    const argv = ['sh', '-c', 'ls -la /var/log && echo done', '--verbose', '-p', '8080', 'key', '--output=json', 'a=b', '', 'Bearer'];
    assert.deepEqual(redact(argv), argv);
  });

  it('secrets spanning lines are redacted whole', () => {
    assert.deepEqual(redact(['--secret=line1\nline2']), [`--secret=${REDACTED}`]);
  });

  it('custom patterns: group 1 kept, no group replaces the element, a named `flag` group redacts the next element', () => {
    const patterns = [/^(-p)\S+$/, /^hunter\d$/, /^(?<flag>--pin)$/];
    assert.deepEqual(redactArgv(['mysql', '-psecret', 'hunter2', '--pin', '1234', 'ok'], patterns), ['mysql', `-p${REDACTED}`, REDACTED, '--pin', REDACTED, 'ok']);
  });

  it('global and sticky patterns behave the same on every call', () => {
    const patterns = [/^(--pin=).+$/g, /^magic$/y];
    for (let i = 0; i < 3; i++) assert.deepEqual(redactArgv(['--pin=1', 'magic', '--pin=2'], patterns), [`--pin=${REDACTED}`, REDACTED, `--pin=${REDACTED}`]);
  });

  it('does not change its input', () => {
    const argv = ['--password=hunter2'];
    redact(argv);
    assert.deepEqual(argv, ['--password=hunter2']);
  });
});

describe('AuditLog', () => {
  it('writes one JSON line per record with its fields, adding the time', () => {
    const file = logPath();
    const log = new AuditLog({ file });
    const before = Date.now();
    assert.equal(log.write(start()), true);
    assert.equal(log.write(end()), true);
    assert.equal(log.write(denied()), true);
    log.close();

    const [first, second, third] = readLines(file);
    assert.ok(first && second && third);
    assert.equal(Object.keys(first)[0], 'event');
    assert.equal(Object.keys(first)[1], 'time');
    assert.deepEqual({ ...first, time: undefined }, { ...start(), time: undefined });
    const time = Date.parse(first.time as string);
    assert.ok(time >= before - 1000 && time <= Date.now() + 1000, `time ${String(first.time)}`);
    assert.match(first.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    assert.equal(second.event, 'session.end');
    assert.deepEqual(second.outcome, { reason: 'exited', exitCode: 0, signal: null });
    assert.equal(second.durationMs, 1234);
    assert.equal(second.bytesOut, 20);

    assert.equal(third.event, 'access.denied');
    assert.equal(third.identity, null);
    assert.equal(third.code, 401);
    assert.equal(log.failures, 0);
  });

  it('keeps a time that is already set', () => {
    const file = logPath();
    const log = new AuditLog({ file });
    log.write({ ...start(), time: '2024-01-02T03:04:05.000Z' });
    log.close();
    assert.equal(readLines(file)[0]?.time, '2024-01-02T03:04:05.000Z');
  });

  it('a command with newlines still makes exactly one line', () => {
    const file = logPath();
    const log = new AuditLog({ file });
    log.write(start(['sh', '-c', 'echo a\necho b\r\n']));
    log.close();
    const text = readFileSync(file, 'utf8');
    assert.equal(text.split('\n').length, 2);
    assert.deepEqual(readLines(file)[0]?.command, ['sh', '-c', 'echo a\necho b\r\n']);
  });

  it('redacts the command; a bearer token put in the command never reaches the log', () => {
    const file = logPath();
    const { stream, text } = collectingStream();
    const log = new AuditLog({ file, stdout: true, stream });
    log.write(start(['kubectl', `--token=${BEARER}`, 'get', 'pods']));
    log.write(start(['kubectl', '--token', BEARER]));
    log.write(start(['curl', '-H', `Authorization: Bearer ${BEARER}`, 'https://x']));
    log.write(start(['env', `TOKEN=${BEARER}`, 'app']));
    log.write({ ...end(), command: ['mysql', '--password=hunter2'] });
    log.write({ ...denied(), command: ['mysql', '--password', 'hunter2'] });
    log.close();

    const written = readFileSync(file, 'utf8');
    for (const output of [written, text()]) {
      assert.ok(!output.includes(BEARER), 'bearer token in the audit output');
      assert.ok(!output.includes('hunter2'), 'password in the audit output');
    }
    const commands = readLines(file).map((record) => record.command);
    assert.deepEqual(commands, [
      ['kubectl', `--token=${REDACTED}`, 'get', 'pods'],
      ['kubectl', '--token', REDACTED],
      ['curl', '-H', `Authorization: Bearer ${REDACTED}`, 'https://x'],
      ['env', `TOKEN=${REDACTED}`, 'app'],
      ['mysql', `--password=${REDACTED}`],
      ['mysql', '--password', REDACTED],
    ]);
  });

  it('does not change the record it is given', () => {
    const log = new AuditLog({ file: logPath() });
    const record = start(['x', '--password=hunter2']);
    log.write(record);
    log.close();
    assert.deepEqual(record.command, ['x', '--password=hunter2']);
    assert.equal(record.time, undefined);
  });

  it('custom redact patterns add to the built-in rules', () => {
    const file = logPath();
    const log = new AuditLog({ file, redact: [/^(--pin=).+$/] });
    log.write(start(['x', '--pin=1234', '--password=hunter2', '--user=visible']));
    log.close();
    assert.deepEqual(readLines(file)[0]?.command, ['x', `--pin=${REDACTED}`, `--password=${REDACTED}`, '--user=visible']);
  });

  it('creates the file (mode 0600) and its directory (mode 0700) at construction', () => {
    const file = join(dir, `case-${++counter}`, 'nested', 'audit.log');
    const log = new AuditLog({ file });
    assert.ok(existsSync(file), 'created before the first write');
    log.write(start());
    log.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(file, '..')).mode & 0o777, 0o700);
  });

  it('appends to an existing file', () => {
    const file = logPath();
    new AuditLog({ file }).write(start(['one']));
    const log = new AuditLog({ file });
    log.write(start(['two']));
    log.close();
    assert.deepEqual(readLines(file).map((record) => record.command), [['one'], ['two']]);
  });

  it('rotates when the next line would exceed maxBytes, keeping `keep` files', () => {
    const file = logPath();
    const lineBytes = Buffer.byteLength(`${JSON.stringify({ ...start(['cmd-00']), time: new Date().toISOString() })}\n`);
    // Two lines fit per file, a third does not.
    const log = new AuditLog({ file, maxBytes: lineBytes * 2 + 10, keep: 2 });
    for (let i = 0; i < 9; i++) assert.equal(log.write(start([`cmd-${String(i).padStart(2, '0')}`])), true);
    log.close();

    const commands = (path: string): string[] => readLines(path).map((record) => (record.command as string[])[0]!);
    assert.deepEqual(commands(file), ['cmd-08']);
    assert.deepEqual(commands(`${file}.1`), ['cmd-06', 'cmd-07']);
    assert.deepEqual(commands(`${file}.2`), ['cmd-04', 'cmd-05']);
    assert.equal(existsSync(`${file}.3`), false, 'older files are dropped');
    for (const path of [file, `${file}.1`, `${file}.2`]) {
      assert.ok(statSync(path).size <= lineBytes * 2 + 10, path);
      assert.equal(statSync(path).mode & 0o777, 0o600, path);
    }
  });

  it('counts an existing file toward maxBytes', () => {
    const file = logPath();
    const first = new AuditLog({ file });
    first.write(start(['old']));
    first.close();
    const size = statSync(file).size;
    const log = new AuditLog({ file, maxBytes: size + 10, keep: 1 });
    log.write(start(['new']));
    log.close();
    assert.deepEqual(readLines(`${file}.1`).map((record) => record.command), [['old']]);
    assert.deepEqual(readLines(file).map((record) => record.command), [['new']]);
  });

  it('a line longer than maxBytes still gets written, into a file of its own', () => {
    const file = logPath();
    const log = new AuditLog({ file, maxBytes: 50, keep: 3 });
    assert.equal(log.write(start(['a'])), true);
    assert.equal(log.write(start(['b'])), true);
    log.close();
    assert.deepEqual(readLines(file).map((record) => record.command), [['b']]);
    assert.deepEqual(readLines(`${file}.1`).map((record) => record.command), [['a']]);
  });

  it('keep 0 keeps no rotated files', () => {
    const file = logPath();
    const log = new AuditLog({ file, maxBytes: 50, keep: 0 });
    log.write(start(['a']));
    log.write(start(['b']));
    log.close();
    assert.deepEqual(readLines(file).map((record) => record.command), [['b']]);
    assert.equal(existsSync(`${file}.1`), false);
  });

  it('an unwritable path: write returns false, calls onError and counts, never throws', () => {
    const blocker = join(dir, `case-${++counter}-not-a-dir`);
    writeFileSync(blocker, 'a regular file where a directory should be');
    const errors: Error[] = [];
    const log = new AuditLog({ file: join(blocker, 'audit.log'), failClosed: true, onError: (err) => errors.push(err) });
    assert.ok(log.lastError instanceof Error, 'the failed open is visible after construction');
    assert.equal(errors.length, 0, 'onError is for write failures');
    assert.equal(log.failClosed, true);

    assert.equal(log.write(start()), false);
    assert.equal(log.write(denied()), false);
    assert.equal(log.failures, 2);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!.message, /cannot write the session\.start audit record to .*audit\.log/);
    assert.match(errors[1]!.message, /access\.denied/);
    log.close();
  });

  it('failClosed defaults to false', () => {
    assert.equal(new AuditLog({}).failClosed, false);
  });

  it('an onError that throws does not make write throw', () => {
    const blocker = join(dir, `case-${++counter}-blocker`);
    writeFileSync(blocker, '');
    const log = new AuditLog({
      file: join(blocker, 'audit.log'),
      onError: () => {
        throw new Error('handler failed');
      },
    });
    assert.equal(log.write(start()), false);
    assert.equal(log.failures, 1);
  });

  it('recovers when the path becomes writable', () => {
    const parent = join(dir, `case-${++counter}`);
    writeFileSync(parent, '');
    const file = join(parent, 'audit.log');
    const log = new AuditLog({ file });
    assert.equal(log.write(start(['lost'])), false);
    rmSync(parent);
    assert.equal(log.write(start(['kept'])), true);
    assert.equal(log.lastError, null);
    log.close();
    assert.deepEqual(readLines(file).map((record) => record.command), [['kept']]);
  });

  it('a write that fails part-way (a file size limit) is taken back: the file holds whole lines only', async () => {
    const file = join(dir, 'partial', 'audit.log');
    // A process of its own, whose file size limit is lowered once it has loaded: the short record
    // fits under it, the long one is cut off by it (part written, then EFBIG).
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/audit-writer.ts', import.meta.url)), file], { stdio: ['pipe', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
    const exited = once(child, 'exit');
    await Promise.race([
      new Promise<void>((resolve) => child.stdout.on('data', () => output.includes('ready\n') && resolve())),
      exited.then(() => assert.fail(`the writer exited before it was ready: ${output}`)),
    ]);
    const limited = spawnSync('prlimit', ['--pid', String(child.pid), '--fsize=1000:1000']);
    assert.equal(limited.status, 0, String(limited.stderr));
    child.stdin.write('go\n');
    const [code] = await exited;
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(output.split('\n')[1]!), [true, false], 'the short record is written, the long one fails');
    const text = readFileSync(file, 'utf8');
    assert.ok(text.endsWith('\n'), 'the file ends with a whole line');
    assert.deepEqual(readLines(file).map((record) => record.message), ['short']);
  });

  it('a record that cannot be serialized is a failure, not a throw', () => {
    const errors: Error[] = [];
    const log = new AuditLog({ file: logPath(), onError: (err) => errors.push(err) });
    const record = { ...end(), durationMs: 1n as unknown as number };
    assert.equal(log.write(record), false);
    assert.equal(log.failures, 1);
    assert.match(errors[0]!.message, /cannot serialize the session\.end audit record/);
    log.close();
  });

  it('writes after close fail', () => {
    const errors: Error[] = [];
    const log = new AuditLog({ file: logPath(), onError: (err) => errors.push(err) });
    log.close();
    assert.equal(log.write(start()), false);
    assert.match(errors[0]!.message, /closed/);
  });

  it('the stdout sink gets the same lines; with no file configured nothing is written to disk', async () => {
    const { stream, text } = collectingStream();
    const log = new AuditLog({ stdout: true, stream });
    assert.equal(log.write(start()), true);
    assert.equal(log.write(denied()), true);
    await new Promise((resolve) => setImmediate(resolve));
    const lines = text().trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.equal((JSON.parse(lines[0]!) as { event: string }).event, 'session.start');
    assert.equal((JSON.parse(lines[1]!) as { event: string }).event, 'access.denied');
  });

  it('stdout false: the stream is not used', () => {
    const { stream, text } = collectingStream();
    const log = new AuditLog({ file: logPath(), stdout: false, stream });
    log.write(start());
    log.close();
    assert.equal(text(), '');
  });

  it('both sinks: one failing makes write return false while the other still gets the line', async () => {
    const blocker = join(dir, `case-${++counter}-blocker`);
    writeFileSync(blocker, '');
    const { stream, text } = collectingStream();
    const log = new AuditLog({ file: join(blocker, 'audit.log'), stdout: true, stream });
    assert.equal(log.write(start()), false);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((JSON.parse(text()) as { event: string }).event, 'session.start');
  });

  it('a stream that has ended is a failure', () => {
    const stream = new PassThrough();
    stream.end();
    const errors: Error[] = [];
    const log = new AuditLog({ stdout: true, stream, onError: (err) => errors.push(err) });
    assert.equal(log.write(start()), false);
    assert.equal(log.failures, 1);
    assert.match(errors[0]!.message, /stdout/);
  });

  it('an error the stream reports later is passed to onError and counted', async () => {
    const stream = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('EPIPE-like failure'));
      },
    });
    stream.on('error', () => {});
    const reported = new Promise<Error>((resolve) => {
      const log = new AuditLog({ stdout: true, stream, onError: resolve });
      assert.equal(log.write(start()), true);
    });
    assert.match((await reported).message, /EPIPE-like failure/);
  });

  it('rejects invalid maxBytes and keep', () => {
    assert.throws(() => new AuditLog({ maxBytes: 0 }), RangeError);
    assert.throws(() => new AuditLog({ keep: -1 }), RangeError);
    assert.throws(() => new AuditLog({ keep: 1.5 }), RangeError);
  });
});
