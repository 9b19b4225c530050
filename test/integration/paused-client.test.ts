// A real kubectl whose output is piped into a reader that stops (`kubectl exec … | less`, the
// screen full) stops reading its connection: the pongs to the agent's pings wait behind the output,
// exactly as if its machine had vanished. Its kernel still answers, and the agent keeps it as long
// as it does: once the reader goes on, kubectl gets all the output and the exit code. The agent
// runs in this process and pings every second.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultSettings } from '../../src/config/settings.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { kubectlStderr } from '../helpers/kubectl-stderr.js';

/** The WebSocket (v5) kubectl. */
const KUBECTL = '/usr/bin/kubectl';
/** More than the pipe and kubectl hold, less than the kernel's buffers on loopback: the agent itself holds none of it. */
const OUTPUT_BYTES = 1024 * 1024;

let docker: TestDocker;
let container: TestContainer;
let agent: InProcessAgent;
let home: string;

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'paused', 'app') });
  agent = await startInProcessAgent(docker, 'paused', {}, { sessions: { ...defaultSettings().sessions, pingIntervalSeconds: 1 } });
  home = mkdtempSync(join(tmpdir(), 'execlet-paused-home-'));
});

after(async () => {
  await agent?.close();
  await container?.remove();
  await docker?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

test('kubectl whose reader stops for five ping intervals while the process runs is kept, and gets all the output and exit code 0', async () => {
  // The output at once, then the process goes on for a while and prints its last line.
  const script = `head -c ${OUTPUT_BYTES} /dev/zero; sleep 7; echo end`;
  const child = spawn(KUBECTL, ['exec', '-n', 'default', 'paused', '-c', 'app', '--', 'sh', '-c', script], {
    env: { ...process.env, KUBECONFIG: agent.agent.kubeconfig.path, HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    // The reader takes nothing for 5 s: the pipe fills, kubectl blocks on it and reads nothing more.
    await new Promise((resolve) => setTimeout(resolve, 5000)); // a span of time the reader stalls, not synchronisation
    assert.equal(child.exitCode, null, `kubectl is still running (${stderr.trim()})`);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const [code] = await exited;
    const stdout = Buffer.concat(chunks);
    assert.equal(code, 0, `kubectl exited with ${code}: ${stderr.trim()}`);
    assert.equal(kubectlStderr(stderr), '');
    assert.equal(stdout.length, OUTPUT_BYTES + 'end\n'.length);
    assert.equal(stdout.subarray(OUTPUT_BYTES).toString(), 'end\n');
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  }
});
