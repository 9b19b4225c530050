// Proves the test helpers work against a real engine: containers start, carry the right labels,
// run commands through exec and go away; and a private dockerd coexists with another engine and
// leaves no process, mount or directory behind once stopped.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type Dockerode from 'dockerode';
import { dockerClient, podLabels, startContainer, startPodSandbox, type TestContainer } from '../helpers/containers.js';
import { isPidAlive, mountsUnder, processesReferencingDir, startPrivateDocker, useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

interface ExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Splits Docker's multiplexed stdout/stderr stream (8-byte frame headers). */
function demux(raw: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= raw.length) {
    const stream = raw[offset];
    const size = raw.readUInt32BE(offset + 4);
    const payload = raw.subarray(offset + 8, offset + 8 + size);
    if (stream === 2) err.push(payload);
    else out.push(payload);
    offset += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Runs `cmd` in the container via exec (create, start without hijacking, read to the end). */
async function execIn(container: Dockerode.Container, cmd: string[]): Promise<ExecResult> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: false, stdin: false });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  let info = await exec.inspect();
  for (let i = 0; i < 100 && info.Running; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode, ...demux(Buffer.concat(chunks)) };
}

async function waitPidGone(pid: number, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isPidAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number(err.statusCode) : undefined;
}

describe('test infrastructure', () => {
  let docker: TestDocker;

  before(async () => {
    docker = await useTestDocker();
  });

  after(async () => {
    await docker?.stop();
  });

  test('the engine answers and has the busybox image', async () => {
    const client = dockerClient(docker);
    assert.equal(String(await client.ping()), 'OK');
    const image = await client.getImage(docker.image).inspect();
    assert.ok(image.Id.startsWith('sha256:'));
    if (process.env.EXECLET_TEST_IMAGE) assert.equal(docker.image, process.env.EXECLET_TEST_IMAGE);
  });

  test('plain, pod-labelled and sandbox containers run, exec works, remove() cleans up', async () => {
    const client = dockerClient(docker);
    const started: TestContainer[] = [];
    try {
      const plain = await startContainer(docker);
      started.push(plain);
      const app = await startContainer(docker, { labels: podLabels('team-a', 'web-1', 'app'), memoryBytes: 64 * 1024 * 1024, networkNone: true });
      started.push(app);
      const sandbox = await startPodSandbox(docker, 'team-a', 'web-1');
      started.push(sandbox);

      for (const c of started) {
        const info = await client.getContainer(c.id).inspect();
        assert.equal(info.State.Running, true, `${c.name} runs`);
        assert.equal(info.State.Pid, c.hostPid);
        assert.equal(info.Name, `/${c.name}`);
        assert.ok(isPidAlive(c.hostPid), `host PID ${c.hostPid} of ${c.name} is alive`);
        assert.match(fs.readFileSync(`/proc/${c.hostPid}/cmdline`, 'utf8'), /^sleep\x00100000\x00$/);
      }

      const appInfo = await client.getContainer(app.id).inspect();
      assert.deepEqual(
        Object.fromEntries(Object.entries(appInfo.Config.Labels).filter(([k]) => k.startsWith('io.kubernetes.'))),
        {
          'io.kubernetes.pod.namespace': 'team-a',
          'io.kubernetes.pod.name': 'web-1',
          'io.kubernetes.container.name': 'app',
          'io.kubernetes.docker.type': 'container',
        },
      );
      assert.equal(appInfo.HostConfig.Memory, 64 * 1024 * 1024);
      assert.equal(appInfo.HostConfig.NetworkMode, 'none');

      const sandboxLabels = (await client.getContainer(sandbox.id).inspect()).Config.Labels;
      assert.equal(sandboxLabels['io.kubernetes.docker.type'], 'podsandbox');
      assert.equal(sandboxLabels['io.kubernetes.pod.namespace'], 'team-a');
      assert.equal(sandboxLabels['io.kubernetes.pod.name'], 'web-1');
      assert.equal(sandboxLabels['io.kubernetes.container.name'], undefined);
      assert.match(sandbox.name, /^k8s_POD_web-1_team-a_[0-9a-f]+_0$/);

      const listed = await client.listContainers({ filters: { label: ['io.kubernetes.pod.name=web-1'] } });
      assert.deepEqual(listed.map((c) => c.Id).sort(), [app.id, sandbox.id].sort());

      for (const c of [plain, app]) {
        const result = await execIn(client.getContainer(c.id), ['busybox', 'echo', 'hello from', c.name]);
        assert.deepEqual(result, { exitCode: 0, stdout: `hello from ${c.name}\n`, stderr: '' });
      }
      const failing = await execIn(client.getContainer(plain.id), ['sh', '-c', 'echo oops >&2; exit 3']);
      assert.deepEqual(failing, { exitCode: 3, stdout: '', stderr: 'oops\n' });

      for (const c of started) {
        await c.remove();
        await c.remove(); // idempotent
        await assert.rejects(client.getContainer(c.id).inspect(), (err: unknown) => statusOf(err) === 404);
        assert.ok(await waitPidGone(c.hostPid), `host PID ${c.hostPid} of ${c.name} is gone`);
      }
    } finally {
      await Promise.all(started.map((c) => c.remove().catch(() => undefined)));
    }
  });

  test('a second private dockerd coexists with this one and stop() leaves nothing behind', async (t) => {
    const t0 = Date.now();
    const second = await startPrivateDocker();
    t.diagnostic(`second private dockerd ready (with image) in ${Date.now() - t0} ms`);
    let stopped = false;
    try {
      assert.equal(second.private, true);
      assert.notEqual(second.socketPath, docker.socketPath);
      assert.ok(second.socketPath.length < 100, `socket path ${second.socketPath} is short enough`);
      assert.ok(second.dir !== undefined && fs.existsSync(second.dir));
      assert.ok(second.dockerdPid !== undefined && isPidAlive(second.dockerdPid), 'dockerd runs');
      assert.ok(second.containerdPid !== undefined && isPidAlive(second.containerdPid), 'containerd runs');
      const dir = second.dir;

      const c = await startContainer(second, { name: 'only-on-the-second-engine' });
      await assert.rejects(dockerClient(docker).getContainer(c.id).inspect(), (err: unknown) => statusOf(err) === 404);
      assert.equal(String(await dockerClient(docker).ping()), 'OK');
      const shims = processesReferencingDir(dir).filter((pid) => pid !== second.dockerdPid && pid !== second.containerdPid);
      assert.ok(shims.length >= 1, 'the container has a shim pointing into the engine dir');

      // Leave the container running: stop() must cope with it.
      const t1 = Date.now();
      await second.stop();
      stopped = true;
      t.diagnostic(`second private dockerd stopped (one container running) in ${Date.now() - t1} ms`);
      await second.stop(); // idempotent

      for (const [what, pid] of [
        ['dockerd', second.dockerdPid],
        ['containerd', second.containerdPid],
        ['container init', c.hostPid],
        ...shims.map((p): [string, number] => ['shim', p]),
      ] as Array<[string, number]>) {
        assert.ok(await waitPidGone(pid), `${what} (pid ${pid}) is gone`);
      }
      assert.deepEqual(processesReferencingDir(dir), []);
      assert.deepEqual(mountsUnder(dir), []);
      assert.equal(fs.existsSync(dir), false, `${dir} is removed`);

      // The other engine did not notice.
      assert.equal(String(await dockerClient(docker).ping()), 'OK');
      const survivor = await startContainer(docker);
      await survivor.remove();
    } finally {
      if (!stopped) await second.stop();
    }
  });
});
