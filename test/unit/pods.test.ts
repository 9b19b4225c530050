// Unit tests for pod synthesis (src/target/pods.ts) and target resolution (src/target/resolve.ts,
// plain exec mode) against a fake ContainerCatalog: cri-dockerd pods, sandboxes, plain containers in
// namespace `docker`, restarts, ordering, container choice and the refusal codes/messages.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { ContainerCatalog, ContainerSummary } from '../../src/backend/types.js';
import {
  DOCKER_NAMESPACE,
  LABEL_CONTAINER_NAME,
  LABEL_DOCKER_TYPE,
  LABEL_POD_NAME,
  LABEL_POD_NAMESPACE,
  LABEL_POD_UID,
  synthesizePods,
  type PodView,
} from '../../src/target/pods.js';
import { chooseContainer, TargetError, TargetResolver, type Target, type TargetRules } from '../../src/target/resolve.js';
import { policyTarget } from '../../src/server/access.js';

let nextId = 0;

/** A container as the engine lists it; cri-dockerd labels when `pod` is given. */
function container(
  name: string,
  opts: {
    pod?: { namespace: string; name: string; uid?: string; container?: string | null; type?: string };
    state?: string;
    created?: number;
    image?: string;
    id?: string;
  } = {},
): ContainerSummary {
  const labels: Record<string, string> = {};
  if (opts.pod) {
    labels[LABEL_POD_NAMESPACE] = opts.pod.namespace;
    labels[LABEL_POD_NAME] = opts.pod.name;
    if (opts.pod.uid) labels[LABEL_POD_UID] = opts.pod.uid;
    if (opts.pod.container !== null) labels[LABEL_CONTAINER_NAME] = opts.pod.container ?? name;
    labels[LABEL_DOCKER_TYPE] = opts.pod.type ?? 'container';
  }
  return {
    id: opts.id ?? `id${String(++nextId).padStart(4, '0')}`,
    name,
    image: opts.image ?? 'busybox',
    labels,
    state: opts.state ?? 'running',
    created: opts.created ?? 1000,
  };
}

function catalogOf(containers: ContainerSummary[]): ContainerCatalog & { calls: number; pidCalls: number } {
  const catalog = {
    calls: 0,
    pidCalls: 0,
    async listContainers() {
      catalog.calls++;
      return containers;
    },
    async containerPid() {
      catalog.pidCalls++;
      return 0;
    },
  };
  return catalog;
}

/** A resolver with the privileged modes off: plain exec only. */
function resolverOf(catalog: ContainerCatalog, nsenterEnabled = false): TargetResolver {
  return new TargetResolver(catalog, { nodeName: 'node-a', nsenterEnabled });
}

function resolveTarget(catalog: ContainerCatalog, namespace: string, pod: string, container: string | undefined, rules: TargetRules) {
  return resolverOf(catalog).resolve({ namespace, pod, container, namespaces: [], rules });
}

function names(pods: PodView[]): string[] {
  return pods.map((p) => `${p.namespace}/${p.name}`);
}

/** Asserts a TargetError with code, reason and message fragments. */
function refusal(fn: () => unknown, code: number, reason: string, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TargetError, `expected TargetError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.reason, reason);
    for (const f of fragments) assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

async function refusalAsync(fn: () => Promise<unknown>, code: number, reason: string, ...fragments: string[]): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof TargetError, `expected TargetError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.reason, reason);
    for (const f of fragments) assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${JSON.stringify(f)}`);
    return true;
  });
}

describe('synthesizePods: cri-dockerd pods', () => {
  it('groups labelled containers into their pods, named by the container-name label', () => {
    const pods = synthesizePods([
      container('k8s_app_web-1_prod_uid1_0', { pod: { namespace: 'prod', name: 'web-1', uid: 'uid1', container: 'app' }, created: 50 }),
      container('k8s_sidecar_web-1_prod_uid1_0', { pod: { namespace: 'prod', name: 'web-1', uid: 'uid1', container: 'sidecar' }, created: 40 }),
      container('k8s_app_web-2_prod_uid2_0', { pod: { namespace: 'prod', name: 'web-2', uid: 'uid2', container: 'app' } }),
    ]);
    assert.deepEqual(names(pods), ['prod/web-1', 'prod/web-2']);
    const web1 = pods[0]!;
    assert.equal(web1.uid, 'uid1');
    assert.deepEqual(web1.containers.map((c) => c.name), ['app', 'sidecar']);
    assert.equal(web1.createdAt, 40, 'a pod is as old as its oldest container');
    assert.ok(web1.containers[0]!.containerId.startsWith('id'));
  });

  it('the same pod name in two namespaces is two pods', () => {
    const pods = synthesizePods([
      container('a', { pod: { namespace: 'ns1', name: 'p', container: 'c' } }),
      container('b', { pod: { namespace: 'ns2', name: 'p', container: 'c' } }),
    ]);
    assert.deepEqual(names(pods), ['ns1/p', 'ns2/p']);
  });

  it('without a uid label, the uid is derived from namespace and name', () => {
    const [pod] = synthesizePods([container('x', { pod: { namespace: 'ns', name: 'p', container: 'c' } })]);
    assert.equal(pod!.uid, 'execlet-ns-p');
  });

  it('excludes sandboxes: type podsandbox, or the container-name label missing, empty or POD', () => {
    const pods = synthesizePods([
      container('k8s_POD_p_ns_u_0', { pod: { namespace: 'ns', name: 'p', type: 'podsandbox', container: 'anything' } }),
      container('no-label', { pod: { namespace: 'ns', name: 'p', container: null } }),
      container('empty-label', { pod: { namespace: 'ns', name: 'p', container: '' } }),
      container('pod-label', { pod: { namespace: 'ns', name: 'p', container: 'POD' } }),
      container('real', { pod: { namespace: 'ns', name: 'p', container: 'app' } }),
    ]);
    assert.equal(pods.length, 1);
    assert.deepEqual(pods[0]!.containers.map((c) => c.name), ['app']);
  });

  it('a pod with only a sandbox is not listed (nor is the sandbox a docker-namespace pod)', () => {
    const pods = synthesizePods([container('k8s_POD_p_ns_u_0', { pod: { namespace: 'ns', name: 'p', type: 'podsandbox', container: 'POD' } })]);
    assert.deepEqual(pods, []);
  });

  it('keeps labelled containers that are not running (so exec can say "not running")', () => {
    const pods = synthesizePods([container('c', { pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'exited' })]);
    assert.equal(pods.length, 1);
    assert.equal(pods[0]!.containers[0]!.state, 'exited');
  });

  it('restarts: of two containers with the same name, the running one is kept, whichever is newer', () => {
    for (const order of [0, 1]) {
      const old = container('k8s_app_p_ns_u_0', { id: 'old-running', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'running', created: 10 });
      const young = container('k8s_app_p_ns_u_1', { id: 'new-exited', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'exited', created: 20 });
      const [pod] = synthesizePods(order === 0 ? [old, young] : [young, old]);
      assert.equal(pod!.containers.length, 1);
      assert.equal(pod!.containers[0]!.containerId, 'old-running', `order ${order}`);
    }
  });

  it('restarts: with none running, the newest is kept, whatever the listing order', () => {
    for (const order of [0, 1]) {
      const a = container('k8s_app_p_ns_u_0', { id: 'older', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'exited', created: 10 });
      const b = container('k8s_app_p_ns_u_1', { id: 'newer', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'created', created: 30 });
      const [pod] = synthesizePods(order === 0 ? [a, b] : [b, a]);
      assert.equal(pod!.containers[0]!.containerId, 'newer', `order ${order}`);
      assert.equal(pod!.createdAt, 10);
    }
  });

  it('three generations: the newest non-running loses to the running one in the middle', () => {
    const pod = synthesizePods([
      container('g0', { id: 'g0', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'exited', created: 1 }),
      container('g1', { id: 'g1', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'running', created: 2 }),
      container('g2', { id: 'g2', pod: { namespace: 'ns', name: 'p', container: 'app' }, state: 'exited', created: 3 }),
    ])[0]!;
    assert.deepEqual(pod.containers.map((c) => c.containerId), ['g1']);
  });
});

describe('synthesizePods: plain containers', () => {
  it('an unlabelled running container is a one-container pod in namespace docker, named after it', () => {
    const pods = synthesizePods([container('redis', { id: 'abc123', image: 'redis:7', created: 77 })]);
    assert.equal(pods.length, 1);
    const pod = pods[0]!;
    assert.equal(pod.namespace, DOCKER_NAMESPACE);
    assert.equal(pod.namespace, 'docker');
    assert.equal(pod.name, 'redis');
    assert.equal(pod.uid, 'abc123');
    assert.equal(pod.createdAt, 77);
    assert.deepEqual(pod.containers, [{ name: 'redis', containerId: 'abc123', image: 'redis:7', state: 'running', startedAt: 77, labels: {} }]);
  });

  it('unlabelled containers that are not running are left out', () => {
    for (const state of ['exited', 'created', 'paused', 'restarting', 'dead']) {
      assert.deepEqual(synthesizePods([container('x', { state })]), [], state);
    }
  });

  it('a container with only one of the two pod labels counts as unlabelled', () => {
    const half: ContainerSummary = { ...container('half'), labels: { [LABEL_POD_NAMESPACE]: 'ns', [LABEL_CONTAINER_NAME]: 'c' } };
    assert.deepEqual(names(synthesizePods([half])), ['docker/half']);
  });
});

describe('synthesizePods: ordering', () => {
  it('sorts pods by namespace then name, and containers by name', () => {
    const pods = synthesizePods([
      container('zeta'),
      container('z1', { pod: { namespace: 'b', name: 'p2', container: 'zz' } }),
      container('z2', { pod: { namespace: 'b', name: 'p2', container: 'aa' } }),
      container('z3', { pod: { namespace: 'b', name: 'p1', container: 'mm' } }),
      container('z4', { pod: { namespace: 'a', name: 'p9', container: 'c' } }),
      container('alpha'),
    ]);
    assert.deepEqual(names(pods), ['a/p9', 'b/p1', 'b/p2', 'docker/alpha', 'docker/zeta']);
    assert.deepEqual(pods[2]!.containers.map((c) => c.name), ['aa', 'zz']);
  });

  it('the listing is the same whatever order the engine returns containers in', () => {
    const input = [
      container('c1', { pod: { namespace: 'x', name: 'p', container: 'b' } }),
      container('c2', { pod: { namespace: 'x', name: 'p', container: 'a' } }),
      container('plain'),
    ];
    assert.deepEqual(synthesizePods(input), synthesizePods([...input].reverse()));
  });

  it(
    'a plain container named like a cri-dockerd pod in namespace docker: same result in either listing order, labelled container kept',
    () => {
      const labelled = container('k8s_app_redis_docker_u_0', { id: 'labelled', pod: { namespace: 'docker', name: 'redis', uid: 'u', container: 'app' } });
      const plain = container('redis', { id: 'plain' });
      const a = synthesizePods([labelled, plain]);
      const b = synthesizePods([plain, labelled]);
      assert.deepEqual(a, b);
      assert.ok(a.some((p) => p.containers.some((c) => c.containerId === 'labelled')), 'the cri-dockerd container is still reachable');
    },
  );
});

describe('chooseContainer', () => {
  const pod = (containers: Array<{ name: string; state?: string }>): PodView => ({
    namespace: 'ns',
    name: 'web',
    uid: 'u',
    createdAt: 0,
    containers: containers.map((c, i) => ({ name: c.name, containerId: `cid${i}`, image: 'img', state: c.state ?? 'running', startedAt: 0, labels: {} })),
  });

  it('defaults to the only container, under both rules', () => {
    for (const rules of ['apiserver', 'kubelet'] as const) {
      assert.equal(chooseContainer(pod([{ name: 'app' }]), undefined, rules).name, 'app');
    }
  });

  it('an empty requested name counts as none', () => {
    assert.equal(chooseContainer(pod([{ name: 'app' }]), '', 'apiserver').name, 'app');
  });

  it('several containers and none named: 400 listing the choices', () => {
    refusal(() => chooseContainer(pod([{ name: 'a' }, { name: 'b' }]), undefined, 'apiserver'), 400, 'BadRequest', 'a container name must be specified for pod web', 'choose one of: [a b]');
  });

  it('picks the named container among several', () => {
    assert.equal(chooseContainer(pod([{ name: 'a' }, { name: 'b' }]), 'b', 'kubelet').containerId, 'cid1');
  });

  it('an unknown container: 400 under apiserver rules, 404 under kubelet rules, both listing the choices', () => {
    const p = pod([{ name: 'a' }, { name: 'b' }]);
    refusal(() => chooseContainer(p, 'nope', 'apiserver'), 400, 'BadRequest', 'container nope is not valid for pod web in namespace ns', 'choose one of: [a b]');
    refusal(() => chooseContainer(p, 'nope', 'kubelet'), 404, 'NotFound', 'container nope is not valid for pod web', 'choose one of: [a b]');
  });

  it('a container name is matched exactly (no case folding, no prefix)', () => {
    const p = pod([{ name: 'app' }]);
    refusal(() => chooseContainer(p, 'App', 'apiserver'), 400, 'BadRequest');
    refusal(() => chooseContainer(p, 'ap', 'apiserver'), 400, 'BadRequest');
  });

  it('a container that is not running: 409 naming it, its pod and its state (named or defaulted)', () => {
    refusal(() => chooseContainer(pod([{ name: 'a', state: 'exited' }]), undefined, 'apiserver'), 409, 'Conflict', 'container a in pod ns/web is not running (state: exited)');
    refusal(() => chooseContainer(pod([{ name: 'a' }, { name: 'b', state: 'paused' }]), 'b', 'kubelet'), 409, 'Conflict', '(state: paused)');
  });
});

describe('TargetResolver.resolve (exec mode)', () => {
  const containers = [
    container('k8s_app_web_prod_u_0', { id: 'app-id', pod: { namespace: 'prod', name: 'web', container: 'app' } }),
    container('k8s_log_web_prod_u_0', { id: 'log-id', pod: { namespace: 'prod', name: 'web', container: 'log' }, state: 'exited' }),
    container('redis', { id: 'redis-id' }),
  ];

  it('resolves a cri-dockerd pod container and a plain container to a place in that container', async () => {
    const catalog = catalogOf(containers);
    const app = await resolveTarget(catalog, 'prod', 'web', 'app', 'apiserver');
    assert.equal(app.container.containerId, 'app-id');
    assert.equal(app.pod.name, 'web');
    assert.equal(app.mode, 'exec');
    assert.deepEqual(app.place, { kind: 'container', containerId: 'app-id' });
    const redis = await resolveTarget(catalog, 'docker', 'redis', undefined, 'kubelet');
    assert.deepEqual(redis.place, { kind: 'container', containerId: 'redis-id' });
    assert.equal(catalog.pidCalls, 0, 'plain exec needs no host PID');
  });

  it('an unknown pod: 404 naming the namespace and the pod', async () => {
    await refusalAsync(() => resolveTarget(catalogOf(containers), 'prod', 'nope', 'app', 'apiserver'), 404, 'NotFound', 'pods "nope" not found in namespace "prod"');
    // A pod exists by name only in its own namespace.
    await refusalAsync(() => resolveTarget(catalogOf(containers), 'docker', 'web', undefined, 'kubelet'), 404, 'NotFound', 'pods "web" not found in namespace "docker"');
  });

  it('passes the refusals of chooseContainer through', async () => {
    await refusalAsync(() => resolveTarget(catalogOf(containers), 'prod', 'web', undefined, 'apiserver'), 400, 'BadRequest', 'choose one of: [app log]');
    await refusalAsync(() => resolveTarget(catalogOf(containers), 'prod', 'web', 'log', 'apiserver'), 409, 'Conflict', 'state: exited');
  });

  it('asks the catalog afresh on every call (no stale cache)', async () => {
    const list = [container('one', { id: 'one-id' })];
    const catalog = catalogOf(list);
    await resolveTarget(catalog, 'docker', 'one', undefined, 'apiserver');
    list.push(container('two', { id: 'two-id' }));
    assert.equal((await resolveTarget(catalog, 'docker', 'two', undefined, 'apiserver')).container.containerId, 'two-id');
    assert.equal(catalog.calls, 2);
  });

  it('listPods and findPod', async () => {
    const resolver = resolverOf(catalogOf(containers));
    assert.deepEqual(names(await resolver.listPods()), ['docker/redis', 'prod/web']);
    assert.equal((await resolver.findPod('prod', 'web'))?.containers.length, 2);
    assert.equal(await resolver.findPod('prod', 'redis'), null);
  });

  it('a catalog failure propagates as is (not turned into a 404)', async () => {
    const failing: ContainerCatalog = {
      async listContainers() {
        throw new Error('engine down');
      },
      async containerPid() {
        return 0;
      },
    };
    await assert.rejects(() => resolveTarget(failing, 'docker', 'x', undefined, 'apiserver'), /engine down/);
  });
});

describe("the policy's docker: selector", () => {
  it('selects plain containers only, not a Kubernetes pod in a namespace named docker', () => {
    const pods = synthesizePods([container('db-plain'), container('c', { pod: { namespace: DOCKER_NAMESPACE, name: 'payroll', container: 'db-1' } })]);
    const targetOf = (pod: PodView): Target => ({ pod, container: pod.containers[0]!, mode: 'exec', place: { kind: 'container', containerId: pod.containers[0]!.containerId } });
    const plain = pods.find((p) => p.name === 'db-plain')!;
    const kubernetes = pods.find((p) => p.name === 'payroll')!;
    assert.equal(plain.plain, true);
    assert.equal(kubernetes.plain, undefined);
    assert.equal(policyTarget(targetOf(plain)).dockerName, 'db-plain');
    assert.equal(policyTarget(targetOf(kubernetes)).dockerName, undefined, 'cri-dockerd pod docker/payroll is no plain container');
  });
});
