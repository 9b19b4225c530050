// Unit tests for how the target resolver (src/target/resolve.ts) reuses the engine's container list
// and container PIDs with a change feed, and for the feed itself (src/backend/container-changes.ts)
// on a fake event stream: reuse until a change, a list asked for before a change, the bounds when the
// feed is not live or goes quiet, a PID whose process is gone, and what counts as a change.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';

import { ContainerChanges } from '../../src/backend/container-changes.js';
import type { ContainerChangeFeed } from '../../src/backend/types.js';
import type { EngineEvent } from '../../src/backend/engine-client.js';
import { EngineEventStream } from '../../src/backend/engine-events.js';
import type { ContainerCatalog, ContainerSummary } from '../../src/backend/types.js';
import { readProcStat } from '../../src/process-tree.js';
import { LABEL_CONTAINER_NAME, LABEL_DOCKER_TYPE, LABEL_POD_NAME, LABEL_POD_NAMESPACE } from '../../src/target/pods.js';
import { TargetResolver, type ResolverOptions } from '../../src/target/resolve.js';

const APP: ContainerSummary = {
  id: 'app-id',
  name: 'k8s_app_web',
  image: 'busybox',
  labels: { [LABEL_POD_NAMESPACE]: 'prod', [LABEL_POD_NAME]: 'web', [LABEL_CONTAINER_NAME]: 'app', [LABEL_DOCKER_TYPE]: 'container' },
  state: 'running',
  created: 1000,
};

/** A catalog that counts its calls; `hold()` makes the next list wait until released. */
function countingCatalog() {
  let held: Array<() => void> | null = null;
  const catalog = {
    lists: 0,
    pids: 0,
    async listContainers(): Promise<ContainerSummary[]> {
      catalog.lists++;
      if (held) await new Promise<void>((resolve) => held!.push(resolve));
      return [APP];
    },
    // A PID that exists on this machine, so the nsenter mode's checks pass.
    async containerPid(): Promise<number> {
      catalog.pids++;
      return process.pid;
    },
    hold() {
      held = [];
    },
    /** Lets the held lists answer, the last asked for first (the order that would let an older list win). */
    release() {
      const waiting = held ?? [];
      held = null;
      for (const resolve of waiting.reverse()) resolve();
    },
  } satisfies ContainerCatalog & Record<string, unknown>;
  return catalog;
}

function resolverWith(catalog: ContainerCatalog, options: Partial<ResolverOptions>): TargetResolver {
  return new TargetResolver(catalog, { nodeName: 'node-a', nsenterEnabled: true, ...options });
}

const resolveApp = (resolver: TargetResolver, container = 'app') => resolver.resolve({ namespace: 'prod', pod: 'web', container, namespaces: [], rules: 'apiserver' });

describe('the resolver with a change feed', () => {
  it('reuses a list for as long as a live feed reports no change, then lists again after one', async () => {
    const catalog = countingCatalog();
    const feed = { live: true, generation: 0 };
    // listCacheMs 0: only the feed can make a list reusable.
    const resolver = resolverWith(catalog, { listCacheMs: 0, changes: feed });
    await resolveApp(resolver);
    await resolveApp(resolver);
    await resolveApp(resolver);
    assert.equal(catalog.lists, 1);
    feed.generation++;
    await resolveApp(resolver);
    assert.equal(catalog.lists, 2);
    await resolveApp(resolver);
    assert.equal(catalog.lists, 2);
  });

  it('does not trust a feed that is not live: listCacheMs bounds the reuse, as without a feed', async () => {
    const catalog = countingCatalog();
    const resolver = resolverWith(catalog, { listCacheMs: 0, changes: { live: false, generation: 0 } });
    await resolveApp(resolver);
    await resolveApp(resolver);
    assert.equal(catalog.lists, 2);
  });

  it('bounds the reuse by liveListCacheMs even when nothing changed (a feed gone quiet)', async () => {
    const catalog = countingCatalog();
    const resolver = resolverWith(catalog, { listCacheMs: 0, liveListCacheMs: 0, changes: { live: true, generation: 0 } });
    await resolveApp(resolver);
    await resolveApp(resolver);
    assert.equal(catalog.lists, 2);
  });

  it('a list asked for before a change is not shared with, nor reused by, what comes after it', async () => {
    const catalog = countingCatalog();
    const feed = { live: true, generation: 0 };
    const resolver = resolverWith(catalog, { listCacheMs: 0, changes: feed });
    catalog.hold();
    const before = resolveApp(resolver);
    const sameTime = resolveApp(resolver);
    feed.generation++;
    const after = resolveApp(resolver);
    // The list asked for after the change answers first; the older one, answering last, must not replace it.
    catalog.release();
    await Promise.all([before, sameTime, after]);
    assert.equal(catalog.lists, 2, 'one list before the change (shared by the two asking then), one after it');
    await resolveApp(resolver);
    assert.equal(catalog.lists, 2, 'the list asked for after the change is reused');
  });

  it('reuses a container PID (nsenter mode) while nothing changed, and asks again after a change', async () => {
    const catalog = countingCatalog();
    const feed = { live: true, generation: 0 };
    const resolver = resolverWith(catalog, { listCacheMs: 0, changes: feed });
    const target = await resolveApp(resolver, 'app.nsenter');
    assert.deepEqual(target.place, {
      kind: 'namespaces',
      pid: process.pid,
      namespaces: target.place.kind === 'namespaces' ? target.place.namespaces : [],
      toolbox: false,
      // What tells this process from a later one with its PID, when the session starts.
      startTime: readProcStat(process.pid)!.startTime,
    });
    await resolveApp(resolver, 'app.nsenter');
    assert.equal(catalog.pids, 1);
    feed.generation++;
    await resolveApp(resolver, 'app.nsenter');
    assert.equal(catalog.pids, 2);
  });

  it('asks for the PID again once the process that had it is gone, changes heard or not', async () => {
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await once(child, 'spawn');
    let pid = child.pid!;
    let asked = 0;
    const catalog: ContainerCatalog = {
      listContainers: async () => [APP],
      containerPid: async () => (asked++, pid),
    };
    const resolver = resolverWith(catalog, { listCacheMs: 60_000, changes: { live: true, generation: 0 } });
    try {
      assert.equal(((await resolveApp(resolver, 'app.nsenter')).place as { pid: number }).pid, child.pid);
      assert.equal(((await resolveApp(resolver, 'app.nsenter')).place as { pid: number }).pid, child.pid);
      assert.equal(asked, 1);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    pid = process.pid;
    assert.equal(((await resolveApp(resolver, 'app.nsenter')).place as { pid: number }).pid, process.pid);
    assert.equal(asked, 2);
  });
});

function fakeStream(): { events: EngineEventStream; send(event: EngineEvent): void; end(): void; opened: Promise<void> } {
  let onEvent: (event: EngineEvent) => void = () => undefined;
  let onEnd: (err: Error) => void = () => undefined;
  let opened!: () => void;
  const openedPromise = new Promise<void>((resolve) => (opened = resolve));
  const events = new EngineEventStream((eventHandler, endHandler) => {
    onEvent = eventHandler;
    onEnd = endHandler;
    setImmediate(opened);
    return Promise.resolve({ close() {} });
  });
  return { events, send: (event) => onEvent(event), end: () => onEnd(new Error('dropped')), opened: openedPromise };
}

describe('ContainerChanges', () => {
  it('is live while the stream is connected, and moves on connecting and on dropping', async () => {
    const { events, end, opened } = fakeStream();
    const changes: ContainerChangeFeed = new ContainerChanges(events);
    assert.equal(changes.live, false);
    const start = changes.generation;
    events.start();
    await opened;
    assert.equal(changes.live, true);
    assert.ok(changes.generation > start, 'connecting: changes may have gone by unheard before');
    const connected = changes.generation;
    end();
    assert.equal(changes.live, false);
    assert.ok(changes.generation > connected);
    events.close();
  });

  it('moves when the engine contradicts a list (an event went by unheard)', () => {
    const changes = new ContainerChanges(fakeStream().events);
    const before = changes.generation;
    changes.contradicted();
    assert.ok(changes.generation > before);
  });

  it('moves on container lifecycle events, not on exec, health or other events', async () => {
    const { events, send, opened } = fakeStream();
    const changes = new ContainerChanges(events);
    events.start();
    await opened;
    let last = changes.generation;
    for (const action of ['create', 'start', 'restart', 'die', 'stop', 'pause', 'unpause', 'rename', 'destroy']) {
      send({ Type: 'container', Action: action, Actor: { ID: 'c1' } });
      assert.ok(changes.generation > last, action);
      last = changes.generation;
    }
    for (const action of ['exec_create: sh', 'exec_start: sh', 'exec_die', 'health_status: healthy', 'top', 'resize', 'attach', 'kill']) {
      send({ Type: 'container', Action: action, Actor: { ID: 'c1' } });
    }
    send({ Type: 'network', Action: 'destroy', Actor: { ID: 'n1' } });
    assert.equal(changes.generation, last);
    events.close();
  });
});
