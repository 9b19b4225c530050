// Unit tests for the nsenter backend's argv (src/backend/nsenter.ts): one exec of the
// execlet-nsenter helper with the target PID, the namespaces as /proc/PID/ns file names, the
// toolbox flag and the command after `--`; and the start-up check that the helper is there.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_HELPER_PATH, NsenterBackend, nsenterArgv } from '../../src/backend/nsenter.js';
import { BackendError } from '../../src/backend/types.js';
import { DEFAULT_NSENTER_NAMESPACES, TOOLBOX_NAMESPACES } from '../../src/target/modes.js';

const HELPER = '/opt/execlet/dist/native/execlet-nsenter';
const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const scratch = mkdtempSync(join(tmpdir(), 'execlet-nsenter-argv-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('nsenterArgv', () => {
  test('the default nsenter namespaces: one exec, mount as mnt, the command after --', () => {
    const argv = nsenterArgv(HELPER, { kind: 'namespaces', pid: 4242, namespaces: [...DEFAULT_NSENTER_NAMESPACES], toolbox: false }, ['sh', '-c', 'echo hi']);
    assert.deepEqual(argv, [HELPER, '--target', '4242', '--ns', 'mnt,uts,ipc,net,pid', '--', 'sh', '-c', 'echo hi']);
  });

  test('the toolbox: its namespaces and --toolbox (a fresh /proc)', () => {
    const argv = nsenterArgv(HELPER, { kind: 'namespaces', pid: 17, namespaces: [...TOOLBOX_NAMESPACES], toolbox: true }, ['ps']);
    assert.deepEqual(argv, [HELPER, '--target', '17', '--ns', 'net,pid,ipc,uts', '--toolbox', '--', 'ps']);
  });

  test('every namespace the agent knows maps to its /proc/PID/ns file', () => {
    const argv = nsenterArgv(HELPER, { kind: 'namespaces', pid: 1, namespaces: ['mount', 'uts', 'ipc', 'net', 'pid', 'user', 'cgroup'], toolbox: false }, ['true']);
    assert.equal(argv[4], 'mnt,uts,ipc,net,pid,user,cgroup');
  });

  test('arguments that look like options stay arguments of the command, and nothing goes through a shell', () => {
    const command = ['--target', '1', '--toolbox', '$(reboot)', '; rm -rf /', ''];
    const argv = nsenterArgv(HELPER, { kind: 'namespaces', pid: 9, namespaces: ['net'], toolbox: false }, command);
    assert.deepEqual(argv.slice(argv.indexOf('--') + 1), command);
    assert.deepEqual(argv.slice(0, argv.indexOf('--')), [HELPER, '--target', '9', '--ns', 'net']);
  });

  test('no namespaces or no command is a programming error, not a host-namespace exec', () => {
    assert.throws(() => nsenterArgv(HELPER, { kind: 'namespaces', pid: 9, namespaces: [], toolbox: false }, ['true']), (err: unknown) => err instanceof BackendError && err.kind === 'Internal');
    assert.throws(() => nsenterArgv(HELPER, { kind: 'namespaces', pid: 9, namespaces: ['net'], toolbox: false }, []), (err: unknown) => err instanceof BackendError && err.kind === 'Internal');
  });
});

describe('the target process', () => {
  test('a PID that belongs to another process than the one resolved (its start time differs) is refused before anything runs', async () => {
    const backend = new NsenterBackend({ killGraceMs: 0, helperPath: join(scratch, 'no-helper-needed') });
    const place = { kind: 'namespaces' as const, pid: process.pid, namespaces: [...DEFAULT_NSENTER_NAMESPACES], toolbox: false, startTime: '1' };
    await assert.rejects(
      backend.start({ place, command: ['true'], tty: false, stdin: false, stdout: true, stderr: false }),
      (err: unknown) => err instanceof BackendError && err.kind === 'Conflict' && /no longer the one the session was asked for/.test(err.message),
    );
  });
});

describe('the helper check', () => {
  test('by default the helper is dist/native/execlet-nsenter, also when the sources run directly', () => {
    assert.equal(DEFAULT_HELPER_PATH, join(REPO_ROOT, 'dist', 'native', 'execlet-nsenter'));
  });

  test('a missing helper is Unavailable, and the message says how to build it', () => {
    const missing = join(scratch, 'nope', 'execlet-nsenter');
    assert.throws(
      () => new NsenterBackend({ killGraceMs: 100, helperPath: missing }).helper(),
      (err: unknown) => err instanceof BackendError && err.kind === 'Unavailable' && err.message.includes(missing) && /not found/.test(err.message) && /npm run build/.test(err.message),
    );
  });

  test('a helper that is not executable (or a directory) is Unavailable', () => {
    const plain = join(scratch, 'plain');
    writeFileSync(plain, '');
    chmodSync(plain, 0o644);
    // No x bit at all: not executable for root either (access(2) with X_OK).
    assert.throws(() => new NsenterBackend({ killGraceMs: 100, helperPath: plain }).helper(), (err: unknown) => err instanceof BackendError && err.kind === 'Unavailable' && /not executable/.test(err.message));
    assert.throws(() => new NsenterBackend({ killGraceMs: 100, helperPath: scratch }).helper(), (err: unknown) => err instanceof BackendError && /not a file/.test(err.message));
  });

  test('an executable helper is accepted and remembered', () => {
    const helper = join(scratch, 'helper');
    writeFileSync(helper, '#!/bin/sh\n');
    chmodSync(helper, 0o755);
    const backend = new NsenterBackend({ killGraceMs: 100, helperPath: helper });
    assert.equal(backend.helper(), helper);
    rmSync(helper);
    assert.equal(backend.helper(), helper, 'checked once, at start-up');
  });
});
