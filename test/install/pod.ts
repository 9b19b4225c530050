// Runs the agent the way a rendered DaemonSet (or the systemd unit) would: the container's command,
// args and environment; its volumes as temp dirs (ConfigMaps and Secrets filled from the rendered
// manifests, the engine socket hostPath mapped to the test engine, the state hostPath kept across
// restarts); and its privileges — uid 0 with exactly the capabilities the securityContext adds
// (bounding set via setpriv, nothing inheritable or ambient) and no_new_privs when
// allowPrivilegeEscalation is false. Seccomp and AppArmor are not emulated.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { TestAgent } from '../helpers/agent.js';
import { dataOf, daemonSet, REPO_ROOT, type Container, type Manifest, type Volume } from './chart.js';

const START_TIMEOUT_MS = 20_000;
/** The image's WORKDIR holds dist/, node_modules/, web/ and package.json, as the repository does. */
const IMAGE_APP_DIR = '/app';

export interface Privileges {
  /** Capabilities without CAP_, upper case; null = all (privileged). */
  capabilities: string[] | null;
  noNewPrivs: boolean;
}

/** The privileges the container's securityContext grants (drop ALL + add, as the chart does). */
export function containerPrivileges(container: Container): Privileges {
  const sc = container.securityContext ?? {};
  if (sc.privileged) return { capabilities: null, noNewPrivs: false };
  if (!sc.capabilities?.drop?.includes('ALL')) throw new Error('the container does not drop ALL capabilities: emulating the runtime default set is not supported');
  return { capabilities: [...(sc.capabilities.add ?? [])], noNewPrivs: sc.allowPrivilegeEscalation === false };
}

/** argv prefix that runs a command as root with only `privileges`. */
export function withPrivileges(privileges: Privileges, argv: string[]): string[] {
  if (privileges.capabilities === null) return argv;
  const caps = ['-all', ...privileges.capabilities.map((c) => `+${c.toLowerCase().replace(/^cap_/, '')}`)].join(',');
  return ['setpriv', `--bounding-set=${caps}`, '--inh-caps=-all', '--ambient-caps=-all', ...(privileges.noNewPrivs ? ['--no-new-privs'] : []), '--', ...argv];
}

export interface RunningAgent extends TestAgent {
  /** SIGKILL, as a crash: the state dir is kept. */
  crash(): Promise<void>;
}

export interface EmulatedAgent {
  /** Container path → host path, for every path under a volume mount. */
  hostPath(containerPath: string): string;
  /** The state dir on the "node" (kept across restarts until dispose()). */
  stateDir: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
  start(): Promise<RunningAgent>;
  dispose(): void;
}

export interface EmulationOptions {
  /** The test engine's socket, standing in for the node's. */
  dockerSocket: string;
  nodeName: string;
  /** Files of Secrets and ConfigMaps the chart does not render (TLS, client CA), by volume name. */
  files: Record<string, Record<string, string>>;
  /** Replaces the container's privileges (to show that a capability is needed). */
  privileges?: Privileges;
  /** CA that verifies the agent's serving certificate (for the test clients). */
  caPem: string;
}

function writeFiles(dir: string, files: Record<string, string>, mode: number | undefined): void {
  for (const [name, content] of Object.entries(files)) {
    const file = join(dir, name);
    writeFileSync(file, content);
    if (mode !== undefined) chmodSync(file, mode);
  }
}

function renderedData(manifests: Manifest[], kind: 'ConfigMap' | 'Secret', name: string): Record<string, string> | null {
  const object = manifests.map((m) => m.object).find((o) => o.kind === kind && o.metadata.name === name);
  if (!object) return null;
  const keys = Object.keys({ ...(object.data as object | undefined), ...(object.stringData as object | undefined) });
  return Object.fromEntries(keys.map((key) => [key, dataOf(manifests, name, key)]));
}

/** Replaces `node /app/...` with this Node.js and the repository (the image's /app). */
function fromImage(argv: string[]): string[] {
  return argv.map((arg, i) => {
    if (i === 0 && arg === 'node') return process.execPath;
    if (arg === IMAGE_APP_DIR || arg.startsWith(`${IMAGE_APP_DIR}/`)) return join(REPO_ROOT, arg.slice(IMAGE_APP_DIR.length));
    return arg;
  });
}

/**
 * Every absolute path (and unix:// URL) in a settings object mapped through `map`; `map` throws
 * for a path outside every mount, which in a pod would not exist.
 */
export function mapConfigPaths(config: unknown, map: (path: string) => string): unknown {
  if (typeof config === 'string') {
    if (config.startsWith('unix://')) return `unix://${map(config.slice('unix://'.length))}`;
    if (config.startsWith('/')) return map(config);
    return config;
  }
  if (Array.isArray(config)) return config.map((item) => mapConfigPaths(item, map));
  if (config && typeof config === 'object') return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, mapConfigPaths(v, map)]));
  return config;
}

/** The pod's filesystem view: container path → volume (and subPath). */
export function mountResolver(container: Container, resolveVolume: (volume: string) => string): (path: string) => string {
  const mounts = [...(container.volumeMounts ?? [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
  return (path: string) => {
    const mount = mounts.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
    if (!mount) throw new Error(`${path} is not inside any volume mount of the container`);
    const base = mount.subPath ? join(resolveVolume(mount.name), mount.subPath) : resolveVolume(mount.name);
    return base + path.slice(mount.mountPath.length);
  };
}

export function emulateDaemonSet(manifests: Manifest[], options: EmulationOptions): EmulatedAgent {
  const { pod, container } = daemonSet(manifests);
  const root = mkdtempSync(join(tmpdir(), 'execlet-pod-'));
  const volumes = new Map<string, Volume>((pod.volumes ?? []).map((v) => [v.name, v]));
  const volumeDirs = new Map<string, string>();

  const resolveVolume = (name: string): string => {
    const known = volumeDirs.get(name);
    if (known) return known;
    const volume = volumes.get(name);
    if (!volume) throw new Error(`volume ${name} is mounted but not defined`);
    let dir: string;
    if (volume.hostPath?.type === 'Socket') {
      dir = options.dockerSocket;
    } else if (volume.hostPath) {
      dir = join(root, 'host', name);
      mkdirSync(dir, { recursive: true });
    } else {
      dir = join(root, 'volumes', name);
      mkdirSync(dir, { recursive: true });
      if (volume.configMap) {
        const data = renderedData(manifests, 'ConfigMap', volume.configMap.name) ?? options.files[name];
        if (!data) throw new Error(`ConfigMap ${volume.configMap.name} (volume ${name}) is neither rendered nor given`);
        writeFiles(dir, data, volume.configMap.defaultMode);
      } else if (volume.secret) {
        const data = renderedData(manifests, 'Secret', volume.secret.secretName) ?? options.files[name];
        if (!data) throw new Error(`Secret ${volume.secret.secretName} (volume ${name}) is neither rendered nor given`);
        writeFiles(dir, data, volume.secret.defaultMode);
      }
    }
    volumeDirs.set(name, dir);
    return dir;
  };
  const hostPath = mountResolver(container, resolveVolume);

  // The config file: the rendered one, with its paths mapped onto the emulated volumes.
  const args = container.args ?? [];
  const configIndex = args.indexOf('--config') + 1;
  if (configIndex === 0) throw new Error('the container is not started with --config');
  const configOnHost = hostPath(args[configIndex]!);
  const config = mapConfigPaths(parseYaml(readFileSync(configOnHost, 'utf8')), hostPath) as { stateDir: string };
  const stateDir = config.stateDir;
  const rewrittenConfig = join(root, 'config.yaml');
  writeFileSync(rewrittenConfig, toYaml(config));
  const mappedArgs = args.map((arg, i) => (i === configIndex ? rewrittenConfig : arg));

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) env[variable.name] = variable.value;
    else if (variable.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[variable.name] = options.nodeName;
    else throw new Error(`env ${variable.name}: only literal values and spec.nodeName are emulated`);
  }
  const privileges = options.privileges ?? containerPrivileges(container);
  // The one change to the container's invocation: loopback and a kernel-chosen port.
  const argv = withPrivileges(privileges, [...fromImage([...(container.command ?? []), ...mappedArgs]), '--listen', '127.0.0.1:0']);

  return {
    hostPath,
    stateDir,
    argv,
    env,
    start: () => startProcess(argv, env, stateDir, options.caPem),
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Starts an agent command line and waits for its "serving" line. */
export async function startProcess(argv: string[], env: NodeJS.ProcessEnv, stateDir: string, caPem: string): Promise<RunningAgent> {
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => (output += text));
  child.stderr!.on('data', (text: string) => (output += text));
  const exited = once(child, 'exit');
  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      const onData = () => {
        const match = /execlet: serving (https:\/\/\S+);/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (code ${code}, signal ${signal}) before serving:\n${output}`));
      });
    });
  } catch (err) {
    await stopWith('SIGKILL');
    throw err;
  }
  return {
    url,
    port: Number(new URL(url).port),
    stateDir,
    kubeconfig: join(stateDir, 'kubeconfig'),
    token: readFileSync(join(stateDir, 'token'), 'utf8').trim(),
    caPem,
    process: child,
    output: () => output,
    stop: () => stopWith('SIGTERM'),
    crash: () => stopWith('SIGKILL'),
  };
}

/** A CA and a serving certificate for 127.0.0.1 (openssl), as the TLS Secret would hold them. */
export function makeServingCertificate(names: string[]): { caPem: string; files: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'execlet-pki-'));
  try {
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=execlet-test-ca', '-keyout', 'ca.key', '-out', 'ca.crt');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=execlet', '-keyout', 'tls.key', '-out', 'tls.csr');
    const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    ssl('x509', '-req', '-in', 'tls.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'tls.crt');
    const read = (name: string) => readFileSync(join(dir, name), 'utf8');
    return { caPem: read('ca.crt'), files: { 'tls.crt': read('tls.crt'), 'tls.key': read('tls.key'), 'ca.crt': read('ca.crt') } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface SystemdEmulationOptions {
  /** ExecStart= of the unit. */
  execStart: string[];
  /** The unit's capability bounding set (CAP_ names) and NoNewPrivileges=. */
  privileges: Privileges;
  /** Host paths the test stands in for: /etc/execlet/..., /var/lib/execlet, /var/log/execlet, the socket. */
  pathMap: Array<[string, string]>;
  configText: string;
  caPem: string;
}

/**
 * Runs the unit's ExecStart= with its privileges: /usr/bin/node is this Node.js, /usr/lib/execlet the
 * repository, and the config's paths are mapped onto test directories (longest prefix first).
 */
export function emulateSystemdUnit(options: SystemdEmulationOptions): EmulatedAgent {
  const root = mkdtempSync(join(tmpdir(), 'execlet-unit-'));
  const map = [...options.pathMap].sort((a, b) => b[0].length - a[0].length);
  const hostPath = (path: string): string => {
    const entry = map.find(([from]) => path === from || path.startsWith(`${from}/`));
    if (!entry) throw new Error(`${path} is not mapped for the test`);
    return entry[1] + path.slice(entry[0].length);
  };
  const config = mapConfigPaths(parseYaml(options.configText), hostPath) as { stateDir: string };
  const configFile = join(root, 'config.yaml');
  writeFileSync(configFile, toYaml(config));
  const [node, main, ...args] = options.execStart;
  if (node !== '/usr/bin/node' || !main?.startsWith('/usr/lib/execlet/')) throw new Error(`unexpected ExecStart: ${options.execStart.join(' ')}`);
  const configIndex = args.indexOf('--config') + 1;
  const mappedArgs = args.map((arg, i) => (i === configIndex ? configFile : arg));
  const argv = withPrivileges(options.privileges, [process.execPath, join(REPO_ROOT, main.slice('/usr/lib/execlet/'.length)), ...mappedArgs, '--listen', '127.0.0.1:0']);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NODE_ENV: 'production' };
  return {
    hostPath,
    stateDir: config.stateDir,
    argv,
    env,
    start: () => startProcess(argv, env, config.stateDir, options.caPem),
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}
