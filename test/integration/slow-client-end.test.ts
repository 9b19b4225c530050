// The end of a session whose client has not yet taken its output: the process has exited, its
// output (held by the kernel's buffers towards the client, and by the agent) and the Status are on
// their way. A client that takes them late still gets all of it, the Status and a normal close —
// pings stop at the end, since their pongs would wait behind that output. One that takes nothing
// more is waited for past the close wait while its kernel answers and output for it is still on the
// agent's side (a destroyed connection would lose that output), up to the idle timeout; one whose
// kernel holds all of it is closed once the close wait is over, and still reads all of it later.
// Agent shutdown ends such a wait within its grace.
// The agent runs in this process, with the close wait shortened to 3 s, the idle timeout to 8 s and
// pings every second.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { defaultSettings } from '../../src/config/settings.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { collect, execPath, openExec } from '../helpers/exec-client.js';
import { startInProcessAgent, type InProcessAgent } from '../helpers/in-process-agent.js';
import { waitUntil } from '../helpers/proc-scan.js';

const CLOSE_WAIT_MS = 3000;
const IDLE_TIMEOUT_MS = 8000;
/** More than the client's receive buffer takes while it reads nothing (~128 KiB): the rest waits on the agent's side. */
const OUTPUT_BYTES = 512 * 1024;
/** Less than the client's receive buffer: all of it reaches the client's kernel at once. */
const SMALL_OUTPUT_BYTES = 8 * 1024;

let docker: TestDocker;
let container: TestContainer;
let agent: InProcessAgent;

before(async () => {
  docker = await useTestDocker();
  container = await startContainer(docker, { labels: podLabels('default', 'slow', 'app') });
  agent = await startInProcessAgent(docker, 'slow', { closeWaitMs: CLOSE_WAIT_MS }, { sessions: { ...defaultSettings().sessions, pingIntervalSeconds: 1, idleTimeoutSeconds: IDLE_TIMEOUT_MS / 1000 } });
});

after(async () => {
  await agent?.close();
  await container?.remove();
  await docker?.stop();
});

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)); // a span of time the client stalls, not synchronisation

/** Opens an exec of `head -c BYTES /dev/zero` whose client reads nothing; the agent's side of its connection, and when that closed. */
async function stalledExec(bytes = OUTPUT_BYTES) {
  const accepted = once(agent.agent.app.server, 'connection') as Promise<[Socket]>;
  const ws = await openExec(agent, execPath('default', 'slow', { command: ['head', '-c', String(bytes), '/dev/zero'], stdout: true, stderr: true }));
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

test('a client that takes its output only after the close wait, while its kernel answers, gets all of it, the Status and 1000', async () => {
  const { ws, clientSide, agentClosedAt } = await stalledExec();
  const result = collect(ws);
  // kubectl piped into `less`, the screen full for twice the close wait.
  const closedMeanwhile = await Promise.race([agentClosedAt.then(() => true), pause(2 * CLOSE_WAIT_MS).then(() => false)]);
  assert.equal(closedMeanwhile, false, 'the agent kept the connection past the close wait: output for the client was still on its side');
  clientSide.resume();
  const r = await result;
  assert.equal(r.stdout.length, OUTPUT_BYTES);
  assert.equal(JSON.parse(r.error).status, 'Success');
  assert.equal(r.closeCode, 1000);
});

test('a client that takes nothing more after the end, output for it still on the agent’s side, is closed at the idle timeout, not before', async () => {
  const { ws, clientSide, agentClosedAt } = await stalledExec();
  const openedAt = performance.now();
  try {
    const closedAfter = (await agentClosedAt) - openedAt;
    assert.ok(closedAfter >= IDLE_TIMEOUT_MS - 200, `closed ${Math.round(closedAfter)} ms after the exec opened: before the idle timeout`);
    assert.ok(closedAfter < IDLE_TIMEOUT_MS + 3000, `closed ${Math.round(closedAfter)} ms after the exec opened`);
  } finally {
    clientSide.destroy();
    ws.terminate();
  }
});

test('a client whose kernel holds all of its output is closed once the close wait is over, and still reads all of it, the Status and 1000', async () => {
  const { ws, clientSide, agentClosedAt } = await stalledExec(SMALL_OUTPUT_BYTES);
  const openedAt = performance.now();
  const result = collect(ws);
  const closedAfter = (await agentClosedAt) - openedAt;
  assert.ok(closedAfter >= CLOSE_WAIT_MS - 200, `closed ${Math.round(closedAfter)} ms after the exec opened: before the close wait was over`);
  assert.ok(closedAfter < CLOSE_WAIT_MS + 3000, `closed ${Math.round(closedAfter)} ms after the exec opened: waited on though nothing was left on its side`);
  clientSide.resume();
  const r = await result;
  assert.equal(r.stdout.length, SMALL_OUTPUT_BYTES);
  assert.equal(JSON.parse(r.error).status, 'Success');
  assert.equal(r.closeCode, 1000);
});

test('agent shutdown does not wait on for a client that is there but takes nothing: its grace bounds the wait', async () => {
  const own = await startInProcessAgent(docker, 'slow', { closeWaitMs: CLOSE_WAIT_MS }, { sessions: { ...defaultSettings().sessions, pingIntervalSeconds: 1, idleTimeoutSeconds: 600 } });
  let closed = false;
  try {
    const accepted = once(own.agent.app.server, 'connection') as Promise<[Socket]>;
    const ws = await openExec(own, execPath('default', 'slow', { command: ['head', '-c', String(OUTPUT_BYTES), '/dev/zero'], stdout: true, stderr: true }));
    const [agentSide] = await accepted;
    const clientSide = (ws as unknown as { _socket: Socket })._socket;
    clientSide.pause();
    // The session has ended (its process exited); its connection waits for the client, which is there.
    await waitUntil(() => own.agent.registry.size === 0, 10_000, 'the session to end');
    const agentClosed = once(agentSide, 'close');
    const started = performance.now();
    await own.agent.shutdown(2000);
    closed = true;
    const took = performance.now() - started;
    assert.ok(took < 4000, `shutdown took ${Math.round(took)} ms with a grace of 2 s (the wait for the client runs to 10 minutes)`);
    await agentClosed;
    clientSide.destroy();
  } finally {
    if (!closed) await own.agent.close();
    await own.close().catch(() => undefined);
  }
});
