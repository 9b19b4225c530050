// Busybox containers for tests, created through dockerode on a TestDocker engine: plain ones,
// ones labelled like cri-dockerd's pod containers, and cri-dockerd-style pod sandboxes.
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import type { TestDocker } from './docker-daemon.js';

export interface TestContainer {
  id: string;
  name: string;
  /** PID of the container's init process, as seen from the host (inspect `State.Pid`). */
  hostPid: number;
  /** Force-removes the container; safe to call more than once. */
  remove(): Promise<void>;
}

export interface StartContainerOptions {
  name?: string;
  labels?: Record<string, string>;
  memoryBytes?: number;
  networkNone?: boolean;
  /** Defaults to `['sleep', '100000']` (sleep as PID 1 ignores SIGTERM: remove() forces). */
  cmd?: string[];
}

export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
export const LABEL_DOCKER_TYPE = 'io.kubernetes.docker.type';

interface EngineError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as EngineError).statusCode : undefined;
}

function engineMessage(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as EngineError;
  return e.json?.message ?? e.message ?? String(err);
}

const clients = new Map<string, Dockerode>();

/** A dockerode client for the engine (one per socket). */
export function dockerClient(docker: TestDocker): Dockerode {
  let client = clients.get(docker.socketPath);
  if (!client) {
    client = new Dockerode({ socketPath: docker.socketPath });
    clients.set(docker.socketPath, client);
  }
  return client;
}

function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

async function forceRemove(client: Dockerode, id: string): Promise<void> {
  try {
    await client.getContainer(id).remove({ force: true, v: true });
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return;
    if (status === 409) {
      // "removal already in progress": wait for the other removal to finish.
      for (let i = 0; i < 200; i++) {
        try {
          await client.getContainer(id).inspect();
        } catch (inspectErr) {
          if (statusOf(inspectErr) === 404) return;
          throw inspectErr;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error(`remove container ${id}: ${engineMessage(err)}`, { cause: err });
  }
}

/**
 * Creates and starts a busybox container and returns once it runs, with its host PID. Without
 * `networkNone` it gets the engine's default network mode (on the private engine, started with
 * --bridge=none, that is an isolated netns with only lo).
 */
export async function startContainer(docker: TestDocker, opts: StartContainerOptions = {}): Promise<TestContainer> {
  const client = dockerClient(docker);
  const name = opts.name ?? `execlet-test-${randomSuffix()}`;
  const hostConfig: Dockerode.HostConfig = {};
  if (opts.memoryBytes !== undefined) hostConfig.Memory = opts.memoryBytes;
  if (opts.networkNone) hostConfig.NetworkMode = 'none';
  let container: Dockerode.Container;
  try {
    container = await client.createContainer({
      name,
      Image: docker.image,
      Cmd: opts.cmd ?? ['sleep', '100000'],
      Labels: opts.labels ?? {},
      HostConfig: hostConfig,
    });
  } catch (err) {
    throw new Error(`create container ${name} from ${docker.image} on ${docker.host}: ${engineMessage(err)}`, { cause: err });
  }
  const id = container.id;
  try {
    await container.start();
    const info = await container.inspect();
    if (!info.State.Running || info.State.Pid <= 0) {
      throw new Error(`container is not running after start (status ${info.State.Status}, exit code ${info.State.ExitCode}${info.State.Error ? `, error: ${info.State.Error}` : ''})`);
    }
    let removing: Promise<void> | undefined;
    return {
      id,
      name: info.Name.replace(/^\//, ''),
      hostPid: info.State.Pid,
      remove: () => (removing ??= forceRemove(client, id)),
    };
  } catch (err) {
    await forceRemove(client, id).catch(() => undefined);
    throw new Error(`start container ${name} (${id.slice(0, 12)}) on ${docker.host}: ${engineMessage(err)}`, { cause: err });
  }
}

/** The labels cri-dockerd puts on a pod's application container. */
export function podLabels(namespace: string, pod: string, container: string): Record<string, string> {
  return {
    [LABEL_POD_NAMESPACE]: namespace,
    [LABEL_POD_NAME]: pod,
    [LABEL_CONTAINER_NAME]: container,
    [LABEL_DOCKER_TYPE]: 'container',
  };
}

/**
 * A pause-like pod sandbox, labelled and named like cri-dockerd's (`k8s_POD_<pod>_<ns>_<uid>_0`,
 * no container-name label). The agent must not offer it as a pod container.
 */
export async function startPodSandbox(docker: TestDocker, namespace: string, pod: string): Promise<TestContainer> {
  return startContainer(docker, {
    name: `k8s_POD_${pod}_${namespace}_${randomSuffix()}_0`,
    labels: {
      [LABEL_DOCKER_TYPE]: 'podsandbox',
      [LABEL_POD_NAMESPACE]: namespace,
      [LABEL_POD_NAME]: pod,
    },
    networkNone: true,
  });
}
