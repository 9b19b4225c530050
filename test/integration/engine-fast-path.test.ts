// What keeps an exec's round trip short, against a real engine through a recording pass-through:
// exit codes come from the engine's exec_die events (no inspect per exec) and from inspecting the
// exec again whenever the event stream is gone; the container list is reused until the engine
// reports a container change (for a second only while the event stream is gone); the TLS suite
// the server picks is AES-128-GCM.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { dockerClient, podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { startEngineProxy, type EngineProxy } from '../helpers/engine-proxy.js';
import { CONTAINER_CHANGE_ACTIONS } from '../../src/backend/container-changes.js';
import { runExec } from '../helpers/exec-client.js';
import { waitUntil } from '../helpers/proc-scan.js';

let docker: TestDocker;
let proxy: EngineProxy;
let agent: TestAgent;
let container: TestContainer;

const isEventStream = (line: string) => /^GET \/v[\d.]+\/events\?/.test(line);
const isExecInspect = (line: string) => /^GET \/v[\d.]+\/exec\/[0-9a-f]+\/json$/.test(line);
const isContainerList = (line: string) => /^GET \/v[\d.]+\/containers\/json/.test(line);

/** The container lists the agent asked the engine for while `work` ran. */
async function containerListsDuring(work: () => Promise<unknown>): Promise<number> {
  const before = proxy.requests.length;
  await work();
  return proxy.requests.slice(before).filter(isContainerList).length;
}

/** The container changes the engine reported between two moments (ms since the epoch), as "action name". */
async function containerChangesBetween(fromMs: number, toMs: number): Promise<string[]> {
  const stream = await dockerClient(docker).getEvents({
    since: Math.floor(fromMs / 1000),
    until: Math.ceil(toMs / 1000),
    filters: { type: ['container'], event: [...CONTAINER_CHANGE_ACTIONS] },
  });
  let text = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Action: string; timeNano: number; Actor?: { Attributes?: { name?: string } } })
    .filter((event) => event.timeNano / 1e6 >= fromMs && event.timeNano / 1e6 <= toMs)
    .map((event) => `${event.Action} ${event.Actor?.Attributes?.name ?? ''}`);
}

/** When the agent's event stream ended or was (re)subscribed (ms since the epoch), from its log. */
function subscriptionChangeTimes(): number[] {
  const times: number[] = [];
  for (const line of agent.output().split('\n')) {
    if (!line.includes("subscribed to the engine's events") && !line.includes("the engine's event stream ended")) continue;
    try {
      times.push((JSON.parse(line) as { time: number }).time);
    } catch {
      // a line still being written
    }
  }
  return times;
}

const execTrue = () => runExec(agent, 'default', 'web', { command: ['true'], container: 'app', stdout: true });

/** GET …/pods/NAME, which answers from the agent's container list: the HTTP status and the pod's phase. */
function getPod(name: string): Promise<{ status: number; phase?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: agent.port, path: `/api/v1/namespaces/default/pods/${name}`, ca: agent.caPem, headers: { authorization: `Bearer ${agent.token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, phase: (JSON.parse(body) as { status?: { phase?: string } }).status?.phase }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
const podStatus = async (name: string) => (await getPod(name)).status;

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

/**
 * Exit codes while the event stream is up. An exit whose exec_die event reached the agent later
 * than its grace after the stream ended (a busy engine) is inspected instead, rightly: such a
 * window is measured again, up to three times. Without the fast path every window inspects.
 */
async function exitCodesFromEvents(codes: number[]): Promise<{ codes: number[]; inspects: number }> {
  for (let attempt = 1; ; attempt++) {
    const r = await exitCodes(codes);
    assert.deepEqual(r.codes, codes);
    if (r.inspects === 0 || attempt === 3) return r;
  }
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
    const r = await exitCodesFromEvents([0, 1, 7, 42, 255]);
    assert.equal(r.inspects, 0, 'the exit codes came from the events');
  });

  test('event stream cut and refused: exit codes come from inspecting; once it is back, from events again', async () => {
    proxy.cutEventStreams({ refuseNew: true });
    await waitUntil(() => /exit codes come from inspecting each exec/.test(agent.output()), 5000, 'the agent noticing the stream ended');
    const degraded = await exitCodes([3, 0, 9]);
    assert.deepEqual(degraded.codes, [3, 0, 9]);
    // Once each, or more where the engine had not yet marked an exec ended when its stream did.
    assert.ok(degraded.inspects >= 3, `each exec inspected (${degraded.inspects} inspects)`);

    const resubscribed = nextRequest(isEventStream);
    proxy.cutEventStreams({ refuseNew: false });
    await resubscribed;
    await waitUntil(() => (agent.output().match(/subscribed to the engine's events/g) ?? []).length >= 2, 5000, 'the agent subscribing again');
    const restored = await exitCodesFromEvents([5, 0]);
    assert.equal(restored.inspects, 0, 'the exit codes came from the events again');
  });
});

describe('the container list from container events', () => {
  // The one-second reuse without events is what these tests step over: waiting is the condition.
  const PAST_THE_SECOND_MS = 1300;
  const LIST_REUSE_MS = 1000;
  const EVENT_DELIVERY_SLACK_MS = 500;

  test('with the event stream up, an exec after a quiet second does not list the containers again', async () => {
    // A container change anywhere on the engine (the suite's engine is shared: another file's
    // containers) or a (re)subscription moves the change feed, as it should, and the agent lists
    // again: a window with either is measured again.
    for (let attempt = 1; ; attempt++) {
      const from = Date.now();
      await execTrue();
      await sleep(PAST_THE_SECOND_MS);
      const lists = await containerListsDuring(execTrue);
      // The first exec may reuse a list made up to a second before `from` without a question: a
      // change or a (re)subscription since that list makes it out of date, and counts too.
      const since = from - LIST_REUSE_MS - EVENT_DELIVERY_SLACK_MS;
      const resubscribed = subscriptionChangeTimes().some((at) => at >= since);
      const changes = await containerChangesBetween(since, Date.now());
      if ((resubscribed || changes.length > 0) && attempt < 4) continue;
      assert.deepEqual(changes, [], 'no container changed meanwhile');
      assert.equal(resubscribed, false, 'the event stream stayed up');
      assert.equal(lists, 0);
      break;
    }
  });

  test('a removed container is gone from the list as soon as the engine says so, not a minute later', async () => {
    const gone = await startContainer(docker, { labels: podLabels('default', 'gone', 'app') });
    try {
      assert.equal(await podStatus('gone'), 200);
    } finally {
      await gone.remove();
    }
    // The agent hears the engine's destroy event a moment after the removal returns: poll for it.
    await waitUntil(async () => (await podStatus('gone')) === 404, 5000, 'the pod of the removed container answering 404');
  });

  test('a stopped container that is removed (its destroy event alone) is gone from the list at once', async () => {
    const stopped = await startContainer(docker, { labels: podLabels('default', 'stopped', 'app') });
    try {
      assert.equal((await getPod('stopped')).phase, 'Running');
      await dockerClient(docker).getContainer(stopped.id).stop({ t: 0 });
      // Its die event makes the list stale: the pod is listed again, with its container exited — so
      // the removal below is heard by its destroy event alone.
      await waitUntil(async () => (await getPod('stopped')).phase === 'Pending', 5000, 'the stopped pod listed with its container exited');
    } finally {
      await stopped.remove();
    }
    await waitUntil(async () => (await podStatus('stopped')) === 404, 5000, 'the pod of the removed container answering 404');
  });

  test('with the event stream gone, the list is reused for a second only; with it back, for longer again', async () => {
    const drops = (agent.output().match(/the container list is reused for 1 s/g) ?? []).length;
    proxy.cutEventStreams({ refuseNew: true });
    await waitUntil(() => (agent.output().match(/the container list is reused for 1 s/g) ?? []).length > drops, 5000, 'the agent noticing the stream ended');
    await execTrue();
    await sleep(PAST_THE_SECOND_MS);
    assert.equal(await containerListsDuring(execTrue), 1);

    const resubscribed = nextRequest(isEventStream);
    const subscriptions = (agent.output().match(/subscribed to the engine's events/g) ?? []).length;
    proxy.cutEventStreams({ refuseNew: false });
    await resubscribed;
    await waitUntil(() => (agent.output().match(/subscribed to the engine's events/g) ?? []).length > subscriptions, 5000, 'the agent subscribing again');
    // A list from before the reconnect is not trusted beyond its second: the exec after it lists anew.
    await sleep(PAST_THE_SECOND_MS);
    assert.equal(await containerListsDuring(execTrue), 1);
    await sleep(PAST_THE_SECOND_MS);
    assert.equal(await containerListsDuring(execTrue), 0);
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
