// Real kubectl binaries (1.30–1.33, WebSocket v5) against the agent and a real engine, using the
// kubeconfig `serve` generates: exit codes, both streams, stdin EOF, TTY size, both pod kinds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, startPodSandbox, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { kubectlStderr } from '../helpers/kubectl-stderr.js';
import { runCommand } from '../helpers/run-command.js';

const KUBECTL_DIR = '/usr/lib/google-cloud-sdk/bin';
const VERSIONS = ['1.30', '1.31', '1.32', '1.33'];

let docker: TestDocker;
let agent: TestAgent;
let home: string;
const containers: TestContainer[] = [];
let plainName: string;

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker);
  home = mkdtempSync(join(tmpdir(), 'execlet-kubectl-home-'));
  containers.push(await startPodSandbox(docker, 'default', 'web'));
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'app') }));
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'side') }));
  const plain = await startContainer(docker);
  containers.push(plain);
  plainName = plain.name;
});

after(async () => {
  for (const c of containers) await c.remove();
  await agent?.stop();
  await docker?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

/** Runs kubectl to completion; its stderr without client-go's stream-race log (kubectl-stderr.ts). */
async function kubectl(version: string, args: string[], input?: Buffer | string) {
  const result = await runCommand(join(KUBECTL_DIR, `kubectl.${version}`), args, {
    env: { KUBECONFIG: agent.kubeconfig, HOME: home },
    ...(input !== undefined ? { input } : {}),
  });
  return { ...result, stderr: Buffer.from(kubectlStderr(result.stderr)) };
}

/**
 * Runs `kubectl exec -it … -- sh` inside `script` (a real terminal of 33 rows and 111 columns),
 * types `typed` once the shell's prompt appears, and returns the terminal output and exit code.
 */
function interactiveShell(version: string, podArgs: string[], typed: string): Promise<{ code: number | null; output: string }> {
  const kubectl = join(KUBECTL_DIR, `kubectl.${version}`);
  const inner = `stty cols 111 rows 33; exec ${kubectl} exec -it ${podArgs.join(' ')} -- sh`;
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', inner, '/dev/null'], { env: { ...process.env, KUBECONFIG: agent.kubeconfig, HOME: home } });
    let output = '';
    let typedYet = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`interactive kubectl did not finish; output so far:\n${output}`));
    }, 30_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      output += text;
      if (!typedYet && /# $/.test(output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trimEnd() + ' ')) {
        typedYet = true;
        child.stdin.write(typed);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => (output += text));
    child.once('close', (code) => {
      clearTimeout(timer);
      child.stdin.destroy();
      resolve({ code, output });
    });
  });
}

for (const version of VERSIONS) {
  describe(`kubectl ${version}`, () => {
    test('non-zero exit: both streams on the right fds and the exit code', async () => {
      const r = await kubectl(version, ['exec', '-n', 'default', 'web', '-c', 'app', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.stdout.toString(), 'out\n');
      assert.match(r.stderr.toString(), /^err\n/);
      assert.match(r.stderr.toString(), /command terminated with exit code 3/);
      assert.equal(r.code, 3);
    });

    test('zero exit', async () => {
      const r = await kubectl(version, ['exec', '-n', 'default', 'web', '-c', 'side', '--', 'sh', '-c', 'echo fine']);
      assert.equal(r.stdout.toString(), 'fine\n');
      assert.equal(r.stderr.toString(), '');
      assert.equal(r.code, 0);
    });

    test('stdin reaches the process and its EOF ends it', async () => {
      const r = await kubectl(version, ['exec', '-i', '-n', 'default', 'web', '-c', 'app', '--', 'cat'], 'data\nmore data\n');
      assert.equal(r.stdout.toString(), 'data\nmore data\n');
      assert.equal(r.code, 0);
    });

    test('a plain container is a pod in namespace docker', async () => {
      const r = await kubectl(version, ['exec', '-n', 'docker', plainName, '--', 'sh', '-c', 'hostname; exit 9']);
      assert.equal(r.stdout.toString().trim().length > 0, true);
      assert.equal(r.code, 9);
    });

    test('-it under a terminal: the shell sees the terminal size and its exit code passes through', async () => {
      const r = await interactiveShell(version, ['-n', 'default', 'web', '-c', 'app'], 'stty size; exit 6\n');
      assert.match(r.output, /33 111/, r.output);
      assert.equal(r.code, 6, r.output);
    });

    test('-it in namespace docker works the same', async () => {
      const r = await interactiveShell(version, ['-n', 'docker', plainName], 'stty size; exit 0\n');
      assert.match(r.output, /33 111/, r.output);
      assert.equal(r.code, 0, r.output);
    });
  });
}

describe('kubectl get pods', () => {
  const names = (r: { stdout: Buffer }) => r.stdout.toString().trim().split('\n').filter(Boolean).sort();

  test('field selectors are honoured; a label selector or a watch is refused, not answered with every pod', async () => {
    const all = await kubectl('1.32', ['get', 'pods', '-n', 'default', '-o', 'name']);
    assert.equal(all.code, 0, all.stderr.toString());
    assert.deepEqual(names(all), ['pod/web']);
    const byName = await kubectl('1.32', ['get', 'pods', '-A', '--field-selector', 'metadata.name=web', '-o', 'name']);
    assert.deepEqual(names(byName), ['pod/web'], byName.stderr.toString());
    const notWeb = await kubectl('1.32', ['get', 'pods', '-n', 'default', '--field-selector', 'metadata.name!=web', '-o', 'name']);
    assert.equal(notWeb.code, 0, notWeb.stderr.toString());
    assert.deepEqual(names(notWeb), []);
    const unsupported = await kubectl('1.32', ['get', 'pods', '-n', 'default', '--field-selector', 'spec.restartPolicy=Always']);
    assert.equal(unsupported.code, 1);
    assert.match(unsupported.stderr.toString(), /"spec\.restartPolicy" is not a supported field/);
    const labelled = await kubectl('1.32', ['get', 'pods', '-n', 'default', '-l', 'app=web']);
    assert.equal(labelled.code, 1);
    assert.match(labelled.stderr.toString(), /labelSelector is not supported by execlet/);
    const watched = await kubectl('1.32', ['get', 'pods', '-n', 'default', '--watch-only', '--request-timeout', '10s']);
    assert.equal(watched.code, 1);
    assert.match(watched.stderr.toString(), /watch is not supported by execlet/);
  });
});

describe('kubectl errors', () => {
  test('an unknown pod is reported as NotFound', async () => {
    const r = await kubectl('1.32', ['exec', '-n', 'default', 'nosuchpod', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr.toString(), /NotFound.*nosuchpod/);
  });

  test('an unknown container names the pod\'s containers', async () => {
    const r = await kubectl('1.32', ['exec', '-n', 'default', 'web', '-c', 'nosuch', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr.toString(), /container nosuch is not valid for pod web.*\[app side\]/);
  });

  test('kubectl 1.27 (SPDY only) is told SPDY is not supported', async () => {
    const r = await kubectl('1.27', ['exec', '-n', 'default', 'web', '-c', 'app', '--', 'true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr.toString(), /SPDY is not supported by execlet/);
  });
});
