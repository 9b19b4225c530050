// The end of a session whose client has not yet taken its output: the process has exited, its
// output (held by the kernel's buffers towards the client) and the Status are on their way. A client
// that takes them late still gets all of it, the Status and a normal close — pings stop at the end,
// since their pongs would wait behind that output — and one that takes nothing more is closed once
// the close wait is over, not before. The agent runs in this process, with the close wait shortened
// to 4 s and pings every second.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { defaultSettings } from '../../src/config/settings.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { collect, execPath, openExec } from '../helpers/exec-client.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';

const CLOSE_WAIT_MS = 4000;
/** Small enough for the kernel's buffers on loopback to hold whole while the client reads nothing. */
const OUTPUT_BYTES = 512 * 1024;

let docker: TestDocker;
let container: TestContainer;
let agent: InProcessAgent;

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'slow', 'app') });
  agent = await startInProcessAgent(docker, 'slow', { closeWaitMs: CLOSE_WAIT_MS }, { sessions: { ...defaultSettings().sessions, pingIntervalSeconds: 1 } });
});

after(async () => {
  await agent?.close();
  await container?.remove();
  await docker?.stop();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)); // a span of time the client stalls, not synchronisation

/** Opens an exec of `head -c OUTPUT_BYTES /dev/zero` whose client reads nothing; the agent's side of its connection, and when that closed. */
async function stalledExec() {
  const accepted = once(agent.agent.app.server, 'connection') as Promise<[Socket]>;
  const ws = await openExec(agent, execPath('default', 'slow', { command: ['head', '-c', String(OUTPUT_BYTES), '/dev/zero'], stdout: true, stderr: true }));
  const [agentSide] = await accepted;
  const clientSide = (ws as unknown as { _socket: Socket })._socket;
  clientSide.pause();
  const agentClosedAt = new Promise<number>((resolve) => agentSide.once('close', () => resolve(performance.now())));
  return { ws, clientSide, agentClosedAt };
}

test('a client that takes its output after the process ended, past two ping intervals, gets all of it, the Status and 1000', async () => {
  const { ws, clientSide, agentClosedAt } = await stalledExec();
  const result = collect(ws);
  // The process ends at once; the client takes nothing for 2.5 s (pings every 1 s would have
  // dropped it: their pongs wait behind the output), then all of it. Had the agent closed its side
  // meanwhile, what the kernel still held for the client would be lost to the reset that the
  // client's next message (kubectl pings every 5 s) meets.
  const closedMeanwhile = await Promise.race([agentClosedAt.then(() => true), pause(2500).then(() => false)]);
  assert.equal(closedMeanwhile, false, 'the agent kept the connection while the client was behind');
  clientSide.resume();
  const r = await result;
  assert.equal(r.stdout.length, OUTPUT_BYTES);
  assert.equal(JSON.parse(r.error).status, 'Success');
  assert.equal(r.closeCode, 1000);
});

test('a client that takes nothing more after the end is closed once the close wait is over, not before', async () => {
  const { ws, clientSide, agentClosedAt } = await stalledExec();
  const openedAt = performance.now();
  try {
    const closedAfter = (await agentClosedAt) - openedAt;
    assert.ok(closedAfter >= CLOSE_WAIT_MS - 200, `closed ${Math.round(closedAfter)} ms after the exec opened: before the close wait was over`);
    assert.ok(closedAfter < CLOSE_WAIT_MS + 5000, `closed ${Math.round(closedAfter)} ms after the exec opened`);
  } finally {
    clientSide.destroy();
    ws.terminate();
  }
});
