// Synthesizes Kubernetes pods from the engine's containers: containers labelled by cri-dockerd
// become their pods; every other running container is a one-container pod in namespace `docker`.
import type { ContainerSummary } from '../backend/types.js';

export const DOCKER_NAMESPACE = 'docker';

export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
export const LABEL_DOCKER_TYPE = 'io.kubernetes.docker.type';

export interface PodContainer {
  name: string;
  containerId: string;
  image: string;
  state: string;
  startedAt: number;
  /** The engine labels of the container (policy label selectors). */
  labels: Record<string, string>;
}

export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  createdAt: number;
  containers: PodContainer[];
  /**
   * A plain Docker container's pod (namespace `docker`, not labelled by cri-dockerd): what a
   * policy's `docker:` selector matches. A Kubernetes pod in a namespace named `docker` is not one.
   */
  plain?: true;
}

function isSandbox(labels: Record<string, string>): boolean {
  const type = labels[LABEL_DOCKER_TYPE];
  if (type === 'podsandbox') return true;
  const containerName = labels[LABEL_CONTAINER_NAME];
  return containerName === undefined || containerName === '' || containerName === 'POD';
}

/** Of two containers with the same name in a pod (restarts), keep the running one, else the newest. */
function preferred(a: PodContainer, b: PodContainer): PodContainer {
  const aRunning = a.state === 'running';
  const bRunning = b.state === 'running';
  if (aRunning !== bRunning) return aRunning ? a : b;
  return a.startedAt >= b.startedAt ? a : b;
}

export function synthesizePods(containers: ContainerSummary[]): PodView[] {
  const pods = new Map<string, PodView>();
  // cri-dockerd's pods first: a plain container whose name collides with a pod in namespace
  // `docker` must not hide or join it, whatever order the engine lists them in.
  const isLabelled = (c: ContainerSummary) => Boolean(c.labels[LABEL_POD_NAMESPACE] && c.labels[LABEL_POD_NAME]);
  const ordered = [...containers.filter(isLabelled), ...containers.filter((c) => !isLabelled(c))];
  const labelledKeys = new Set<string>();
  for (const c of ordered) {
    const namespace = c.labels[LABEL_POD_NAMESPACE];
    const podName = c.labels[LABEL_POD_NAME];
    const container: PodContainer = { name: c.name, containerId: c.id, image: c.image, state: c.state, startedAt: c.created, labels: c.labels };
    let key: string;
    if (namespace && podName) {
      if (isSandbox(c.labels)) continue;
      container.name = c.labels[LABEL_CONTAINER_NAME]!;
      key = `${namespace}/${podName}`;
      labelledKeys.add(key);
      if (!pods.has(key)) {
        pods.set(key, { namespace, name: podName, uid: c.labels[LABEL_POD_UID] ?? `execlet-${namespace}-${podName}`, createdAt: c.created, containers: [] });
      }
    } else {
      if (c.state !== 'running') continue;
      key = `${DOCKER_NAMESPACE}/${c.name}`;
      if (labelledKeys.has(key)) continue;
      pods.set(key, { namespace: DOCKER_NAMESPACE, name: c.name, uid: c.id, createdAt: c.created, containers: [], plain: true });
    }
    const pod = pods.get(key)!;
    pod.createdAt = Math.min(pod.createdAt, c.created);
    const index = pod.containers.findIndex((existing) => existing.name === container.name);
    if (index === -1) pod.containers.push(container);
    else pod.containers[index] = preferred(pod.containers[index]!, container);
  }
  const list = [...pods.values()];
  for (const pod of list) pod.containers.sort((a, b) => a.name.localeCompare(b.name));
  return list.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
}
