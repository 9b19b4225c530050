// The nsenter backend against real containers: the cgroup escape (a starved container's limits do
// not apply), real namespace choice, the toolbox view, the node shell, TTY sizes, no lost output,
// no process left behind on disconnect or when the agent is killed, and the one-exec helper between
// the agent and the command.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { NsenterBackend } from '../../src/backend/nsenter.js';
import { BackendError } from '../../src/backend/types.js';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { dockerClient, podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { collect, execPath, onMessage, openExec, runExec, sendResize, sendStdin } from '../helpers/exec-client.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';
import { kubectlStderr } from '../helpers/kubectl-stderr.js';
import { runCommand } from '../helpers/run-command.js';

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32';

let docker: TestDocker;
let agent: TestAgent;
let starved: TestContainer;
let isolated: TestContainer;
/** How long a process the agent ends may take to be gone: SIGHUP, SIGKILL after the 1 s kill grace, and a loaded machine's slack. */
const GONE_WITHIN_MS = 5000;
const containers: TestContainer[] = [];

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker, { nodeName: 'test-node' });
  starved = await startContainer(docker, { labels: podLabels('default', 'starved', 'app'), memoryBytes: 32 * 1024 * 1024 });
  isolated = await startContainer(docker, { labels: podLabels('default', 'isolated', 'app'), networkNone: true });
  containers.push(starved, isolated);
});

after(async () => {
  for (const c of containers) await c.remove();
  await agent?.stop();
  await docker?.stop();
});

const text = (b: Buffer) => b.toString('utf8');
const exitCodeOf = (error: string) => {
  const status = JSON.parse(error) as { status: string; details?: { causes?: Array<{ message: string }> } };
  return status.status === 'Success' ? 0 : Number(status.details?.causes?.[0]?.message);
};

describe('cgroup escape', () => {
  test('in a 32 MiB container, a 100 MB buffer is OOM-killed through docker exec but not through nsenter', async () => {
    const script = ['sh', '-c', 'grep memory /proc/self/cgroup; dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null'];
    const viaDocker = await runExec(agent, 'default', 'starved', { command: script, container: 'app', stdout: true, stderr: true });
    const viaNsenter = await runExec(agent, 'default', 'starved', { command: script, container: 'app.nsenter', stdout: true, stderr: true });
    const dockerCgroup = text(viaDocker.stdout).trim();
    const nsenterCgroup = text(viaNsenter.stdout).trim();
    assert.match(dockerCgroup, /memory:.*[0-9a-f]{64}/, 'docker exec runs in the container memory cgroup');
    assert.notEqual(nsenterCgroup, dockerCgroup, 'nsenter runs outside the container cgroup');
    assert.ok(!nsenterCgroup.includes(starved.id), nsenterCgroup);
    assert.equal(exitCodeOf(viaDocker.error), 137, 'docker exec is OOM-killed');
    assert.equal(exitCodeOf(viaNsenter.error), 0, 'nsenter allocates well over the limit');
  });
});

describe('namespace choice', () => {
  test('only net: the container interfaces (just lo) and the node filesystem', async () => {
    const r = await runExec(agent, 'default', 'isolated', {
      command: ['sh', '-c', 'cat /proc/net/dev; cat /etc/debian_version'],
      container: 'app.nsenter',
      namespaces: 'net',
      stdout: true,
      stderr: true,
    });
    const interfaces = text(r.stdout).split('\n').filter((l) => l.includes(':')).map((l) => l.split(':')[0]!.trim());
    assert.deepEqual(interfaces, ['lo']);
    assert.equal(text(r.stdout).trim().split('\n').pop(), readFileSync('/etc/debian_version', 'utf8').trim(), 'the node filesystem');
    assert.equal(exitCodeOf(r.error), 0);
  });

  test('mount: the container root', async () => {
    const inContainer = await runExec(agent, 'default', 'isolated', { command: ['ls', '/'], container: 'app', stdout: true });
    const r = await runExec(agent, 'default', 'isolated', { command: ['ls', '/'], container: 'app.nsenter', namespaces: ['mount', 'pid'], stdout: true });
    assert.equal(text(r.stdout), text(inContainer.stdout));
    const noDebian = await runExec(agent, 'default', 'isolated', { command: ['cat', '/etc/debian_version'], container: 'app.nsenter', stdout: true, stderr: true });
    assert.equal(exitCodeOf(noDebian.error), 1, 'the busybox image has no /etc/debian_version');
  });

  test('toolbox: the container PID 1 is PID 1, with the node filesystem at hand', async () => {
    const r = await runExec(agent, 'default', 'isolated', {
      command: ['sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "; echo; test -e /etc/debian_version && echo node-fs; cat /proc/net/dev | grep -c :'],
      container: 'app.toolbox',
      stdout: true,
      stderr: true,
    });
    const [pid1, fs, interfaceCount] = text(r.stdout).trim().split('\n');
    assert.equal(pid1!.trim(), 'sleep 100000');
    assert.equal(fs, 'node-fs');
    assert.equal(interfaceCount, '1', 'the container network (lo only)');
    assert.equal(exitCodeOf(r.error), 0, text(r.stderr));
  });

  test('an unknown namespace name is a 400 naming it', async () => {
    await assert.rejects(openExec(agent, execPath('default', 'isolated', { command: 'true', container: 'app.nsenter', namespaces: 'net,bogus', stdout: true })), (err: { statusCode?: number; body?: string }) => {
      assert.equal(err.statusCode, 400);
      assert.match(err.body ?? '', /unknown namespace \\"bogus\\": choose from mount, uts, ipc, net, pid, user, cgroup/);
      return true;
    });
  });
});

describe('node shell', () => {
  test('kubectl exec -n execlet-node NODE: the node hostname and /proc/1/cgroup', async () => {
    const r = await runCommand(KUBECTL, ['exec', '-n', 'execlet-node', 'test-node', '--', 'sh', '-c', 'hostname; cat /proc/1/cgroup'], {
      env: { KUBECONFIG: agent.kubeconfig, HOME: agent.stateDir },
    });
    assert.equal(r.code, 0, text(r.stderr));
    const [name, ...cgroup] = text(r.stdout).split('\n');
    assert.equal(name, hostname());
    assert.equal(cgroup.join('\n'), readFileSync('/proc/1/cgroup', 'utf8'));
  });

  test('the node pod is listed like any other', async () => {
    const r = await runCommand(KUBECTL, ['get', 'pods', '-n', 'execlet-node', '-o', 'jsonpath={.items[*].metadata.name}/{.items[*].spec.containers[*].name}'], {
      env: { KUBECONFIG: agent.kubeconfig, HOME: agent.stateDir },
    });
    assert.equal(text(r.stdout), 'test-node/host');
  });
});

describe('TTY and exit codes', () => {
  test('kubectl exit codes pass through the nsenter and toolbox modes', async () => {
    for (const container of ['app.nsenter', 'app.toolbox']) {
      const r = await runCommand(KUBECTL, ['exec', '-n', 'default', 'isolated', '-c', container, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], {
        env: { KUBECONFIG: agent.kubeconfig, HOME: agent.stateDir },
      });
      assert.equal(text(r.stdout), 'out\n');
      assert.match(kubectlStderr(r.stderr), /^err\n/);
      assert.equal(r.code, 3);
    }
  });

  test('a process killed by a signal reports 128+n, with and without a TTY', async () => {
    for (const tty of [false, true]) {
      const r = await runExec(agent, 'default', 'isolated', {
        command: ['sh', '-c', 'kill -TERM $$'],
        container: 'app.nsenter',
        stdout: true,
        ...(tty ? { tty: true } : { stderr: true }),
      });
      assert.equal(exitCodeOf(r.error), 143, `tty=${tty}: ${r.error}`);
    }
  });

  test('stty size: the initial size, then every resize', async () => {
    const ws = await openExec(agent, execPath('default', 'isolated', { command: 'sh', container: 'app.nsenter', stdin: true, stdout: true, tty: true }));
    const result = collect(ws);
    let output = '';
    onMessage(ws, (data) => {
      if (data[0] === 1) output += data.subarray(1).toString('utf8');
    });
    sendResize(ws, 91, 17);
    sendStdin(ws, 'stty size\n');
    await waitUntil(() => output.includes('17 91'), 5000, 'the initial size');
    sendResize(ws, 120, 40);
    sendStdin(ws, 'stty size\n');
    await waitUntil(() => output.includes('40 120'), 5000, 'the resized terminal');
    sendStdin(ws, 'exit 4\n');
    const r = await result;
    assert.equal(exitCodeOf(r.error), 4);
  });
});

describe('no lost tail', () => {
  // Small enough to be held whole between the process and a client that reads nothing (~5 MB here,
  // mostly the kernel's TCP buffers), so the process ends while all of its output is on the way.
  // (20 MB, as before, blocked the writer until the client read: the test passed only when its
  // check ran before the writer had even started.)
  const SIZE = 2 * 1024 * 1024;
  let file: string;
  let expected: string;

  before(async () => {
    file = `/tmp/tail-${randomBytes(4).toString('hex')}`;
    const made = await runExec(agent, 'default', 'isolated', { command: ['sh', '-c', `head -c ${SIZE} /dev/urandom > ${file} && sha256sum ${file}`], container: 'app', stdout: true });
    expected = text(made.stdout).split(' ')[0]!;
    assert.match(expected, /^[0-9a-f]{64}$/);
  });

  for (const tty of [false, true]) {
    test(`2 MB written by a process that exits while its client reads nothing all arrive (${tty ? 'TTY' : 'no TTY'})`, async () => {
      const done = `${file}.${tty ? 'tty' : 'pipe'}.done`;
      const write = `cat ${file} && touch ${done}`;
      const command = ['sh', '-c', tty ? `stty raw -echo; ${write}` : write];
      const ws = await openExec(agent, execPath('default', 'isolated', { command, container: 'app.nsenter', stdout: true, ...(tty ? { tty: true } : { stderr: true }) }));
      // Stall reading so the process finishes writing while its output is held back.
      const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      const result = collect(ws);
      await waitUntil(() => existsSync(`/proc/${isolated.hostPid}/root${done}`), 10_000, 'the writer to finish');
      await new Promise((resolve) => setTimeout(resolve, 500)); // the process is gone; longer than a terminal's 200 ms teardown
      socket.resume();
      const r = await result;
      assert.equal(r.stdout.length, SIZE);
      assert.equal(createHash('sha256').update(r.stdout).digest('hex'), expected);
      assert.equal(exitCodeOf(r.error), 0);
    });
  }
});

for (const spawner of ['posix', 'node'] as const) {
  const how = spawner === 'posix' ? 'posix_spawn' : 'node-pty';
  test(`TTY output written just before exit survives a reader that stalls past the terminal's teardown (${how})`, async () => {
    const backend = new NsenterBackend({ killGraceMs: 100, spawner });
    const proc = await backend.start({
      place: { kind: 'namespaces', pid: process.pid, namespaces: ['net', 'pid'], toolbox: false },
      command: ['sh', '-c', 'stty raw -echo; head -c 70000 /dev/zero | tr "\\0" x'],
      tty: true,
      stdin: false,
      stdout: true,
      stderr: false,
      initialSize: { width: 80, height: 24 },
    });
    // Nobody reads for a second: the pty is paused by backpressure when the process exits.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const exit = await proc.exit;
    await new Promise((resolve) => (proc.stdout.readableEnded ? resolve(null) : proc.stdout.once('end', resolve)));
    const output = Buffer.concat(chunks).toString('latin1');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(output.length, 70000);
    assert.match(output, /^x+$/);
  });
}

test('output held paused past the quiet end after exit (2 s) is delivered whole, without a TTY', async () => {
  // The session pauses a stream while its client is behind. Output left unread after the process
  // exited is cut 2 s later only when nothing was read and nothing held paused meanwhile (a
  // background process holding it open); a paused stream waits for its client.
  const backend = new NsenterBackend({ killGraceMs: 100, spawner: 'posix' });
  const proc = await backend.start({
    place: { kind: 'namespaces', pid: process.pid, namespaces: ['net', 'pid'], toolbox: false },
    // Fits the pipe: written whole, so the process exits at once with all of it unread.
    command: ['sh', '-c', 'head -c 60000 /dev/zero | tr "\\0" y'],
    tty: false,
    stdin: false,
    stdout: true,
    stderr: false,
  });
  proc.stdout.pause();
  // The client is behind for longer than the quiet end: the scenario itself, not a wait for an event.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const chunks: Buffer[] = [];
  proc.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  proc.stdout.resume();
  assert.deepEqual(await proc.exit, { code: 0, signal: null });
  const output = Buffer.concat(chunks).toString('latin1');
  assert.equal(output.length, 60000);
  assert.match(output, /^y+$/);
});

describe('the helper', () => {
  const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);
  const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);

  test('one exec between the agent and the command: execlet-nsenter, whose fork in the PID namespace is the command', async () => {
    const marker = 'sleep 1234501';
    const ws = await openExec(agent, execPath('default', 'isolated', { command: marker.split(' '), container: 'app.nsenter', stdout: true }));
    try {
      await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
      // agent → execlet-nsenter (waits, outside the PID namespace) → its fork, which became the command.
      const command = pidsWithCommandLine(marker)[0]!;
      const helper = parentOf(command);
      const argv = argvOf(helper);
      assert.match(argv[0]!, /\/dist\/native\/execlet-nsenter$/);
      assert.deepEqual(argv.slice(1), ['--target', String(isolated.hostPid), '--ns', 'mnt,uts,ipc,net,pid', '--', 'sleep', '1234501']);
      assert.equal(parentOf(helper), agent.process.pid, 'the helper is the agent\'s child');
    } finally {
      const closed = once(ws, 'close');
      ws.terminate();
      await closed;
      await waitUntil(() => pidsWithCommandLine(marker).length === 0, GONE_WITHIN_MS, `${marker} to be gone`);
    }
  });

  test('a command that is not there: 127 (not found) through the agent', async () => {
    const r = await runExec(agent, 'default', 'isolated', { command: ['no-such-command'], container: 'app.nsenter', stdout: true, stderr: true });
    assert.equal(exitCodeOf(r.error), 127);
    assert.match(text(r.stderr), /execlet-nsenter: cannot run no-such-command: No such file or directory/);
  });
});

describe('the standby helper', () => {
  /** Children of every thread of `pid` (a standby is started from a worker thread). */
  const childrenOf = (pid: number) =>
    readdirSync(`/proc/${pid}/task`).flatMap((task) => readFileSync(`/proc/${pid}/task/${task}/children`, 'latin1').trim().split(' ').filter(Boolean).map(Number));
  const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
  const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ')[1]);
  /** The agent's children waiting as a standby (argv: the helper, --standby, its room of spaces). */
  const standbysOf = (owner: TestAgent) =>
    childrenOf(owner.process.pid!).filter((pid) => {
      try {
        return argvOf(pid)[1] === '--standby';
      } catch {
        return false; // gone meanwhile
      }
    });
  /** The one standby of `owner`, once there is exactly one and it is not `previous`. */
  const nextStandby = async (owner: TestAgent, previous?: number) => {
    await waitUntil(() => standbysOf(owner).length === 1 && standbysOf(owner)[0] !== previous, 5000, 'a standby helper');
    return standbysOf(owner)[0]!;
  };
  const quick = { command: 'true', container: 'app.nsenter', stdout: true };

  test('a session without a TTY runs in the standby started after the one before it, which ps shows with its arguments; then another waits', async () => {
    assert.equal(exitCodeOf((await runExec(agent, 'default', 'isolated', quick)).error), 0);
    const standby = await nextStandby(agent);
    const marker = 'sleep 1234521';
    const ws = await openExec(agent, execPath('default', 'isolated', { command: marker.split(' '), container: 'app.nsenter', stdout: true }));
    try {
      await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
      const helper = parentOf(pidsWithCommandLine(marker)[0]!);
      assert.equal(helper, standby, 'the command is the standby\'s fork');
      assert.deepEqual(argvOf(helper).slice(1), ['--target', String(isolated.hostPid), '--ns', 'mnt,uts,ipc,net,pid', '--', 'sleep', '1234521']);
      await nextStandby(agent, standby);
    } finally {
      const closed = once(ws, 'close');
      ws.terminate();
      await closed;
      await waitUntil(() => pidsWithCommandLine(marker).length === 0, GONE_WITHIN_MS, `${marker} to be gone`);
    }
  });

  test('streams not asked for are /dev/null in the standby too: no input, output goes nowhere, no SIGPIPE', async () => {
    const standby = await nextStandby(agent);
    const script = 'cat; i=0; while [ $i -lt 3000 ]; do echo filler filler filler; i=$((i+1)); done; echo done >&2';
    const r = await runExec(agent, 'default', 'isolated', { command: ['sh', '-c', script], container: 'app.nsenter', stderr: true });
    assert.equal(exitCodeOf(r.error), 0, r.error);
    assert.equal(text(r.stderr), 'done\n');
    assert.equal(text(r.stdout), '');
    await nextStandby(agent, standby);
  });

  test('a TTY session starts its own helper on a new terminal and leaves the standby waiting', async () => {
    const standby = await nextStandby(agent);
    const marker = 'sleep 1234522';
    const ws = await openExec(agent, execPath('default', 'isolated', { command: ['sh', '-c', marker], container: 'app.nsenter', stdin: true, stdout: true, tty: true }));
    try {
      sendResize(ws, 80, 24);
      await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
      assert.notEqual(parentOf(pidsWithCommandLine(marker)[0]!), standby);
      assert.deepEqual(standbysOf(agent), [standby]);
    } finally {
      const closed = once(ws, 'close');
      ws.terminate();
      await closed;
      await waitUntil(() => pidsWithCommandLine(marker).length === 0, GONE_WITHIN_MS, `${marker} to be gone`);
    }
  });

  test('a standby killed before its session: the agent says so, the session starts its own helper, and another standby follows', async () => {
    const standby = await nextStandby(agent);
    process.kill(standby, 'SIGKILL');
    await waitUntil(() => agent.output().includes(`the standby nsenter helper (pid ${standby}) ended before it was used (code null, signal 9)`), 5000, 'the agent to report the lost standby');
    const r = await runExec(agent, 'default', 'isolated', { command: ['sh', '-c', 'echo still works'], container: 'app.nsenter', stdout: true });
    assert.equal(exitCodeOf(r.error), 0);
    assert.equal(text(r.stdout), 'still works\n');
    await nextStandby(agent, standby);
  });

  /** True while `pid` is the same live process as when this was made (its start time in /proc). */
  const sameProcess = (pid: number) => {
    const stat = () => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
    let startTime: string | undefined;
    try {
      startTime = stat()[19];
    } catch {
      return () => false; // already gone
    }
    return () => {
      try {
        const now = stat();
        return now[0] !== 'Z' && now[19] === startTime;
      } catch {
        return false;
      }
    };
  };

  test('none before the first nsenter session; SIGKILL of the agent takes its standby along', async () => {
    const doomed = await startAgent(docker, { nodeName: 'standby-node' });
    try {
      assert.deepEqual(standbysOf(doomed), [], 'none before the first nsenter session');
      assert.equal(exitCodeOf((await runExec(doomed, 'default', 'isolated', quick)).error), 0);
      const alive = sameProcess(await nextStandby(doomed));
      const exited = once(doomed.process, 'exit');
      doomed.process.kill('SIGKILL');
      await exited;
      await waitUntil(() => !alive(), GONE_WITHIN_MS, 'the standby to die with the agent');
    } finally {
      await doomed.stop();
    }
  });

  test('the backend: a standby only when asked for, used by the next session, let go by close() while its owner lives', async () => {
    const spec = { place: { kind: 'namespaces' as const, pid: isolated.hostPid, namespaces: ['uts' as const], toolbox: false }, command: ['true'], tty: false, stdin: false, stdout: true, stderr: true };
    const run = async (backend: NsenterBackend) => {
      const proc = await backend.start(spec);
      proc.stdout.resume();
      proc.stderr?.resume();
      assert.deepEqual(await proc.exit, { code: 0, signal: null });
    };
    const plain = new NsenterBackend({ killGraceMs: 100 });
    await run(plain);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(plain.standbyPid, null, 'no standby unless asked for');

    const errors: Error[] = [];
    const backend = new NsenterBackend({ killGraceMs: 100, standby: true, onStandbyError: (err) => errors.push(err) });
    try {
      await run(backend);
      await waitUntil(() => backend.standbyPid !== null, 5000, 'the first standby');
      const first = sameProcess(backend.standbyPid!);
      await run(backend);
      assert.equal(first(), false, 'the first standby ran the second session and is gone');
      await waitUntil(() => backend.standbyPid !== null, 5000, 'the next standby');
      const next = sameProcess(backend.standbyPid!);
      backend.close();
      await waitUntil(() => !next(), GONE_WITHIN_MS, 'the standby to exit after close()');
      assert.equal(backend.standbyPid, null);
      await run(backend);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(backend.standbyPid, null, 'none after close()');
      assert.deepEqual(errors, []);
    } finally {
      backend.close();
    }
  });

  test('the backend: a session whose command runs on does not keep the next one from a standby', async () => {
    const spec = { place: { kind: 'namespaces' as const, pid: isolated.hostPid, namespaces: ['uts' as const], toolbox: false }, tty: false, stdin: false, stdout: true, stderr: true };
    const backend = new NsenterBackend({ killGraceMs: 100, standby: true });
    try {
      const warmUp = await backend.start({ ...spec, command: ['true'] });
      warmUp.stdout.resume();
      warmUp.stderr?.resume();
      await warmUp.exit;
      await waitUntil(() => backend.standbyPid !== null, 5000, 'the first standby');
      const first = backend.standbyPid;
      // The standby runs this one; the next is started while it runs, not once it has ended.
      const long = await backend.start({ ...spec, command: ['sleep', '1234311'] });
      long.stdout.resume();
      long.stderr?.resume();
      const commandLine = (pid: number) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
        } catch {
          return ''; // not there (yet)
        }
      };
      await waitUntil(() => commandLine(first!).includes('1234311'), 5000, 'the session running in the standby');
      await waitUntil(() => backend.standbyPid !== null, 5000, 'a standby while the long session runs');
      assert.notEqual(backend.standbyPid, first);
      long.kill();
      await long.exit;
    } finally {
      backend.close();
    }
  });
});

describe('nothing left behind', () => {
  test('a dropped client: the nsenter process tree is gone within 2 s (TTY and not)', async () => {
    for (const tty of [false, true]) {
      const marker = `sleep ${tty ? 1234201 : 1234202}`;
      const params: Record<string, string | string[] | boolean> = tty
        ? { command: ['sh', '-c', `${marker}; echo never`], container: 'app.nsenter', stdin: true, stdout: true, tty: true }
        : { command: ['sh', '-c', `${marker}; echo never`], container: 'app.nsenter', stdout: true };
      const ws = await openExec(agent, execPath('default', 'isolated', params));
      if (tty) sendResize(ws, 80, 24);
      await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
      const closed = once(ws, 'close');
      ws.terminate();
      await closed;
      await waitUntil(() => pidsWithCommandLine(marker).length === 0, GONE_WITHIN_MS, `${marker} to be gone`);
    }
  });

  test('a dropped client: the command gets SIGHUP and the grace period to clean up (PID namespace, helper waiting)', async () => {
    const marker = 'sleep 1234211';
    const file = `/tmp/cleaned-${process.pid}`;
    // The trap takes 0.2 s, within the agent's 1 s between SIGHUP and SIGKILL.
    const script = `trap "sleep 0.2; echo cleaned > ${file}; exit 0" HUP; ${marker} & wait; while :; do sleep 1; done`;
    const ws = await openExec(agent, execPath('default', 'isolated', { command: ['sh', '-c', script], container: 'app.nsenter', stdout: true }));
    await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
    const closed = once(ws, 'close');
    ws.terminate();
    await closed;
    const inContainer = `/proc/${isolated.hostPid}/root${file}`;
    await waitUntil(() => existsSync(inContainer), 3000, 'the trap to write its file in the container');
    assert.equal(readFileSync(inContainer, 'utf8'), 'cleaned\n');
  });

  test('SIGKILL of the agent: the nsenter processes die with it within 2 s', async () => {
    const doomed = await startAgent(docker, { nodeName: 'doomed-node' });
    try {
      const direct = 'sleep 1234301';
      const interactive = 'sleep 1234302';
      await openExec(doomed, execPath('default', 'isolated', { command: direct.split(' '), container: 'app.nsenter', stdout: true }));
      const tty = await openExec(doomed, execPath('default', 'isolated', { command: 'sh', container: 'app.nsenter', stdin: true, stdout: true, tty: true }));
      sendResize(tty, 80, 24);
      sendStdin(tty, `${interactive}\n`);
      await waitUntil(() => pidsWithCommandLine(direct).length === 1 && pidsWithCommandLine(interactive).length === 1, 5000, 'both sessions to run');
      const exited = once(doomed.process, 'exit');
      doomed.process.kill('SIGKILL');
      await exited;
      await waitUntil(() => pidsWithCommandLine(direct).length === 0 && pidsWithCommandLine(interactive).length === 0, GONE_WITHIN_MS, 'the nsenter processes to die');
    } finally {
      await doomed.stop();
    }
  });
});

describe('refusals', () => {
  test('a container that is not running, and an unknown container, with .nsenter', async () => {
    const stopped = await startContainer(docker, { labels: podLabels('default', 'gone', 'app') });
    containers.push(stopped);
    await dockerClient(docker).getContainer(stopped.id).kill();
    await assert.rejects(openExec(agent, execPath('default', 'gone', { command: 'true', container: 'app.nsenter', stdout: true })), (err: { statusCode?: number; body?: string }) => {
      assert.equal(err.statusCode, 409);
      assert.match(err.body ?? '', /not running/);
      return true;
    });
    await assert.rejects(openExec(agent, execPath('default', 'isolated', { command: 'true', container: 'nosuch.nsenter', stdout: true })), (err: { statusCode?: number; body?: string }) => {
      assert.equal(err.statusCode, 400);
      assert.match(err.body ?? '', /container nosuch is not valid/);
      return true;
    });
  });

  test('a PID that has exited is a NotFound from the backend', async () => {
    const child = spawn('true');
    await once(child, 'exit');
    const backend = new NsenterBackend({ killGraceMs: 100 });
    await assert.rejects(
      backend.start({ place: { kind: 'namespaces', pid: child.pid!, namespaces: ['net'], toolbox: false }, command: ['true'], tty: false, stdin: false, stdout: true, stderr: true }),
      (err: unknown) => err instanceof BackendError && err.kind === 'NotFound' && /process \d+ does not exist/.test(err.message),
    );
  });

  test('with --nsenter disabled, the modes are refused with 403 and the node pod is not listed', async () => {
    const locked = await startAgent(docker, { args: ['--nsenter', 'disabled'] });
    try {
      for (const path of [
        execPath('default', 'isolated', { command: 'true', container: 'app.nsenter', stdout: true }),
        execPath('default', 'isolated', { command: 'true', container: 'app.toolbox', stdout: true }),
        execPath('execlet-node', 'test-node', { command: 'true', stdout: true }),
      ]) {
        await assert.rejects(openExec(locked, path), (err: { statusCode?: number; body?: string }) => {
          assert.equal(err.statusCode, 403, path);
          assert.match(err.body ?? '', /mode is disabled on this agent/);
          return true;
        });
      }
      const r = await runCommand(KUBECTL, ['get', 'pods', '-A', '-o', 'jsonpath={.items[*].metadata.namespace}'], { env: { KUBECONFIG: locked.kubeconfig, HOME: locked.stateDir } });
      assert.ok(!text(r.stdout).includes('execlet-node'));
    } finally {
      await locked.stop();
    }
  });
});
