// How the agent sizes V8's heap (src/cli/heap-sizing.ts, imported before anything else): the young
// generation stays at its initial size while the agent starts, so an idle agent does not hold the
// 16 MiB of semi-space that loading its modules would otherwise leave committed; and once it
// serves, streaming output does not keep V8 running full collections back to back. Read through
// the V8 inspector of an agent started with --inspect on a loopback port.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { once } from 'node:events';
import WebSocket from 'ws';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer } from '../helpers/containers.js';
import { execPath, onMessage, openExec } from '../helpers/exec-client.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

let docker: TestDocker;
let agent: TestAgent;

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker, { env: { NODE_OPTIONS: '--inspect=127.0.0.1:0' } });
});

after(async () => {
  await agent?.stop();
  await docker?.stop();
});

/** Evaluates an expression in the agent and returns its (JSON) value. */
async function evaluate(expression: string): Promise<unknown> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(agent.output())?.[1];
  assert.ok(url, 'the agent prints its inspector URL');
  const ws = new WebSocket(url);
  try {
    return await new Promise((resolve, reject) => {
      ws.once('open', () => ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression, returnByValue: true } })));
      ws.on('message', (data: Buffer) => {
        const reply = JSON.parse(data.toString()) as { id?: number; result?: { result: { value: unknown }; exceptionDetails?: unknown } };
        if (reply.id !== 1) return;
        if (reply.result?.exceptionDetails) reject(new Error(JSON.stringify(reply.result.exceptionDetails)));
        else resolve(reply.result?.result.value);
      });
      ws.once('error', reject);
    });
  } finally {
    ws.close();
  }
}

test('a started agent holds the young generation at its initial size (not the 16 MiB semi-spaces start-up would grow)', async () => {
  const newSpace = (await evaluate(
    "JSON.stringify(process.getBuiltinModule('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space'))",
  )) as string;
  const { space_size: size } = JSON.parse(newSpace) as { space_size: number };
  // Two semi-spaces of V8's initial 1 MiB; without the start-up setting this reads 16–32 MiB.
  assert.ok(size <= 4 * 1024 * 1024, `new space is ${(size / 2 ** 20).toFixed(1)} MiB`);
});

test('streaming output does not keep V8 running full collections back to back', async () => {
  const container = await startContainer(docker, { labels: podLabels('default', 'stream', 'app') });
  try {
    // Every full (major) collection in the agent from here on is counted.
    await evaluate(`(() => {
      const { PerformanceObserver, constants } = process.getBuiltinModule('node:perf_hooks');
      globalThis.__majorCollections = 0;
      const count = (entries) => { for (const entry of entries) if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) globalThis.__majorCollections++; };
      const observer = new PerformanceObserver((list) => count(list.getEntries()));
      observer.observe({ entryTypes: ['gc'] });
      globalThis.__stopCounting = () => { count(observer.takeRecords()); observer.disconnect(); return globalThis.__majorCollections; };
      return true;
    })()`);
    const megabytes = 256;
    const ws = await openExec(agent, execPath('default', 'stream', { command: ['dd', 'if=/dev/zero', 'bs=1M', `count=${megabytes}`], container: 'app', stdout: true, stderr: true }));
    let received = 0;
    onMessage(ws, (data) => {
      if (data[0] === 1) received += data.length - 1;
    });
    await once(ws, 'close');
    const majorCollections = (await evaluate('globalThis.__stopCounting()')) as number;
    assert.equal(received, megabytes * 2 ** 20, 'all of the output arrived');
    // With V8's own threshold the agent ran one full collection after another (17–25 per 512 MB,
    // each freeing next to nothing); with the old generation's headroom, 0–1.
    assert.ok(majorCollections <= 2, `${majorCollections} full collections while ${megabytes} MiB streamed through the agent`);
  } finally {
    await container.remove();
  }
});
