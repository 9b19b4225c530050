// Turns what a caller named (namespace, pod, container, mode) into a concrete place to run a
// process, or a refusal carrying the HTTP code and message the Kubernetes API would give.
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { readProcStat } from '../process-tree.js';
import type { ContainerCatalog, ContainerChangeFeed, ContainerSummary, ExecPlace, LinuxNamespace } from '../backend/types.js';
import { DEFAULT_NSENTER_NAMESPACES, NODE_CONTAINER, NODE_NAMESPACE, parseNamespaces, splitModeSuffix, TOOLBOX_NAMESPACES, type ExecMode } from './modes.js';
import { synthesizePods, type PodContainer, type PodView } from './pods.js';

export interface Target {
  pod: PodView;
  container: PodContainer;
  mode: ExecMode;
  place: ExecPlace;
  /** Set when the caller named a host process directly. */
  hostPid?: number;
  /** The exec target is the container the agent runs in (checked only with `agentMountNamespace`). */
  agentContainer?: boolean;
}

/** What the JSON session API names: one of a pod/container, a container id or name, a host PID, or the node. */
export type ExplicitTarget =
  | { namespace: string; pod: string; container?: string | undefined }
  | { container: string }
  | { pid: number }
  | { node: true };

export interface ExplicitTargetRequest {
  target: ExplicitTarget;
  mode: 'exec' | 'nsenter' | 'toolbox';
  namespaces?: string[];
}

export type TargetRefusalReason = 'NotFound' | 'BadRequest' | 'Conflict' | 'Forbidden';

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

export interface TargetRequest {
  namespace: string;
  pod: string;
  /** As the caller wrote it, mode suffix included; undefined lets a one-container pod default. */
  container: string | undefined;
  /** Namespaces for the nsenter mode, as given (names, possibly comma-separated); empty for the default. */
  namespaces: string[];
  rules: TargetRules;
}

export interface ResolverOptions {
  nodeName: string;
  /** How long a container list (or a container's PID) is reused without a live change feed (ms; default 1000). */
  listCacheMs?: number;
  /**
   * When the engine's containers change. While it is live, a list is reused until the next change,
   * for at most `liveListCacheMs` (default 60 s: a bound should the feed go quiet without dropping).
   */
  changes?: ContainerChangeFeed;
  liveListCacheMs?: number;
  /** The nsenter, toolbox and node modes are privileged; when off they are refused. */
  nsenterEnabled: boolean;
  /**
   * The agent's own mount namespace (`mnt:[inode]`), when it runs in a container and exec targets
   * must say whether they are that container (`agentContainer`): the one whose init shares it.
   */
  agentMountNamespace?: string;
}

export function podNotFound(namespace: string, name: string): TargetError {
  return new TargetError(`pods "${name}" not found in namespace "${namespace}"`, 404, 'NotFound');
}

/** The mount namespace of a process (`mnt:[inode]`), or null when it cannot be read (gone, not visible). */
export function mountNamespaceOf(pid: number | 'self'): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return null;
  }
}

/**
 * The agent's mount namespace when it runs in a container of the host's PID namespace (it differs
 * from PID 1's, the host's init, or PID 1's cannot be read): what makes a container the agent's own.
 * Undefined on the host (no container shares the host's mounts) and when PID 1 is the agent's
 * container's own init (the agent then sees no host PIDs, so no container's init can be found; the
 * chart always sets hostPID).
 */
export function agentMountNamespace(): string | undefined {
  const ours = mountNamespaceOf('self');
  // PID 1's namespaces unreadable (a non-dumpable init, no CAP_SYS_PTRACE): the agent may be in a
  // container; the check then runs, and on the host merely never matches.
  const init = mountNamespaceOf(1);
  return ours !== null && ours !== init ? ours : undefined;
}

/**
 * The process whose namespaces are the node's: PID 1, or — when PID 1's namespaces cannot be opened
 * (a non-dumpable init and no CAP_SYS_PTRACE) — the agent itself, which then runs on the host.
 */
export function nodeNamespacePid(): { pid: number; note?: string } {
  try {
    readlinkSync('/proc/1/ns/mnt');
    return { pid: 1 };
  } catch (err) {
    return { pid: process.pid, note: `cannot open the namespaces of PID 1 (${(err as NodeJS.ErrnoException).code}); node shells use the agent's own namespaces` };
  }
}

export class TargetResolver {
  readonly #nodePid: number;

  constructor(
    private readonly catalog: ContainerCatalog,
    private readonly options: ResolverOptions & { nodePid?: number },
  ) {
    this.#nodePid = options.nodePid ?? 1;
  }

  /** The node's own pod, a node shell (listed only when the nsenter mode is enabled). */
  nodePod(): PodView {
    const bootTime = Math.floor(Date.now() / 1000 - process.uptime());
    return {
      namespace: NODE_NAMESPACE,
      name: this.options.nodeName,
      uid: `execlet-node-${this.options.nodeName}`,
      createdAt: bootTime,
      containers: [{ name: NODE_CONTAINER, containerId: '', image: 'node', state: 'running', startedAt: bootTime, labels: {} }],
    };
  }

  /** Where the change feed was when a list or PID was asked for: what it is still valid against. */
  #generation(): number {
    return this.options.changes?.generation ?? 0;
  }

  /**
   * Whether something learned from the engine at `at` (performance.now()), when the change feed
   * stood at `generation`, may be reused: for `listCacheMs`, or — while the feed is live and nothing
   * changed since — for `liveListCacheMs`.
   */
  #stillValid(entry: { at: number; generation: number }): boolean {
    const age = performance.now() - entry.at;
    if (age < (this.options.listCacheMs ?? 1000)) return true;
    const changes = this.options.changes;
    return changes !== undefined && changes.live && entry.generation === changes.generation && age < (this.options.liveListCacheMs ?? 60_000);
  }

  /**
   * The engine's containers, from a list reused while still valid: every exec resolves its target,
   * and one list call per exec would cost more than the exec itself. Callers that miss ask again
   * with `fresh` (a container that just started), so the cache never hides a new container.
   */
  async #containers(fresh = false): Promise<ContainerSummary[]> {
    if (!fresh && this.#listed && this.#stillValid(this.#listed)) return this.#listed.containers;
    const generation = this.#generation();
    // A list already under way is shared, unless a change came after it was asked for.
    if (this.#listing?.generation === generation) return this.#listing.containers;
    const at = performance.now();
    const listing = {
      generation,
      containers: this.catalog.listContainers().then((containers) => {
        // Never replace a list asked for after a change with one asked for before it.
        if (!this.#listed || this.#listed.generation <= generation) this.#listed = { at, generation, containers };
        return containers;
      }),
    };
    this.#listing = listing;
    const done = () => {
      if (this.#listing === listing) this.#listing = null;
    };
    listing.containers.then(done, done);
    return listing.containers;
  }

  /**
   * Host PIDs of container inits, reused like the list while the same process still has the PID
   * (same start time: a PID the kernel gave to another process since is never reused here).
   */
  readonly #pids = new Map<string, { at: number; generation: number; pid: number; startTime: string }>();

  async #containerPid(containerId: string): Promise<number> {
    return (await this.#containerInit(containerId)).pid;
  }

  /** The container init's host PID (0: not running) and, when it could be read, its start time. */
  async #containerInit(containerId: string): Promise<{ pid: number; startTime?: string }> {
    const cached = this.#pids.get(containerId);
    if (cached && this.#stillValid(cached) && readProcStat(cached.pid)?.startTime === cached.startTime) return cached;
    const generation = this.#generation();
    const at = performance.now();
    const pid = await this.catalog.containerPid(containerId);
    if (this.#pids.size > 1000) this.#pids.clear();
    const startTime = pid > 0 ? readProcStat(pid)?.startTime : undefined;
    if (startTime) this.#pids.set(containerId, { at, generation, pid, startTime });
    else this.#pids.delete(containerId);
    return startTime ? { pid, startTime } : { pid };
  }

  /** The agent's own container, once known: found at start-up (findAgentContainer), or by a check below. */
  #agentContainerId: string | null = null;

  /**
   * Whether the container is the agent's own (false when that is not asked): the known one, or —
   * until it is known — the one whose init shares the agent's mount namespace.
   */
  async #isAgentContainer(containerId: string): Promise<boolean> {
    const ours = this.options.agentMountNamespace;
    if (ours === undefined) return false;
    if (this.#agentContainerId !== null) return containerId === this.#agentContainerId;
    const pid = await this.#containerPid(containerId);
    const isOurs = pid > 0 && mountNamespaceOf(pid) === ours;
    if (isOurs) this.#agentContainerId = containerId;
    return isOurs;
  }

  /** Whether a listed container is known to be the agent's own (a target picker leaves it out for those it is refused to). */
  isKnownAgentContainer(containerId: string): boolean {
    return this.options.agentMountNamespace !== undefined && containerId === this.#agentContainerId;
  }

  /**
   * Finds the agent's own container at start-up, so that neither an exec nor a listing has to ask
   * the engine for it: the init of the agent's container is its topmost ancestor in its mount
   * namespace, and that init's parent — the engine's shim — names the container's id on its command
   * line (containerd-shim-runc-v2 … -id ID). A candidate counts only when the engine confirms that
   * its init is that process. Until it is found (another runtime, no host PIDs), each exec target is
   * checked by its init's mount namespace instead.
   */
  async findAgentContainer(self = process.pid): Promise<string | null> {
    const ours = this.options.agentMountNamespace;
    if (ours === undefined || this.#agentContainerId !== null) return this.#agentContainerId;
    let init = self;
    for (;;) {
      const parent = readProcStat(init)?.ppid ?? 0;
      if (parent <= 0 || mountNamespaceOf(parent) !== ours) break;
      init = parent;
    }
    const shim = readProcStat(init)?.ppid ?? 0;
    let commandLine = '';
    try {
      commandLine = shim > 0 ? readFileSync(`/proc/${shim}/cmdline`, 'latin1') : '';
    } catch {
      return null; // gone, or not visible
    }
    for (const [candidate] of commandLine.matchAll(/\b[0-9a-f]{64}\b/g)) {
      if ((await this.catalog.containerPid(candidate).catch(() => 0)) === init) {
        this.#agentContainerId ??= candidate;
        return this.#agentContainerId;
      }
    }
    return null;
  }

  #listed: { at: number; generation: number; containers: ContainerSummary[] } | null = null;
  #listing: { generation: number; containers: Promise<ContainerSummary[]> } | null = null;

  async listPods(fresh = false): Promise<PodView[]> {
    const pods = synthesizePods(await this.#containers(fresh));
    return this.options.nsenterEnabled ? [...pods, this.nodePod()] : pods;
  }

  /** The pod, from the cached list or — when it is not there — from a fresh one. */
  async findPod(namespace: string, name: string, fresh = false): Promise<PodView | null> {
    if (namespace === NODE_NAMESPACE) return this.options.nsenterEnabled && name === this.options.nodeName ? this.nodePod() : null;
    const find = (pods: PodView[]) => pods.find((pod) => pod.namespace === namespace && pod.name === name) ?? null;
    return find(await this.listPods(fresh)) ?? (fresh ? null : find(await this.listPods(true)));
  }

  /** Resolves from the cached list; a refusal it might owe to a stale list is checked against a fresh one. */
  async #resolving(resolve: (fresh: boolean) => Promise<Target>): Promise<Target> {
    try {
      return await resolve(false);
    } catch (err) {
      if (!(err instanceof TargetError) || err.reason === 'Forbidden') throw err;
      return resolve(true);
    }
  }

  /** A pod/container as kubectl names it: the mode comes from the container name's suffix. */
  async resolve(request: TargetRequest): Promise<Target> {
    return this.#resolving((fresh) => this.#resolve(request, fresh));
  }

  async #resolve(request: TargetRequest, fresh: boolean): Promise<Target> {
    const pod = await this.findPod(request.namespace, request.pod, fresh);
    if (!pod) {
      if (request.namespace === NODE_NAMESPACE && !this.options.nsenterEnabled) throw nsenterDisabled('node');
      throw podNotFound(request.namespace, request.pod);
    }
    const namespaces = parseNamespaceList(request.namespaces);
    if (pod.namespace === NODE_NAMESPACE) return this.#nodeTarget(pod, request.container, request.rules, namespaces);
    const { container, mode } = splitModeSuffix(request.container);
    return this.#inPod(pod, container, mode, namespaces, request.rules);
  }

  /** The JSON session API: the mode is explicit and the target may be a container id or name, a host PID, or the node. */
  async resolveExplicit(request: ExplicitTargetRequest): Promise<Target> {
    return this.#resolving((fresh) => this.#resolveExplicit(request, fresh));
  }

  async #resolveExplicit(request: ExplicitTargetRequest, fresh: boolean): Promise<Target> {
    const namespaces = parseNamespaceList(request.namespaces ?? []);
    const { target, mode } = request;
    if ('node' in target) return this.#nodeTarget(this.nodePod(), undefined, 'apiserver', namespaces);
    if ('pid' in target) {
      if (mode === 'exec') throw new TargetError('a host PID is reached through the nsenter or toolbox mode, not exec', 400, 'BadRequest');
      if (!this.options.nsenterEnabled) throw nsenterDisabled(mode);
      if (!existsSync(`/proc/${target.pid}/ns`)) throw new TargetError(`process ${target.pid} does not exist on this node`, 404, 'NotFound');
      const node = this.nodePod();
      return {
        pod: node,
        container: node.containers[0]!,
        mode,
        place: namespacesPlace(target.pid, chooseNamespaces(mode, namespaces), mode === 'toolbox'),
        hostPid: target.pid,
      };
    }
    if ('namespace' in target) {
      const pod = await this.findPod(target.namespace, target.pod, fresh);
      if (!pod) throw podNotFound(target.namespace, target.pod);
      if (pod.namespace === NODE_NAMESPACE) return this.#nodeTarget(pod, target.container, 'apiserver', namespaces);
      return this.#inPod(pod, target.container, mode, namespaces, 'apiserver');
    }
    const ref = target.container;
    const matching = (list: ContainerSummary[]) => list.filter((c) => c.id === ref || c.name === ref || (ref.length >= 12 && c.id.startsWith(ref)));
    const containers = await this.#containers(fresh);
    const matches = matching(containers);
    if (matches.length === 0) throw new TargetError(`container "${ref}" not found on this node`, 404, 'NotFound');
    if (matches.length > 1) throw new TargetError(`container "${ref}" is ambiguous: ${matches.length} containers match`, 400, 'BadRequest');
    const match = matches[0]!;
    const pod = synthesizePods(containers).find((p) => p.containers.some((c) => c.containerId === match.id));
    if (!pod) {
      throw new TargetError(`container "${ref}" is not reachable (it is a pod sandbox, or not running: ${match.state})`, 409, 'Conflict');
    }
    const container = pod.containers.find((c) => c.containerId === match.id)!;
    return this.#inPod(pod, container.name, mode, namespaces, 'apiserver');
  }

  #nodeTarget(pod: PodView, requested: string | undefined, rules: TargetRules, namespaces: LinuxNamespace[]): Target {
    const container = chooseContainer(pod, requested, rules);
    if (!this.options.nsenterEnabled) throw nsenterDisabled('node');
    return {
      pod,
      container,
      mode: 'node',
      place: namespacesPlace(this.#nodePid, namespaces.length > 0 ? namespaces : [...DEFAULT_NSENTER_NAMESPACES], false),
    };
  }

  async #inPod(pod: PodView, name: string | undefined, mode: Exclude<ExecMode, 'node'>, namespaces: LinuxNamespace[], rules: TargetRules): Promise<Target> {
    const container = chooseContainer(pod, name, rules);
    if (mode === 'exec') {
      if (namespaces.length > 0) throw new TargetError('namespaces apply only to the nsenter mode (container name suffix .nsenter)', 400, 'BadRequest');
      const target: Target = { pod, container, mode, place: { kind: 'container', containerId: container.containerId } };
      if (await this.#isAgentContainer(container.containerId)) target.agentContainer = true;
      return target;
    }
    if (!this.options.nsenterEnabled) throw nsenterDisabled(mode);
    if (mode === 'toolbox' && namespaces.length > 0) {
      throw new TargetError(`the toolbox view always enters ${TOOLBOX_NAMESPACES.join(', ')}; use the nsenter mode to choose namespaces`, 400, 'BadRequest');
    }
    const { pid, startTime } = await this.#containerInit(container.containerId);
    if (pid <= 0) {
      throw new TargetError(`container ${container.name} in pod ${pod.namespace}/${pod.name} is not running`, 409, 'Conflict');
    }
    if (!existsSync(`/proc/${pid}/ns`)) {
      throw new TargetError(
        `process ${pid} of container ${container.name} is not visible from the agent (does it share the host PID namespace?)`,
        409,
        'Conflict',
      );
    }
    return { pod, container, mode, place: namespacesPlace(pid, chooseNamespaces(mode, namespaces), mode === 'toolbox', startTime) };
  }
}

/** A place in the namespaces of `pid`, with the start time that tells the process from a later one with its PID. */
function namespacesPlace(pid: number, namespaces: LinuxNamespace[], toolbox: boolean, startTime = readProcStat(pid)?.startTime): ExecPlace {
  return { kind: 'namespaces', pid, namespaces, toolbox, ...(startTime !== undefined ? { startTime } : {}) };
}

function chooseNamespaces(mode: 'nsenter' | 'toolbox', requested: LinuxNamespace[]): LinuxNamespace[] {
  if (mode === 'toolbox') return [...TOOLBOX_NAMESPACES];
  return requested.length > 0 ? requested : [...DEFAULT_NSENTER_NAMESPACES];
}

function parseNamespaceList(values: string[]): LinuxNamespace[] {
  try {
    return parseNamespaces(values);
  } catch (err) {
    throw new TargetError((err as Error).message, 400, 'BadRequest');
  }
}

function nsenterDisabled(mode: ExecMode): TargetError {
  return new TargetError(
    `the ${mode} mode is disabled on this agent: it runs processes outside container limits, so it must be enabled explicitly (setting nsenter, --nsenter enabled)`,
    403,
    'Forbidden',
  );
}

/** Picks the container of `pod` named `requested` (or the only one), and checks it is running. */
export function chooseContainer(pod: PodView, requested: string | undefined, rules: TargetRules): PodContainer {
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
  return container;
}
