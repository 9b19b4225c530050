// The privileges the installs grant are enough, and each one is needed: the agent runs as the
// rendered DaemonSet (default values: nsenter off; all-on values: nsenter on) and as the systemd
// unit would run it — their command, config and volumes, uid 0 with exactly their capabilities
// and no_new_privs — against a real engine. Then, with one capability taken away, the operation
// that needs it fails.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dockerClient, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { collect, execPath, openExec, runExec, type ExecResult } from '../helpers/exec-client.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';
import { buildRenderer, CHART_DIR, daemonSet, render, REPO_ROOT, type Manifest } from '../install/chart.js';
import { containerPrivileges, emulateDaemonSet, emulateSystemdUnit, makeServingCertificate, type EmulatedAgent, type Privileges, type RunningAgent } from '../install/pod.js';
import { boundingSet, execArgv, readUnit } from '../install/units.js';

const ALL_ON = join(CHART_DIR, 'ci', 'all-on-values.yaml');
/** The plaintext of the tokens whose hashes ci/all-on-values.yaml lists. */
const ADMIN_TOKEN = 'admin-token-for-install-tests-0001';
const PROMETHEUS_TOKEN = 'prometheus-token-for-install-tests-0002';
const NODE_NAME = 'test-node';
/** uid of the "application user" container: its docker execs run as this user. */
const APP_UID = 1000;

let docker: TestDocker;
let defaults: Manifest[];
let allOn: Manifest[];
let pki: { caPem: string; files: Record<string, string> };
/** A container running as a non-root user (its execs run as that user). */
let appContainer: TestContainer;
/** A container running as root with the engine's default capabilities (more than the agent's). */
let rootContainer: TestContainer;
const containers: TestContainer[] = [];
const emulations: EmulatedAgent[] = [];
const agents: RunningAgent[] = [];
const tempDirs: string[] = [];

/**
 * A busybox image a non-root user can run. (The shared test image's "/" is mode 0700: it is
 * imported from a temp dir, and a commit cannot change the root's mode.) Imported once per engine.
 */
async function nonRootImage(): Promise<string> {
  const client = dockerClient(docker);
  const image = 'execlet-test/busybox-nonroot:1';
  try {
    await client.getImage(image).inspect();
    return image;
  } catch {
    // not imported yet
  }
  const root = mkdtempSync(join(tmpdir(), 'execlet-rootfs-'));
  tempDirs.push(root);
  chmodSync(root, 0o755);
  for (const dir of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(root, dir), { mode: 0o755 });
  chmodSync(join(root, 'tmp'), 0o1777);
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  assert.ok(busybox, 'static busybox (busybox-static)');
  copyFileSync(busybox, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'sleep', 'id', 'cat']) symlinkSync('busybox', join(root, 'bin', applet));
  writeFileSync(join(root, 'etc', 'passwd'), `root:x:0:0:root:/:/bin/sh\napp:x:${APP_UID}:${APP_UID}:app:/tmp:/bin/sh\n`);
  const tarFile = `${root}.tar`;
  tempDirs.push(tarFile);
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tarFile, '.']);
  const [repo, tag] = image.split(':');
  const progress = await client.importImage(tarFile, { repo, tag });
  await new Promise<void>((resolve, reject) => client.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve())));
  return image;
}

async function startUserContainer(): Promise<TestContainer> {
  const client = dockerClient(docker);
  const name = `execlet-test-app-${randomBytes(4).toString('hex')}`;
  const container = await client.createContainer({ name, Image: await nonRootImage(), Cmd: ['/bin/sleep', '100000'], User: `${APP_UID}:${APP_UID}` });
  await container.start();
  const info = await container.inspect();
  let removing: Promise<void> | undefined;
  return {
    id: container.id,
    name,
    hostPid: info.State.Pid,
    remove: () => (removing ??= container.remove({ force: true }).then(() => undefined, () => undefined)),
  };
}

before(async () => {
  docker = await useTestDocker();
  const renderer = await buildRenderer();
  [defaults, allOn] = await Promise.all([render(renderer), render(renderer, { valuesFiles: [ALL_ON] })]);
  pki = makeServingCertificate(['127.0.0.1', 'localhost']);
  [appContainer, rootContainer] = await Promise.all([startUserContainer(), startContainer(docker)]);
  containers.push(appContainer, rootContainer);
});

after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  for (const e of emulations) e.dispose();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  await Promise.all(containers.map((c) => c.remove()));
  await docker?.stop();
});

function emulate(manifests: Manifest[], privileges?: Privileges): EmulatedAgent {
  const emulation = emulateDaemonSet(manifests, {
    dockerSocket: docker.socketPath,
    nodeName: NODE_NAME,
    // The Secrets the chart does not render: the TLS Secret and the client CA.
    files: { tls: pki.files, 'client-ca': { 'clients-ca.crt': pki.caPem } },
    caPem: pki.caPem,
    ...(privileges ? { privileges } : {}),
  });
  emulations.push(emulation);
  return emulation;
}

async function start(emulation: EmulatedAgent): Promise<RunningAgent> {
  const agent = await emulation.start();
  agents.push(agent);
  return agent;
}

/** The privileges of the rendered container, with `capability` taken away. */
function without(manifests: Manifest[], capability: string): Privileges {
  const privileges = containerPrivileges(daemonSet(manifests).container);
  const capabilities = privileges.capabilities ?? [];
  assert.ok(capabilities.includes(capability), `the chart grants ${capability}`);
  return { ...privileges, capabilities: capabilities.filter((c) => c !== capability) };
}

function get(agent: RunningAgent, path: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: agent.port, path, ca: agent.caPem, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const text = (b: Buffer) => b.toString('utf8').trim();

function exitCode(result: ExecResult): number {
  const status = JSON.parse(result.error || '{}') as { status?: string; details?: { causes?: Array<{ reason?: string; message: string }> } };
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause ? Number(cause.message) : -1;
}

/** An exec in the docker namespace's pod for `container`, `mode` being '', '.nsenter' or '.toolbox'. */
function exec(agent: RunningAgent, container: TestContainer, command: string[], suffix = '', token?: string): Promise<ExecResult> {
  return runExec(agent, 'docker', container.name, { command, container: `${container.name}${suffix}`, stdout: true, stderr: true }, token ? { token } : {});
}

/**
 * Starts `sleep SECONDS` through a docker exec in the app container (as its non-root user) and
 * returns the open session and the sleep's host PID.
 */
async function startSleeper(agent: RunningAgent, token?: string): Promise<{ close(): void; pid: number; commandLine: string }> {
  const seconds = String(900_000 + Math.floor(Math.random() * 90_000));
  const path = execPath('docker', appContainer.name, { command: ['/bin/sleep', seconds], container: appContainer.name, stdout: true });
  const ws = await openExec(agent, path, token ? { token } : {});
  void collect(ws).catch(() => undefined);
  const commandLine = `/bin/sleep ${seconds}`;
  await waitUntil(() => pidsWithCommandLine(commandLine).length === 1, 10_000, `${commandLine} to run`);
  const pid = pidsWithCommandLine(commandLine)[0]!;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, new RegExp(`^Uid:\\s+${APP_UID}\\s`, 'm'), 'the session process runs as the container user');
  return { close: () => ws.close(), pid, commandLine };
}

function killLeftover(commandLine: string): void {
  for (const pid of pidsWithCommandLine(commandLine)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Disconnecting ends the session's process (another user's): true when it is gone within `ms`. */
async function disconnectKills(agent: RunningAgent, token?: string, ms = 5000): Promise<boolean> {
  const sleeper = await startSleeper(agent, token);
  sleeper.close();
  try {
    await waitUntil(() => pidsWithCommandLine(sleeper.commandLine).length === 0, ms, 'the session process to end');
    return true;
  } catch {
    killLeftover(sleeper.commandLine);
    return false;
  } finally {
    killLeftover(sleeper.commandLine);
  }
}

/**
 * A restarted agent (same state dir) kills what a crashed one left: true when the orphan is gone.
 * The agent reaps before it serves, so once it serves the outcome is known (a short grace covers
 * the last SIGKILL).
 */
async function restartReaps(emulation: EmulatedAgent, token?: string): Promise<{ reaped: boolean; output: string }> {
  const first = await start(emulation);
  const sleeper = await startSleeper(first, token ?? first.token);
  await first.crash();
  assert.deepEqual(pidsWithCommandLine(sleeper.commandLine), [sleeper.pid], 'the docker exec outlives the crashed agent');
  const second = await start(emulation);
  try {
    await waitUntil(() => pidsWithCommandLine(sleeper.commandLine).length === 0, 1000, 'the orphan to be reaped');
    return { reaped: true, output: second.output() };
  } catch {
    return { reaped: false, output: second.output() };
  } finally {
    killLeftover(sleeper.commandLine);
    await second.stop();
  }
}

describe('default values (nsenter disabled): KILL, SYS_PTRACE, DAC_READ_SEARCH and no_new_privs suffice', () => {
  let emulation: EmulatedAgent;
  let agent: RunningAgent;

  before(async () => {
    emulation = emulate(defaults);
    assert.deepEqual(containerPrivileges(daemonSet(defaults).container), { capabilities: ['KILL', 'SYS_PTRACE', 'DAC_READ_SEARCH'], noNewPrivs: true });
    agent = await start(emulation);
  });

  test('the rendered probes answer 200 without a token', async () => {
    const { container } = daemonSet(defaults);
    for (const probe of [container.livenessProbe!, container.readinessProbe!]) {
      assert.equal(probe.httpGet!.scheme, 'HTTPS');
      const res = await get(agent, probe.httpGet!.path);
      assert.equal(res.status, 200, `${probe.httpGet!.path}: ${res.body}`);
    }
    assert.equal((await get(agent, '/metrics')).status, 401, '/metrics needs a token');
  });

  test('a docker exec runs, as the container user, through the read-only socket mount', async () => {
    const result = await exec(agent, appContainer, ['/bin/id', '-u']);
    assert.equal(exitCode(result), 0, result.error);
    assert.equal(text(result.stdout), String(APP_UID));
  });

  test('the nsenter modes are refused', async () => {
    await assert.rejects(exec(agent, rootContainer, ['true'], '.nsenter'), (err: { statusCode?: number }) => err.statusCode === 403);
  });

  test("ending a session kills its process, another user's", async () => {
    assert.equal(await disconnectKills(agent), true);
  });

  test('a restarted agent reaps the processes a crashed one left, of any user', async () => {
    await agent.stop();
    const { reaped, output } = await restartReaps(emulation);
    assert.equal(reaped, true, output);
    assert.match(output, /killed a process left behind by an ended session or an earlier agent/);
  });
});

describe('all-on values (nsenter enabled): + SYS_ADMIN and SYS_CHROOT suffice for every mode', () => {
  let emulation: EmulatedAgent;
  let agent: RunningAgent;

  before(async () => {
    emulation = emulate(allOn);
    agent = await start(emulation);
  });

  test('probes without a token; metrics with the Prometheus token from the token file', async () => {
    const { container } = daemonSet(allOn);
    assert.equal((await get(agent, container.livenessProbe!.httpGet!.path)).status, 200);
    assert.equal((await get(agent, container.readinessProbe!.httpGet!.path)).status, 200);
    const metrics = await get(agent, '/metrics', PROMETHEUS_TOKEN);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /execlet_engine_up 1/);
  });

  test('nsenter into a root container (more capabilities than the agent): its namespaces, outside its cgroup', async () => {
    const result = await exec(agent, rootContainer, ['sh', '-c', 'hostname; cat /proc/1/cmdline | tr "\\0" " "'], '.nsenter', ADMIN_TOKEN);
    assert.equal(exitCode(result), 0, `${result.error} ${text(result.stderr)}`);
    const [hostname, init] = text(result.stdout).split('\n');
    assert.equal(hostname, rootContainer.id.slice(0, 12), 'the container UTS namespace');
    assert.equal(init?.trim(), 'sleep 100000', 'the container PID namespace');
  });

  test('the toolbox: the container namespaces with a fresh /proc in a mount namespace of its own', async () => {
    const result = await exec(agent, rootContainer, ['ps', '-o', 'pid,comm'], '.toolbox', ADMIN_TOKEN);
    assert.equal(exitCode(result), 0, `${result.error} ${text(result.stderr)}`);
    assert.match(text(result.stdout), /^\s*1\s+sleep$/m);
  });

  test('a node shell runs', async () => {
    const result = await runExec(agent, 'execlet-node', NODE_NAME, { command: ['id', '-u'], container: 'host', stdout: true, stderr: true }, { token: ADMIN_TOKEN });
    assert.equal(exitCode(result), 0, `${result.error} ${text(result.stderr)}`);
    assert.equal(text(result.stdout), '0');
  });

  test("sessions of another user are killed on disconnect and reaped after a crash", async () => {
    assert.equal(await disconnectKills(agent, ADMIN_TOKEN), true);
    await agent.stop();
    const { reaped, output } = await restartReaps(emulation, ADMIN_TOKEN);
    assert.equal(reaped, true, output);
  });
});

describe('the systemd unit: its bounding set and NoNewPrivileges run every mode', () => {
  test('nsenter, toolbox and a docker exec as another user, started as ExecStart= starts it', async () => {
    const unit = readUnit(join(REPO_ROOT, 'systemd', 'execlet.service'));
    const set = boundingSet([unit]);
    assert.notEqual(set, 'all');
    const privileges: Privileges = { capabilities: [...(set as Set<string>)].map((c) => c.replace(/^CAP_/, '')), noNewPrivs: unit.get('Service', 'NoNewPrivileges') === 'yes' };
    assert.equal(privileges.noNewPrivs, true);
    // The host's files, as docs/install.md installs them.
    const root = mkdtempSync(join(tmpdir(), 'execlet-systemd-'));
    tempDirs.push(root);
    for (const dir of ['etc/tls', 'state', 'log']) mkdirSync(join(root, dir), { recursive: true });
    writeFileSync(join(root, 'etc/tls/tls.crt'), pki.files['tls.crt']!);
    writeFileSync(join(root, 'etc/tls/tls.key'), pki.files['tls.key']!);
    writeFileSync(join(root, 'etc/tokens'), 'sha256:69e07456e499889958fc0077a03a2631de7c30174c6a49fdc464450921392c77 ana admins\n');
    writeFileSync(join(root, 'etc/policy.yaml'), readFileSync(join(REPO_ROOT, 'systemd', 'policy.yaml')));
    const emulation = emulateSystemdUnit({
      execStart: execArgv(unit.get('Service', 'ExecStart')!),
      privileges,
      pathMap: [
        ['/etc/execlet', join(root, 'etc')],
        ['/var/lib/execlet', join(root, 'state')],
        ['/var/log/execlet', join(root, 'log')],
        ['/var/run/docker.sock', docker.socketPath],
      ],
      configText: readFileSync(join(REPO_ROOT, 'systemd', 'config.yaml'), 'utf8'),
      caPem: pki.caPem,
    });
    emulations.push(emulation);
    const agent = await start(emulation);
    const nsenter = await exec(agent, rootContainer, ['hostname'], '.nsenter', ADMIN_TOKEN);
    assert.equal(exitCode(nsenter), 0, `${nsenter.error} ${text(nsenter.stderr)}`);
    assert.equal(text(nsenter.stdout), rootContainer.id.slice(0, 12));
    const toolbox = await exec(agent, rootContainer, ['ps', '-o', 'pid,comm'], '.toolbox', ADMIN_TOKEN);
    assert.equal(exitCode(toolbox), 0, `${toolbox.error} ${text(toolbox.stderr)}`);
    assert.equal(await disconnectKills(agent, ADMIN_TOKEN), true);
    await agent.stop();
    // The audit log went to the unit's LogsDirectory.
    assert.match(readFileSync(join(root, 'log', 'audit.log'), 'utf8'), /"user":"ana"/);
  });
});

describe('each capability is needed', () => {
  test('without KILL, a session of another user survives its disconnect', async () => {
    const agent = await start(emulate(defaults, without(defaults, 'KILL')));
    // The agent sends SIGHUP, then SIGKILL after killGraceMs (1 s): both fail with EPERM.
    assert.equal(await disconnectKills(agent, undefined, 1500), false);
    await agent.stop();
  });

  test('without DAC_READ_SEARCH, a restarted agent cannot see the marker of another user\'s orphan', async () => {
    const { reaped } = await restartReaps(emulate(defaults, without(defaults, 'DAC_READ_SEARCH')));
    assert.equal(reaped, false);
  });

  test('without SYS_PTRACE, neither the orphan marker nor a root container\'s namespaces can be read', async () => {
    const { reaped } = await restartReaps(emulate(defaults, without(defaults, 'SYS_PTRACE')));
    assert.equal(reaped, false);
    const agent = await start(emulate(allOn, without(allOn, 'SYS_PTRACE')));
    const result = await exec(agent, rootContainer, ['true'], '.nsenter', ADMIN_TOKEN);
    assert.notEqual(exitCode(result), 0);
    assert.match(text(result.stderr), /Permission denied|Operation not permitted/);
    await agent.stop();
  });

  test('without SYS_ADMIN no namespace can be entered; without SYS_CHROOT no mount namespace', async () => {
    const noAdmin = await start(emulate(allOn, without(allOn, 'SYS_ADMIN')));
    const netOnly = await runExec(noAdmin, 'docker', rootContainer.name, { command: ['true'], container: `${rootContainer.name}.nsenter`, namespaces: 'net', stdout: true, stderr: true }, { token: ADMIN_TOKEN });
    assert.notEqual(exitCode(netOnly), 0);
    assert.match(text(netOnly.stderr), /Operation not permitted/);
    await noAdmin.stop();

    const noChroot = await start(emulate(allOn, without(allOn, 'SYS_CHROOT')));
    const net = await runExec(noChroot, 'docker', rootContainer.name, { command: ['true'], container: `${rootContainer.name}.nsenter`, namespaces: 'net', stdout: true, stderr: true }, { token: ADMIN_TOKEN });
    assert.equal(exitCode(net), 0, `without the mount namespace it works: ${text(net.stderr)}`);
    const mount = await runExec(noChroot, 'docker', rootContainer.name, { command: ['true'], container: `${rootContainer.name}.nsenter`, namespaces: 'mount', stdout: true, stderr: true }, { token: ADMIN_TOKEN });
    assert.notEqual(exitCode(mount), 0);
    assert.match(text(mount.stderr), /ns\/mnt.*Operation not permitted/);
    await noChroot.stop();
  });
});
