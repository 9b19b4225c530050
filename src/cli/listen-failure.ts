// Why the agent could not listen, said as a configuration error naming the setting: a host that does
// not resolve, an address in use or not on this machine, a port it may not take.
import { ConfigError } from '../config/load.js';

/**
 * Why the agent cannot listen on `listen`, as an error naming the setting, or null for an error that
 * is not about the address (the local kubeconfig's write has its own).
 */
export function listenFailure(err: unknown, listen: string): ConfigError | null {
  const { code, syscall, hostname } = err as NodeJS.ErrnoException & { hostname?: string };
  let why: string;
  if (syscall === 'getaddrinfo') why = `${hostname ? `the host ${hostname}` : 'the host'} does not resolve (${code})`;
  else if (syscall === 'listen' || syscall === 'bind') {
    const known: Record<string, string> = {
      EADDRINUSE: 'the address is already in use (is another execlet running?)',
      EADDRNOTAVAIL: 'no interface has that address',
      EACCES: 'permission denied',
    };
    why = known[code ?? ''] ?? (err as Error).message;
  } else if (code === 'ERR_SOCKET_BAD_PORT' || code === 'EINVAL') why = (err as Error).message;
  else return null;
  return new ConfigError(`cannot listen on ${listen}: ${why} (setting listen, --listen)`);
}
