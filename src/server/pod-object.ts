// Renders a synthesized pod as the Kubernetes Pod JSON kubectl expects (kind, apiVersion,
// metadata.namespace, spec.containers, status.phase).
import type { PodView } from '../target/pods.js';

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function podObject(pod: PodView, nodeName: string): Record<string, unknown> {
  const running = pod.containers.some((c) => c.state === 'running');
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      uid: pod.uid,
      creationTimestamp: iso(pod.createdAt),
    },
    spec: {
      nodeName,
      containers: pod.containers.map((c) => ({ name: c.name, image: c.image })),
    },
    status: {
      phase: running ? 'Running' : 'Pending',
      containerStatuses: pod.containers.map((c) => ({
        name: c.name,
        containerID: `docker://${c.containerId}`,
        image: c.image,
        ready: c.state === 'running',
        started: c.state === 'running',
        restartCount: 0,
        state: c.state === 'running' ? { running: { startedAt: iso(c.startedAt) } } : { waiting: { reason: c.state } },
      })),
    },
  };
}

export function podListObject(pods: PodView[], nodeName: string): Record<string, unknown> {
  return { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '' }, items: pods.map((pod) => podObject(pod, nodeName)) };
}
