// The agent keeps V8's young generation at its initial size while it starts (src/cli/young-generation.ts,
// imported before anything else), so an idle agent does not hold the 16 MiB of semi-space that
// loading its modules would otherwise leave committed. Read through the V8 inspector of an agent
// started with --inspect on a loopback port.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startAgent, type TestAgent } from '../helpers/agent.js';
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
