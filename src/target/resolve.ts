// Turns what a caller named (namespace, pod, container) into a concrete container, or a refusal
// carrying the HTTP code and message the Kubernetes API would give.
import type { ContainerCatalog } from '../backend/types.js';
import { synthesizePods, type PodContainer, type PodView } from './pods.js';

export interface Target {
  pod: PodView;
  container: PodContainer;
}

export type TargetRefusalReason = 'NotFound' | 'BadRequest' | 'Conflict';

export class TargetError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly reason: TargetRefusalReason,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

/** How names are checked: like the apiserver (container defaulting, 400s) or like the kubelet (404s). */
export type TargetRules = 'apiserver' | 'kubelet';

export async function listPods(catalog: ContainerCatalog): Promise<PodView[]> {
  return synthesizePods(await catalog.listContainers());
}

export async function findPod(catalog: ContainerCatalog, namespace: string, name: string): Promise<PodView | null> {
  return (await listPods(catalog)).find((pod) => pod.namespace === namespace && pod.name === name) ?? null;
}

export function podNotFound(namespace: string, name: string): TargetError {
  return new TargetError(`pods "${name}" not found in namespace "${namespace}"`, 404, 'NotFound');
}

/** Picks the container of `pod` named `requested` (or the only one), and checks it is running. */
export function chooseContainer(pod: PodView, requested: string | undefined, rules: TargetRules): Target {
  let container: PodContainer | undefined;
  if (!requested) {
    if (pod.containers.length !== 1) {
      const names = pod.containers.map((c) => c.name).join(' ');
      throw new TargetError(`a container name must be specified for pod ${pod.name}, choose one of: [${names}]`, 400, 'BadRequest');
    }
    container = pod.containers[0];
  } else {
    container = pod.containers.find((c) => c.name === requested);
  }
  if (!container) {
    const names = pod.containers.map((c) => c.name).join(' ');
    const message = `container ${requested} is not valid for pod ${pod.name} in namespace ${pod.namespace}, choose one of: [${names}]`;
    throw rules === 'apiserver' ? new TargetError(message, 400, 'BadRequest') : new TargetError(message, 404, 'NotFound');
  }
  if (container.state !== 'running') {
    throw new TargetError(`container ${container.name} in pod ${pod.namespace}/${pod.name} is not running (state: ${container.state})`, 409, 'Conflict');
  }
  return { pod, container };
}

export async function resolveTarget(
  catalog: ContainerCatalog,
  namespace: string,
  podName: string,
  container: string | undefined,
  rules: TargetRules,
): Promise<Target> {
  const pod = await findPod(catalog, namespace, podName);
  if (!pod) throw podNotFound(namespace, podName);
  return chooseContainer(pod, container, rules);
}
