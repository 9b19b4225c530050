// What keeps an exec's round trip short, against a real engine through a recording pass-through:
// exit codes come from the engine's exec_die events (no inspect per exec) and from inspecting the
// exec again whenever the event stream is gone; the TLS suite the server picks is AES-128-GCM.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startEngineProxy, type EngineProxy } from '../helpers/engine-proxy.js';
import { runExec } from '../helpers/exec-client.js';
import { waitUntil } from '../helpers/proc-scan.js';

let docker: TestDocker;
let proxy: EngineProxy;
let agent: TestAgent;
let container: TestContainer;

const isEventStream = (line: string) => /^GET \/v[\d.]+\/events\?/.test(line);
const isExecInspect = (line: string) => /^GET \/v[\d.]+\/exec\/[0-9a-f]+\/json$/.test(line);

/** Resolves on the next request line the proxy sees that matches. */
function nextRequest(match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const listener = (line: string) => {
      if (!match(line)) return;
      proxy.events.off('request', listener);
      resolve(line);
    };
    proxy.events.on('request', listener);
  });
}

async function exitCodes(codes: number[]): Promise<{ codes: number[]; inspects: number }> {
  const before = proxy.requests.length;
  const seen: number[] = [];
  for (const code of codes) {
    const r = await runExec(agent, 'default', 'web', { command: ['sh', '-c', `exit ${code}`], container: 'app', stdout: true, stderr: true });
    const status = JSON.parse(r.error) as { status: string; details?: { causes?: Array<{ reason: string; message: string }> } };
    seen.push(status.status === 'Success' ? 0 : Number(status.details!.causes!.find((c) => c.reason === 'ExitCode')!.message));
  }
  return { codes: seen, inspects: proxy.requests.slice(before).filter(isExecInspect).length };
}

before(async () => {
  docker = await useTestDocker();
  proxy = await startEngineProxy(docker.socketPath);
  const subscribed = nextRequest(isEventStream);
  agent = await startAgent({ ...docker, host: proxy.host });
  await subscribed;
  container = await startContainer(docker, { labels: podLabels('default', 'web', 'app') });
});

after(async () => {
  await container?.remove();
  await agent?.stop();
  await proxy?.stop();
  await docker?.stop();
});

describe('exit codes from exec_die events', () => {
  test('with the event stream up, every exit code is right and no exec is inspected', async () => {
    const r = await exitCodes([0, 1, 7, 42, 255]);
    assert.deepEqual(r.codes, [0, 1, 7, 42, 255]);
    assert.equal(r.inspects, 0, 'the exit codes came from the events');
  });

  test('event stream cut and refused: exit codes come from inspecting; once it is back, from events again', async () => {
    proxy.cutEventStreams({ refuseNew: true });
    await waitUntil(() => /exit codes come from inspecting each exec/.test(agent.output()), 5000, 'the agent noticing the stream ended');
    const degraded = await exitCodes([3, 0, 9]);
    assert.deepEqual(degraded.codes, [3, 0, 9]);
    assert.equal(degraded.inspects, 3, 'each exec inspected once');

    const resubscribed = nextRequest(isEventStream);
    proxy.cutEventStreams({ refuseNew: false });
    await resubscribed;
    await waitUntil(() => (agent.output().match(/subscribed to the engine's exec_die events/g) ?? []).length >= 2, 5000, 'the agent subscribing again');
    const restored = await exitCodes([5, 0]);
    assert.deepEqual(restored.codes, [5, 0]);
    assert.equal(restored.inspects, 0);
  });
});

describe('TLS', () => {
  test('the server picks TLS_AES_128_GCM_SHA256 for a client offering Node defaults', async () => {
    const socket = connect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem });
    await once(socket, 'secureConnect');
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    assert.equal(socket.getCipher().name, 'TLS_AES_128_GCM_SHA256');
    socket.destroy();
  });
});
