// An agent that cannot finish starting exits with its reason instead of running on half started:
// here the local kubeconfig cannot be written (STATE/kubeconfig is a directory), which is found only
// after the listener, the engine's event stream and the orphan sweep have started.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { AGENT_MAIN } from '../helpers/agent.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { runCommand } from '../helpers/run-command.js';

let docker: TestDocker;
let dir: string;

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-start-failures-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a kubeconfig that cannot be written: exit 2 naming the file, and nothing left running', async () => {
  const state = join(dir, 'state');
  mkdirSync(join(state, 'kubeconfig'), { recursive: true });
  const result = await runCommand(process.execPath, [AGENT_MAIN, 'serve', '--listen', '127.0.0.1:0', '--state-dir', state, '--docker-host', docker.host], {
    timeoutMs: 20_000,
  });
  assert.equal(result.code, 2, result.stderr.toString());
  assert.match(result.stderr.toString(), /cannot write the local kubeconfig .*\/state\/kubeconfig: .*--state-dir/);
  assert.ok(existsSync(join(state, 'kubeconfig')));
  assert.deepEqual(readdirSync(state).filter((name) => name.includes('.tmp-')), [], 'no temporary file left in the state dir');
});
