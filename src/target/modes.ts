// How a caller picks the way in without changing kubectl: a container name suffix (`.nsenter`,
// `.toolbox`; container names are DNS labels, so a dot never collides) or the node's own pod.
import { LINUX_NAMESPACES, type LinuxNamespace } from '../backend/types.js';

export type ExecMode = 'exec' | 'nsenter' | 'toolbox' | 'node';

/** The synthesized pod `execlet-node/<node name>` with its one container `host` is a node shell. */
export const NODE_NAMESPACE = 'execlet-node';
export const NODE_CONTAINER = 'host';

/** Entered when the caller does not choose: all but `user` and `cgroup`. */
export const DEFAULT_NSENTER_NAMESPACES: readonly LinuxNamespace[] = ['mount', 'uts', 'ipc', 'net', 'pid'];
/** The toolbox view: the target's network, processes, IPC and hostname, the node's filesystem. */
export const TOOLBOX_NAMESPACES: readonly LinuxNamespace[] = ['net', 'pid', 'ipc', 'uts'];

const SUFFIXES = { '.nsenter': 'nsenter', '.toolbox': 'toolbox' } as const;

/** Splits `app.nsenter` into `app` and its mode; a name without a known suffix is plain exec. */
export function splitModeSuffix(container: string | undefined): { container: string | undefined; mode: 'exec' | 'nsenter' | 'toolbox' } {
  if (container) {
    for (const [suffix, mode] of Object.entries(SUFFIXES)) {
      if (container.endsWith(suffix) && container.length > suffix.length) return { container: container.slice(0, -suffix.length), mode };
    }
  }
  return { container, mode: 'exec' };
}

/** Parses a caller's namespace list (names may be repeated or comma-separated); throws naming an unknown one. */
export function parseNamespaces(values: string[]): LinuxNamespace[] {
  const names = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
  const unknown = names.filter((n) => !(LINUX_NAMESPACES as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new Error(`unknown namespace ${unknown.map((n) => JSON.stringify(n)).join(', ')}: choose from ${LINUX_NAMESPACES.join(', ')}`);
  }
  // Keep nsenter's canonical order, without duplicates.
  return LINUX_NAMESPACES.filter((n) => names.includes(n));
}
