// The nsenter backend: runs a process in the namespaces of a host process (a container's init, or
// PID 1 for a node shell) but outside its cgroup, so it escapes a starved container's limits. The
// namespaces are entered by one small static helper, execlet-nsenter (native/execlet-nsenter.c,
// compiled into dist/native/ by `npm run build`), in a single exec. With a TTY it runs in a
// pseudo-terminal, without one as a child with separate stdio; both are started with posix_spawn
// (posix-spawn.ts) where that module loads, else with node-pty and child_process, which fork the agent.
// Without a TTY, the agent's backend hands the session to a helper started ahead (standby-helper.ts).
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readProcStat } from '../process-tree.js';
import { spawnedExecProcess, startInPosixPty, startInNodePty, startWithChildProcess, startWithPosixSpawn } from './helper-process.js';
import { PosixSpawner } from './posix-spawn.js';
import { StandbyHelper } from './standby-helper.js';
import { BackendError, type Backend, type ExecPlace, type ExecProcess, type ExecSpec, type LinuxNamespace } from './types.js';

export interface NsenterBackendOptions {
  killGraceMs: number;
  /** The execlet-nsenter helper; by default the one `npm run build` puts in dist/native/. */
  helperPath?: string;
  /**
   * How sessions start the helper: `posix` (execlet-spawn.node, no fork of the agent) unless that
   * module does not load, or `node` (node-pty with a TTY, child_process without) always. Default: posix.
   */
  spawner?: 'posix' | 'node';
  /** The execlet-spawn.node module; by default the one `npm run build` puts in dist/native/. */
  spawnModulePath?: string;
  /**
   * Keep a helper started ahead for the next session without a TTY (standby-helper.ts; with the
   * posix spawner only). The agent's backend does; off by default, so a backend made for one
   * process leaves none behind. `close()` lets it go.
   */
  standby?: boolean;
  /** What went wrong with a standby helper (the session then starts its own): the agent logs it. */
  onStandbyError?: (err: Error) => void;
}

/** The environment of every nsenter'd process: nothing of the agent's own leaks into it. */
const BASE_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };

/**
 * Where `npm run build` puts the helper: beside the compiled code (dist/backend/nsenter.js →
 * dist/native/execlet-nsenter), and for the TypeScript sources run directly (tsx, in tests)
 * src/backend/nsenter.ts → dist/native/execlet-nsenter as well.
 */
export const DEFAULT_HELPER_PATH = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/native/execlet-nsenter' : '../native/execlet-nsenter', import.meta.url));

/** The agent's namespace names (nsenter's options) as the helper takes them (/proc/PID/ns files). */
const NS_FILE: Record<LinuxNamespace, string> = { mount: 'mnt', uts: 'uts', ipc: 'ipc', net: 'net', pid: 'pid', user: 'user', cgroup: 'cgroup' };

type NamespacePlace = Extract<ExecPlace, { kind: 'namespaces' }>;

/**
 * The argv that runs `command` in the place's namespaces, never through a shell:
 *
 *   execlet-nsenter --target PID --ns mnt,uts,ipc,net,pid [--toolbox] -- COMMAND [ARG...]
 *
 * One exec: the helper opens every /proc/PID/ns file, enters them in nsenter's order, forks into
 * the PID namespace when `pid` is entered (the parent waits and reports the child's exit or
 * signal), with --toolbox mounts a fresh /proc in a new mount namespace (unshare --mount-proc),
 * then execs COMMAND. Every process it makes carries PR_SET_PDEATHSIG=SIGKILL, so if the agent is
 * killed, the command dies with it. It runs from the node's filesystem, before the mount namespace
 * is entered, so the target needs no tools of its own.
 */
export function nsenterArgv(helper: string, place: NamespacePlace, command: string[]): string[] {
  if (place.namespaces.length === 0) throw new BackendError('no namespaces to enter', 'Internal');
  if (command.length === 0) throw new BackendError('no command to run', 'Internal');
  const namespaces = place.namespaces.map((ns) => NS_FILE[ns]).join(',');
  return [helper, '--target', String(place.pid), '--ns', namespaces, ...(place.toolbox ? ['--toolbox'] : []), '--', ...command];
}

export class NsenterBackend implements Backend {
  readonly name = 'nsenter';
  #helper: string | null = null;
  readonly #spawner: PosixSpawner | null;
  #standby: StandbyHelper | null = null;
  #closed = false;
  /** Why sessions start the helper with node-pty and child_process, when they do; null otherwise. */
  readonly spawnerFallback: string | null;

  constructor(private readonly options: NsenterBackendOptions) {
    if (options.spawner === 'node') {
      this.#spawner = null;
      this.spawnerFallback = "spawner: 'node' was chosen";
      return;
    }
    const loaded = PosixSpawner.load(options.spawnModulePath);
    this.#spawner = loaded instanceof PosixSpawner ? loaded : null;
    this.spawnerFallback = loaded instanceof PosixSpawner ? null : loaded.unavailable;
  }

  /** How sessions start the helper. */
  get spawner(): 'posix' | 'node' {
    return this.#spawner ? 'posix' : 'node';
  }

  /** The execlet-nsenter helper, checked once; a clear error when it is missing or not executable. */
  helper(): string {
    if (this.#helper) return this.#helper;
    const helper = this.options.helperPath ?? DEFAULT_HELPER_PATH;
    let problem: string | null = null;
    try {
      if (!statSync(helper).isFile()) problem = 'not a file';
      else accessSync(helper, fsConstants.X_OK);
    } catch (err) {
      problem = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not executable';
    }
    if (problem) {
      throw new BackendError(`the nsenter mode needs its helper ${helper}, ${problem}: \`npm run build\` compiles it from native/execlet-nsenter.c (with cc)`, 'Unavailable');
    }
    this.#helper = helper;
    return helper;
  }

  async start(spec: ExecSpec): Promise<ExecProcess> {
    const place = spec.place;
    if (place.kind !== 'namespaces') throw new BackendError(`the nsenter backend enters namespaces of a host process, not a ${place.kind}`, 'Internal');
    if (!existsSync(`/proc/${place.pid}/ns`)) throw new BackendError(`process ${place.pid} does not exist (it may have exited)`, 'NotFound');
    if (place.startTime !== undefined && readProcStat(place.pid)?.startTime !== place.startTime) {
      throw new BackendError(`process ${place.pid} is no longer the one the session was asked for: it exited, and its PID belongs to another process now`, 'Conflict');
    }
    const argv = nsenterArgv(this.helper(), place, spec.command);
    const env = { ...BASE_ENV, ...(spec.tty ? { TERM: 'xterm' } : {}), ...Object.fromEntries((spec.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
    const killGraceMs = this.options.killGraceMs;
    if (this.#spawner && spec.tty) return startInPosixPty(this.#spawner, argv, env, spec, killGraceMs);
    if (this.#spawner) {
      const standing = this.#standbyHelper(this.#spawner)?.take(argv, env, spec);
      return standing ? spawnedExecProcess(standing, argv[0]!, killGraceMs) : startWithPosixSpawn(this.#spawner, argv, env, spec, killGraceMs);
    }
    return spec.tty ? startInNodePty(argv, env, spec, killGraceMs) : startWithChildProcess(argv, env, spec, killGraceMs);
  }

  /** The standby helper's pid while one waits (for tests and diagnostics). */
  get standbyPid(): number | null {
    return this.#standby?.pid ?? null;
  }

  /** Lets a waiting standby helper go; sessions after this start their own. */
  close(): void {
    this.#closed = true;
    this.#standby?.close();
  }

  #standbyHelper(spawner: PosixSpawner): StandbyHelper | null {
    if (!this.options.standby || this.#closed) return null;
    this.#standby ??= new StandbyHelper(spawner, this.helper(), BASE_ENV, this.options.onStandbyError ?? (() => undefined));
    return this.#standby;
  }
}
