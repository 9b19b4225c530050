// A real Docker engine for tests: either the one named by EXECLET_TEST_DOCKER_HOST, or a private
// dockerd (with its own containerd) started in a temp dir and torn down completely by stop().
// Also provides the busybox image the tests run, imported from the host's static busybox.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

export interface TestDocker {
  /** Engine address, e.g. `unix:///tmp/execlet-test-AbC123/docker.sock`. */
  host: string;
  socketPath: string;
  /** The busybox image ref, present on the engine. */
  image: string;
  /** True when this process started the engine (and stop() tears it down). */
  private: boolean;
  /** Private engines only: the temp dir holding sockets, state and logs. */
  dir?: string;
  /** Private engines only: PIDs of the processes started for it. */
  dockerdPid?: number;
  containerdPid?: number;
  /** Private engines only: kill dockerd (SIGKILL, as in a crash; containerd keeps running) and wait for it to exit. */
  killDockerd?(): Promise<void>;
  /** Private engines only: start dockerd again after killDockerd() and wait until it answers. */
  startDockerd?(): Promise<void>;
  stop(): Promise<void>;
}

export const TEST_IMAGE_REPO = 'execlet-test/busybox';
export const TEST_IMAGE_TAG = '1';
export const TEST_IMAGE = `${TEST_IMAGE_REPO}:${TEST_IMAGE_TAG}`;

const TMP_ROOT = '/tmp';
const DIR_PREFIX = 'execlet-test-';
const CONTAINERD_READY_TIMEOUT_MS = 30_000;
const DOCKERD_READY_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 25;
const REMOVE_CONTAINERS_TIMEOUT_MS = 30_000;
const DOCKERD_STOP_GRACE_MS = 20_000;
const CONTAINERD_STOP_GRACE_MS = 10_000;
const KILL_WAIT_MS = 5_000;
const SHIM_REAP_WAIT_MS = 3_000;
const IMPORT_TIMEOUT_MS = 120_000;
const SBIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// ---------------------------------------------------------------------------------------------
// Small utilities

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Last `lines` lines of a log file, or a note saying why there are none. */
export function logTail(file: string, lines = 40): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const all = text.trimEnd().split('\n');
    return all.slice(-lines).join('\n');
  } catch (err) {
    return `(no log at ${file}: ${errorMessage(err)})`;
  }
}

/** Absolute path of an executable, searching PATH plus the sbin dirs (dockerd lives in /usr/sbin). */
export function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), ...SBIN_PATH.split(':')].filter((d) => d !== '');
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} not found in PATH or ${SBIN_PATH} (is docker.io installed?)`);
}

/** PATH for the daemons: containerd and dockerd look up runc and containerd-shim-runc-v2 there. */
function daemonPath(): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), ...SBIN_PATH.split(':')].filter((d) => d !== '');
  return [...new Set(dirs)].join(':');
}

function isChildRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves true once the child has exited, false if `ms` passes first. */
function waitChildExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (!isChildRunning(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(!isChildRunning(child));
    }, ms);
    child.once('exit', onExit);
  });
}

function signalChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!isChildRunning(child) || child.pid === undefined) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Returns how it ended. */
async function terminateChild(child: ChildProcess, graceMs: number): Promise<'exited' | 'killed' | 'stuck'> {
  if (!isChildRunning(child)) return 'exited';
  signalChild(child, 'SIGTERM');
  if (await waitChildExit(child, graceMs)) return 'exited';
  signalChild(child, 'SIGKILL');
  return (await waitChildExit(child, KILL_WAIT_MS)) ? 'killed' : 'stuck';
}

/** Start time (clock ticks since boot) of `pid`, or undefined once it is gone (zombies included). */
function pidStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Waits (bounded, never failing) until processes that are not our children have also been reaped.
 * Orphaned shims are reaped by PID 1, which may do it lazily (about once a second in some VMs).
 */
async function waitReaped(processes: Array<{ pid: number; start: string | undefined }>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = (): boolean => processes.some(({ pid, start }) => start !== undefined && pidStartTime(pid) === start);
  while (pending() && Date.now() < deadline) await delay(POLL_INTERVAL_MS * 2);
}

/** True if `pid` is a live (non-zombie) process. */
export function isPidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * PIDs of live processes (other than this one) whose command line names a path inside `dir`.
 * Used with a private engine's unique temp dir to find what it left behind (containerd shims
 * carry `-address DIR/containerd/containerd.sock`), never with a program name.
 */
export function processesReferencingDir(dir: string): number[] {
  const needle = `${dir.replace(/\/+$/, '')}/`;
  const found: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(needle) && isPidAlive(pid)) found.push(pid);
    } catch {
      // exited while scanning
    }
  }
  return found;
}

/** Mount points at or under `dir` in this mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  let info: string;
  try {
    info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const points: string[] = [];
  for (const line of info.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const mountPoint = field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (mountPoint === dir || mountPoint.startsWith(`${dir}/`)) points.push(mountPoint);
  }
  return points.sort((a, b) => b.length - a.length);
}

/** Unmounts everything under `dir` (lazily if a plain unmount fails). Synchronous. */
function unmountAllUnder(dir: string): string[] {
  const problems: string[] = [];
  for (let round = 0; round < 8; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return problems;
    for (const point of points) {
      const plain = spawnSync('umount', [point], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, PATH: daemonPath() } });
      if (plain.status === 0) continue;
      const lazy = spawnSync('umount', ['-l', point], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, PATH: daemonPath() } });
      if (lazy.status !== 0) problems.push(`umount -l ${point}: ${(lazy.stderr || plain.stderr || String(lazy.error ?? '')).trim()}`);
    }
  }
  const left = mountsUnder(dir);
  if (left.length > 0) problems.push(`still mounted: ${left.join(', ')}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Engine API over a unix socket (enough for ping, inspect, list, remove and import)

interface EngineResponse {
  status: number;
  body: string;
}

function engineRequest(
  socketPath: string,
  method: string,
  requestPath: string,
  options: { timeoutMs: number; body?: NodeJS.ReadableStream; headers?: Record<string, string> },
): Promise<EngineResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: requestPath, headers: options.headers, timeout: options.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${requestPath} on ${socketPath}: no answer within ${options.timeoutMs} ms`)));
    req.on('error', reject);
    if (options.body) {
      options.body.on('error', (err: Error) => req.destroy(err));
      options.body.pipe(req);
    } else {
      req.end();
    }
  });
}

async function ping(socketPath: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await engineRequest(socketPath, 'GET', '/_ping', { timeoutMs });
    return res.status === 200 && res.body === 'OK';
  } catch {
    return false;
  }
}

function canConnect(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ path: socketPath });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Force-removes every container on the engine (running ones included). Returns failures. */
async function removeAllContainers(socketPath: string, timeoutMs: number): Promise<string[]> {
  const list = await engineRequest(socketPath, 'GET', '/containers/json?all=1', { timeoutMs });
  if (list.status !== 200) return [`list containers: HTTP ${list.status} ${list.body.trim()}`];
  const ids = (JSON.parse(list.body) as Array<{ Id: string }>).map((c) => c.Id);
  const failures: string[] = [];
  await Promise.all(
    ids.map(async (id) => {
      try {
        const res = await engineRequest(socketPath, 'DELETE', `/containers/${id}?force=1&v=1`, { timeoutMs });
        // 404: already gone; 409: a removal is already in progress.
        if (res.status !== 204 && res.status !== 404 && res.status !== 409) failures.push(`remove ${id}: HTTP ${res.status} ${res.body.trim()}`);
      } catch (err) {
        failures.push(`remove ${id}: ${errorMessage(err)}`);
      }
    }),
  );
  return failures;
}

// ---------------------------------------------------------------------------------------------
// The busybox image

function busyboxBinary(): string {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new Error('static busybox not found at /bin/busybox (install busybox-static)');
}

/** Builds the busybox rootfs in `root`: the binary, one symlink per applet, minimal /etc. */
function buildBusyboxRootfs(root: string): void {
  const busybox = busyboxBinary();
  for (const dir of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.chmodSync(path.join(root, 'root'), 0o700);
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const list = spawnSync(busybox, ['--list-full'], { encoding: 'utf8', timeout: 10_000 });
  if (list.status !== 0) throw new Error(`${busybox} --list-full failed (status ${list.status}): ${list.stderr || String(list.error ?? '')}`);
  for (const applet of list.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '')) {
    const target = path.join(root, applet);
    if (!target.startsWith(`${root}/`) || fs.existsSync(target)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.symlinkSync('/bin/busybox', target);
  }
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

async function imageExists(socketPath: string, ref: string): Promise<boolean> {
  const res = await engineRequest(socketPath, 'GET', `/images/${ref}/json`, { timeoutMs: 30_000 });
  if (res.status === 200) return true;
  if (res.status === 404) return false;
  throw new Error(`inspect image ${ref} on ${socketPath}: HTTP ${res.status} ${res.body.trim()}`);
}

/**
 * Makes sure the busybox test image exists on the engine at `socketPath`, importing it from the
 * host's static busybox if needed. Returns the image ref.
 */
export async function ensureBusyboxImage(socketPath: string): Promise<string> {
  if (await imageExists(socketPath, TEST_IMAGE)) return TEST_IMAGE;
  const rootfs = fs.mkdtempSync(path.join(TMP_ROOT, `${DIR_PREFIX}rootfs-`));
  try {
    buildBusyboxRootfs(rootfs);
    const tar = spawn('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', '-', '.'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tarStderr = '';
    tar.stderr.setEncoding('utf8').on('data', (chunk: string) => (tarStderr += chunk));
    const tarExit = once(tar, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    const query = new URLSearchParams({ fromSrc: '-', repo: TEST_IMAGE_REPO, tag: TEST_IMAGE_TAG });
    query.append('changes', 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    query.append('changes', 'CMD ["sh"]');
    let res: EngineResponse;
    try {
      res = await engineRequest(socketPath, 'POST', `/images/create?${query.toString()}`, {
        timeoutMs: IMPORT_TIMEOUT_MS,
        body: tar.stdout,
        headers: { 'Content-Type': 'application/x-tar' },
      });
    } catch (err) {
      tar.kill('SIGKILL');
      throw new Error(`import ${TEST_IMAGE} into ${socketPath}: ${errorMessage(err)}`, { cause: err });
    }
    const [code, signal] = await tarExit;
    if (code !== 0) {
      // Whatever the engine made of a truncated tar must not pass for the image next time.
      await engineRequest(socketPath, 'DELETE', `/images/${TEST_IMAGE}?force=1`, { timeoutMs: 30_000 }).catch(() => undefined);
      throw new Error(`tar of busybox rootfs ${rootfs} failed (${signal ?? `exit ${code}`}): ${tarStderr.trim()}`);
    }
    if (res.status !== 200) throw new Error(`import ${TEST_IMAGE} into ${socketPath}: HTTP ${res.status} ${res.body.trim()}`);
    // The body is a stream of JSON progress messages; a failure shows up as an `error` member.
    for (const line of res.body.split('\n')) {
      if (line.trim() === '') continue;
      const message = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (message.error !== undefined) throw new Error(`import ${TEST_IMAGE} into ${socketPath}: ${message.errorDetail?.message ?? message.error}`);
    }
    if (!(await imageExists(socketPath, TEST_IMAGE))) throw new Error(`import ${TEST_IMAGE} into ${socketPath} reported success but the image is missing`);
    return TEST_IMAGE;
  } finally {
    fs.rmSync(rootfs, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Private engines

interface PrivateEngine {
  dir: string;
  socketPath: string;
  dockerd: ChildProcess | undefined;
  containerd: ChildProcess | undefined;
  stopping: Promise<void> | undefined;
  stopped: boolean;
}

const liveEngines = new Set<PrivateEngine>();

/** Kills, through runc, any container the engine left running (after dockerd was killed). Synchronous. */
function killLeftoverContainers(dir: string): void {
  const runtimeRoot = path.join(dir, 'exec', 'runtime-runc');
  let namespaces: string[];
  try {
    namespaces = fs.readdirSync(runtimeRoot);
  } catch {
    return;
  }
  let runc: string;
  try {
    runc = findBinary('runc');
  } catch {
    return;
  }
  for (const ns of namespaces) {
    const root = path.join(runtimeRoot, ns);
    const list = spawnSync(runc, ['--root', root, 'list', '-q'], { encoding: 'utf8', timeout: 10_000 });
    if (list.status !== 0) continue;
    for (const id of list.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '')) {
      spawnSync(runc, ['--root', root, 'delete', '--force', id], { encoding: 'utf8', timeout: 10_000 });
    }
  }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Everything after the daemons are down: leftover containers and shims, mounts, the dir itself. */
function sweepPrivateDir(engine: PrivateEngine): string[] {
  const problems: string[] = [];
  killLeftoverContainers(engine.dir);
  // Shims (and anything else) still pointing into our dir; matched by our unique path.
  for (const pid of processesReferencingDir(engine.dir)) killPid(pid, 'SIGKILL');
  problems.push(...unmountAllUnder(engine.dir));
  if (mountsUnder(engine.dir).length === 0) {
    try {
      fs.rmSync(engine.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (err) {
      problems.push(`remove ${engine.dir}: ${errorMessage(err)}`);
    }
  } else {
    problems.push(`left ${engine.dir} in place because something is still mounted under it`);
  }
  return problems;
}

/** The orderly teardown used by stop(). */
async function stopPrivateEngine(engine: PrivateEngine): Promise<void> {
  const problems: string[] = [];
  const { dockerd, containerd } = engine;
  const shims = processesReferencingDir(engine.dir)
    .filter((pid) => pid !== dockerd?.pid && pid !== containerd?.pid)
    .map((pid) => ({ pid, start: pidStartTime(pid) }));
  if (dockerd && isChildRunning(dockerd)) {
    // Without this dockerd would wait out each container's stop timeout (sleep ignores SIGTERM).
    try {
      problems.push(...(await removeAllContainers(engine.socketPath, REMOVE_CONTAINERS_TIMEOUT_MS)));
    } catch (err) {
      problems.push(`remove containers: ${errorMessage(err)}`);
    }
  }
  if (dockerd) {
    const how = await terminateChild(dockerd, DOCKERD_STOP_GRACE_MS);
    if (how === 'killed') problems.push(`dockerd (pid ${dockerd.pid}) ignored SIGTERM for ${DOCKERD_STOP_GRACE_MS} ms and was killed`);
    if (how === 'stuck') problems.push(`dockerd (pid ${dockerd.pid}) did not exit even after SIGKILL`);
  }
  // Containers dockerd could not clean up (e.g. it had to be killed) would keep their shims alive.
  killLeftoverContainers(engine.dir);
  if (containerd) {
    const how = await terminateChild(containerd, CONTAINERD_STOP_GRACE_MS);
    if (how === 'stuck') problems.push(`containerd (pid ${containerd.pid}) did not exit even after SIGKILL`);
  }
  problems.push(...sweepPrivateDir(engine));
  await waitReaped(shims, SHIM_REAP_WAIT_MS);
  engine.stopped = true;
  liveEngines.delete(engine);
  if (liveEngines.size === 0) removeProcessHooks();
  if (problems.length > 0) {
    throw new Error(`stopping private dockerd in ${engine.dir} left problems:\n  ${problems.join('\n  ')}`);
  }
}

/** Last-resort teardown from an 'exit' or signal handler: synchronous, kills by PID. */
function emergencyStop(engine: PrivateEngine): void {
  if (engine.stopped) return;
  engine.stopped = true;
  for (const child of [engine.dockerd, engine.containerd]) if (child) signalChild(child, 'SIGKILL');
  try {
    sweepPrivateDir(engine);
  } catch {
    // best effort: the process is going away
  }
  liveEngines.delete(engine);
}

// Process hooks, installed while at least one private engine is live.

const HOOK_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let hooksInstalled = false;

function onProcessExit(): void {
  for (const engine of [...liveEngines]) emergencyStop(engine);
}

function onFatalSignal(signal: NodeJS.Signals): void {
  // Someone else handles this signal (e.g. test/run.ts, or node:test, which calls process.exit()):
  // leave it to them; the 'exit' hook still runs if they exit without calling stop().
  if (process.listenerCount(signal) > 1) return;
  onProcessExit();
  removeProcessHooks();
  // No listener left, so the default action applies: die of the same signal.
  process.kill(process.pid, signal);
}

function installProcessHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', onProcessExit);
  for (const signal of HOOK_SIGNALS) process.on(signal, onFatalSignal);
}

function removeProcessHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', onProcessExit);
  for (const signal of HOOK_SIGNALS) process.off(signal, onFatalSignal);
}

function containerdConfig(dir: string): string {
  const c = path.join(dir, 'containerd');
  return [
    '# containerd for one private test dockerd: every path lives in the test dir.',
    'version = 2',
    `root = "${c}/root"`,
    `state = "${c}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${c}/containerd.sock"`,
    '[ttrpc]',
    '  address = ""',
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '[plugins]',
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = "${c}/opt"`,
    '  [plugins."io.containerd.runtime.v1.linux"]',
    `    runtime_root = "${c}/runc"`,
    '',
  ].join('\n');
}

function spawnDaemon(binary: string, args: string[], logFile: string): ChildProcess {
  const fd = fs.openSync(logFile, 'a');
  try {
    const child = spawn(binary, args, {
      // Own process group: a terminal ^C reaches the test process, which stops the engine in order.
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, PATH: daemonPath() },
    });
    // Never keep a test process alive just because an engine is running: the exit hook reaps it.
    child.unref();
    child.on('error', (err) => fs.appendFileSync(logFile, `\n[execlet-test] spawn ${binary} failed: ${err.message}\n`));
    return child;
  } finally {
    fs.closeSync(fd);
  }
}

async function waitUntil(
  what: string,
  timeoutMs: number,
  ready: () => Promise<boolean>,
  died: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const death = died();
    if (death !== undefined) throw new Error(`${what}: ${death}`);
    if (await ready()) return;
    if (Date.now() >= deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await delay(POLL_INTERVAL_MS);
  }
}

function exitDescription(child: ChildProcess, name: string): string | undefined {
  if (child.exitCode !== null) return `${name} (pid ${child.pid}) exited with status ${child.exitCode}`;
  if (child.signalCode !== null) return `${name} (pid ${child.pid}) was killed by ${child.signalCode}`;
  if (child.pid === undefined) return `${name} could not be started`;
  return undefined;
}

/**
 * Starts a dockerd of our own, with its own containerd, in a fresh dir under /tmp, and waits until
 * its API answers. Nothing it runs is shared with another dockerd on this machine.
 */
export async function startPrivateDocker(): Promise<TestDocker> {
  const dockerdBin = findBinary('dockerd');
  const containerdBin = findBinary('containerd');
  const dir = fs.mkdtempSync(path.join(TMP_ROOT, DIR_PREFIX));
  const socketPath = path.join(dir, 'docker.sock');
  const dockerdLog = path.join(dir, 'dockerd.log');
  const containerdLog = path.join(dir, 'containerd.log');
  const containerdSocket = path.join(dir, 'containerd', 'containerd.sock');
  const engine: PrivateEngine = {
    dir,
    socketPath,
    dockerd: undefined,
    containerd: undefined,
    stopping: undefined,
    stopped: false,
  };
  liveEngines.add(engine);
  installProcessHooks();

  const started = Date.now();
  try {
    // dockerd 20.10 would attach to /run/containerd/containerd.sock whenever a system containerd
    // runs (sharing its "moby" namespace with the system dockerd), and only otherwise launch its
    // own. Running our own containerd and passing --containerd makes the engine private either way.
    fs.mkdirSync(path.join(dir, 'containerd'));
    fs.writeFileSync(path.join(dir, 'containerd', 'config.toml'), containerdConfig(dir));
    engine.containerd = spawnDaemon(containerdBin, ['--config', path.join(dir, 'containerd', 'config.toml'), '--log-level', 'info'], containerdLog);
    const containerd = engine.containerd;
    await waitUntil(`containerd for ${dir}`, CONTAINERD_READY_TIMEOUT_MS, () => canConnect(containerdSocket, 1_000), () => exitDescription(containerd, 'containerd'));

    // Our own daemon.json keeps /etc/docker/daemon.json out, and moves the trust key
    // (otherwise created as /etc/docker/key.json) into the dir.
    fs.writeFileSync(path.join(dir, 'daemon.json'), `${JSON.stringify({ 'deprecated-key-path': path.join(dir, 'key.json') }, null, 2)}\n`);
    engine.dockerd = spawnDaemon(dockerdBin, dockerdArgs(), dockerdLog);
    const dockerd = engine.dockerd;
    await waitUntil(`dockerd for ${dir}`, DOCKERD_READY_TIMEOUT_MS, () => ping(socketPath, 2_000), () => exitDescription(dockerd, 'dockerd') ?? exitDescription(containerd, 'containerd'));
  } catch (err) {
    const tails = `--- ${dockerdLog} (tail) ---\n${logTail(dockerdLog)}\n--- ${containerdLog} (tail) ---\n${logTail(containerdLog, 12)}`;
    try {
      await stopPrivateEngine(engine);
    } catch (stopErr) {
      throw new Error(`private dockerd failed to start after ${Date.now() - started} ms: ${errorMessage(err)}\n${tails}\n(cleanup: ${errorMessage(stopErr)})`, { cause: err });
    }
    throw new Error(`private dockerd failed to start after ${Date.now() - started} ms: ${errorMessage(err)}\n${tails}`, { cause: err });
  }

  function dockerdArgs(): string[] {
    return [
        `--host=unix://${socketPath}`,
        `--data-root=${path.join(dir, 'data')}`,
        `--exec-root=${path.join(dir, 'exec')}`,
        `--pidfile=${path.join(dir, 'docker.pid')}`,
        `--config-file=${path.join(dir, 'daemon.json')}`,
        `--containerd=${containerdSocket}`,
        '--storage-driver=vfs',
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
        '--ip-forward=false',
        '--bridge=none',
        '--userland-proxy=false',
      ];
  }

  const killDockerd = async (): Promise<void> => {
    const dockerd = engine.dockerd;
    if (!dockerd || dockerd.exitCode !== null || dockerd.signalCode !== null) return;
    const exited = once(dockerd, 'exit');
    dockerd.kill('SIGKILL');
    await exited;
    engine.dockerd = undefined;
  };
  const startDockerd = async (): Promise<void> => {
    fs.rmSync(path.join(dir, 'docker.pid'), { force: true });
    engine.dockerd = spawnDaemon(dockerdBin, dockerdArgs(), dockerdLog);
    const dockerd = engine.dockerd;
    const containerd = engine.containerd!;
    await waitUntil(`dockerd for ${dir} (restarted)`, DOCKERD_READY_TIMEOUT_MS, () => ping(socketPath, 2_000), () => exitDescription(dockerd, 'dockerd') ?? exitDescription(containerd, 'containerd'));
  };

  const stop = (): Promise<void> => {
    engine.stopping ??= stopPrivateEngine(engine);
    return engine.stopping;
  };
  let image: string;
  try {
    image = await ensureBusyboxImage(socketPath);
  } catch (err) {
    await stop().catch(() => undefined);
    throw new Error(`private dockerd in ${dir}: ${errorMessage(err)}\n--- ${dockerdLog} (tail) ---\n${logTail(dockerdLog)}`, { cause: err });
  }
  return {
    host: `unix://${socketPath}`,
    socketPath,
    image,
    private: true,
    dir,
    dockerdPid: engine.dockerd?.pid,
    containerdPid: engine.containerd?.pid,
    killDockerd,
    startDockerd,
    stop,
  };
}

/**
 * The engine tests should use: the one in EXECLET_TEST_DOCKER_HOST (a `unix://` URL, shared,
 * stop() does nothing) when set, else a new private one. The busybox image is ensured either way.
 */
export async function useTestDocker(): Promise<TestDocker> {
  const host = process.env.EXECLET_TEST_DOCKER_HOST;
  if (host === undefined || host === '') return startPrivateDocker();
  if (!host.startsWith('unix://')) throw new Error(`EXECLET_TEST_DOCKER_HOST must be a unix:// URL, got ${JSON.stringify(host)}`);
  const socketPath = host.slice('unix://'.length);
  if (!(await ping(socketPath, 10_000))) throw new Error(`EXECLET_TEST_DOCKER_HOST=${host}: no Docker engine answers GET /_ping on ${socketPath}`);
  const image = await ensureBusyboxImage(socketPath);
  return { host, socketPath, image, private: false, stop: async () => undefined };
}
