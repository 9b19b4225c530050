// A SIGHUP that reaches `execlet serve` while it is still starting (before it listens) does not
// kill it: it is held, and the reload is carried out once the agent serves.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AGENT_MAIN } from '../helpers/agent.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

let docker: TestDocker;
let dir: string;

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-startup-sighup-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Whether the process catches SIGHUP now (bit 1 of SigCgt in /proc/PID/status). */
function catchesSighup(pid: number): boolean {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  const caught = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
  return caught !== null && (BigInt(`0x${caught[1]}`) & 1n) === 1n;
}

test('a SIGHUP before the agent listens is held and carried out once it serves, not the end of it', async () => {
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'a-token-of-the-startup-test alice\n', { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state'), '--docker-host', docker.host, '--token-file', tokens, '--log-level', 'info'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = once(child, 'exit');
  /** Resolves once the agent has printed something `pattern` matches; rejects if it exits first. */
  const printed = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!pattern.test(output)) return;
        child.stdout.off('data', check);
        child.stderr.off('data', check);
        resolve();
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
      void exited.then(() => reject(new Error(`the agent exited before printing ${pattern}:\n${output}`)));
      check();
    });
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  try {
    // The earliest moment SIGHUP can be caught: the agent is still loading, long before it listens.
    while (!catchesSighup(child.pid!)) {
      assert.equal(child.exitCode, null, `the agent exited while starting:\n${output}`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.doesNotMatch(output, /execlet is serving|execlet: serving/, 'SIGHUP is caught before the agent serves');
    child.kill('SIGHUP');
    // It starts all the same, then reloads what it was asked to.
    await printed(/token file reloaded/);
    assert.match(output, /execlet: serving https:/);
    assert.ok(output.indexOf('execlet is serving') < output.indexOf('token file reloaded'), 'the reload comes once the agent serves');
    assert.equal(child.exitCode, null);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
});
