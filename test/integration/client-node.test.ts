// @kubernetes/client-node 1.4 `Exec` against the agent and a real engine, over v5 and over v4
// (forced through client-node's own socket-factory hook): stdout and the Status with exit code.
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Exec, KubeConfig, type V1Status } from '@kubernetes/client-node';
// Not re-exported by the package index; the socket-factory hook is client-node's own API.
import { WebSocketHandler } from '@kubernetes/client-node/dist/web-socket-handler.js';
import WebSocket from 'ws';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

let docker: TestDocker;
let agent: TestAgent;
let container: TestContainer;

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker);
  container = await startContainer(docker, { labels: podLabels('team', 'api', 'main') });
});

after(async () => {
  await container?.remove();
  await agent?.stop();
  await docker?.stop();
});

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(agent.kubeconfig);
  return kc;
}

class Sink extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk);
    callback();
  }
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

interface Outcome {
  protocol: string;
  stdout: string;
  stderr: string;
  status: V1Status;
}

async function run(exec: Exec, command: string[], stdinText?: string): Promise<Outcome> {
  const stdout = new Sink();
  const stderr = new Sink();
  const stdin = stdinText === undefined ? null : new PassThrough();
  let resolveStatus: (status: V1Status) => void;
  const statusArrived = new Promise<V1Status>((resolve) => (resolveStatus = resolve));
  const ws = await exec.exec('team', 'api', 'main', command, stdout, stderr, stdin, false, (status) => resolveStatus(status));
  if (stdin) stdin.end(stdinText);
  const status = await statusArrived;
  return { protocol: ws.protocol, stdout: stdout.text, stderr: stderr.text, status };
}

function forcedProtocolExec(protocol: string): Exec {
  const kc = kubeConfig();
  const handler = new WebSocketHandler(kc, (uri: string, _protocols: string[], opts: WebSocket.ClientOptions) => new WebSocket(uri, [protocol], opts));
  return new Exec(kc, handler);
}

for (const protocol of ['v5.channel.k8s.io', 'v4.channel.k8s.io']) {
  describe(`client-node over ${protocol}`, () => {
    const exec = () => (protocol === 'v5.channel.k8s.io' ? new Exec(kubeConfig()) : forcedProtocolExec(protocol));

    test('success: stdout and a Success status', async () => {
      const r = await run(exec(), ['sh', '-c', 'echo hello; echo oops >&2']);
      assert.equal(r.protocol, protocol);
      assert.equal(r.stdout, 'hello\n');
      assert.equal(r.stderr, 'oops\n');
      assert.equal(r.status.status, 'Success');
    });

    test('failure: a NonZeroExitCode status carrying the exit code', async () => {
      const r = await run(exec(), ['sh', '-c', 'echo partial; exit 42']);
      assert.equal(r.protocol, protocol);
      assert.equal(r.stdout, 'partial\n');
      assert.equal(r.status.status, 'Failure');
      assert.equal(r.status.reason, 'NonZeroExitCode');
      assert.deepEqual(r.status.details?.causes, [{ reason: 'ExitCode', message: '42' }]);
    });
  });
}

test('client-node over v5: stdin end reaches the process (v5 close signal), output after it arrives', async () => {
  const r = await run(new Exec(kubeConfig()), ['sh', '-c', 'cat; echo after-eof'], 'from client-node\n');
  assert.equal(r.protocol, 'v5.channel.k8s.io');
  assert.equal(r.stdout, 'from client-node\nafter-eof\n');
  assert.equal(r.status.status, 'Success');
});
