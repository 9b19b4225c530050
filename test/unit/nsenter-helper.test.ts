// The execlet-nsenter helper itself (native/execlet-nsenter.c, built into dist/native/ by
// `npm run build`), run directly: its argument errors (125, naming the problem), a command that
// cannot run (127 not found, 126 not executable), exit codes and signals passed through with and
// without the PID-namespace fork, no namespace fd leaked into the command, the death signal when its
// parent is SIGKILLed, the toolbox's fresh /proc, and --standby (its request on stdin, what it
// shows in ps, its refusals of a broken request). Entering namespaces needs root (CAP_SYS_ADMIN);
// those tests skip without it. The end-to-end behaviour through the agent is in
// test/integration/nsenter.test.ts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_HELPER_PATH } from '../../src/backend/nsenter.js';
import { standbyRequest } from '../../src/backend/standby-helper.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';
import { runCommand, type CommandResult } from '../helpers/run-command.js';

const HELPER = DEFAULT_HELPER_PATH;
const built = existsSync(HELPER);
const asRoot = process.getuid?.() === 0;
const needsHelper = built ? false : `${HELPER} is not built (npm run build)`;
const needsRoot = needsHelper || (asRoot ? false : 'entering namespaces needs root');
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

const scratch = mkdtempSync(join(tmpdir(), 'execlet-nsenter-helper-'));
const children: ChildProcess[] = [];
const pids: number[] = [];
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

const run = (args: string[]): Promise<CommandResult> => runCommand(HELPER, args, { env: ENV, timeoutMs: 10_000 });
const text = (b: Buffer) => b.toString('utf8');

describe('argument errors: exit 125 and a message naming the problem', { skip: needsHelper }, () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /missing '--' before the command/],
    [['--target', '1', '--ns', 'net'], /missing '--' before the command/],
    [['--ns', 'net', '--', 'true'], /missing --target PID/],
    [['--target', '1', '--', 'true'], /missing --ns/],
    [['--target', '1', '--ns', 'net', '--'], /missing the command after '--'/],
    [['--target'], /--target needs a PID/],
    [['--target', 'abc', '--ns', 'net', '--', 'true'], /--target needs a PID, not 'abc'/],
    [['--target', '0', '--ns', 'net', '--', 'true'], /--target needs a PID, not '0'/],
    [['--target', '-5', '--ns', 'net', '--', 'true'], /--target needs a PID, not '-5'/],
    [['--target', '1', '--target', '2', '--ns', 'net', '--', 'true'], /--target given twice/],
    [['--target', '1', '--ns', '', '--', 'true'], /empty namespace name in --ns ''/],
    [['--target', '1', '--ns', 'net,,pid', '--', 'true'], /empty namespace name in --ns 'net,,pid'/],
    [['--target', '1', '--ns', 'net,mount', '--', 'true'], /unknown namespace 'mount' in --ns \(choose from user, cgroup, ipc, uts, net, pid, mnt\)/],
    [['--target', '1', '--ns', 'net,pid,net', '--', 'true'], /namespace 'net' given twice in --ns/],
    [['--target', '1', '--ns', 'net', '--ns', 'pid', '--', 'true'], /--ns given twice/],
    [['--target', '1', '--ns', 'net', '--toolbox', '--toolbox', '--', 'true'], /--toolbox given twice/],
    [['--target', '1', '--ns', 'net', '--fork', '--', 'true'], /unknown option '--fork'/],
    [['--target', '1', '--ns', 'net', 'true'], /unexpected argument 'true' before '--'/],
  ];
  for (const [args, message] of cases) {
    test(`${JSON.stringify(args)}`, async () => {
      const r = await run(args);
      assert.equal(r.code, 125, text(r.stderr));
      assert.match(text(r.stderr), /^execlet-nsenter: /);
      assert.match(text(r.stderr), message);
      assert.match(text(r.stderr), /usage: execlet-nsenter --target PID --ns NAME\[,NAME\.\.\.\] \[--toolbox\] -- COMMAND \[ARG\.\.\.\]/);
      assert.equal(r.stdout.length, 0);
    });
  }

  test('a process that does not exist: 125, naming the namespace file', async () => {
    const gone = spawn('true');
    await once(gone, 'exit');
    const r = await run(['--target', String(gone.pid), '--ns', 'net', '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(text(r.stderr), new RegExp(`cannot open /proc/${gone.pid}/ns/net: No such file or directory`));
  });
});

describe('a command that cannot run', { skip: needsHelper }, () => {
  // Its own user namespace is skipped (nothing to enter), so this needs no privileges.
  const self = ['--target', String(process.pid), '--ns', 'user', '--'];

  test('not found: 127', async () => {
    const r = await run([...self, 'execlet-no-such-command']);
    assert.equal(r.code, 127);
    assert.equal(text(r.stderr), 'execlet-nsenter: cannot run execlet-no-such-command: No such file or directory\n');
  });

  test('found but not executable: 126', async () => {
    const file = join(scratch, 'not-executable');
    writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
    const r = await run([...self, file]);
    assert.equal(r.code, 126);
    assert.match(text(r.stderr), /cannot run .*not-executable: Permission denied/);
  });

  test('the command is found on the PATH given, with its arguments untouched', async () => {
    const r = await run([...self, 'printf', '%s|', '--target', '$(x)', '']);
    assert.equal(r.code, 0);
    assert.equal(text(r.stdout), '--target|$(x)||');
  });
});

describe('running in namespaces', { skip: needsRoot }, () => {
  let isolated: ChildProcess;
  let isolatedPid: number;

  before(async () => {
    // A fresh PID namespace with its own /proc, its PID 1 `sleep 1234401`.
    isolated = spawn('unshare', ['--fork', '--kill-child', '--pid', '--mount-proc', 'sleep', '1234401'], { stdio: 'ignore' });
    children.push(isolated);
    await waitUntil(() => pidsWithCommandLine('sleep 1234401').length === 1, 5000, 'the target to start');
    isolatedPid = pidsWithCommandLine('sleep 1234401')[0]!;
    pids.push(isolatedPid);
  });

  for (const ns of ['net', 'net,pid']) {
    test(`exit codes and signals pass through (--ns ${ns})`, async () => {
      const self = ['--target', String(process.pid), '--ns', ns, '--'];
      assert.equal((await run([...self, 'sh', '-c', 'exit 3'])).code, 3);
      assert.equal((await run([...self, 'true'])).code, 0);
      const killed = await run([...self, 'sh', '-c', 'kill -TERM $$']);
      assert.deepEqual([killed.code, killed.signal], [null, 'SIGTERM']);
      const other = await run([...self, 'sh', '-c', 'kill -USR1 $$']);
      assert.deepEqual([other.code, other.signal], [null, 'SIGUSR1']);
    });

    test(`no namespace or pipe fd of its own reaches the command (--ns ${ns})`, async () => {
      // The fds beyond stdio that `ls` sees, but its own directory fd: only those this test inherited.
      const extraFds = (r: CommandResult) => {
        assert.equal(r.code, 0, text(r.stderr));
        const links = text(r.stdout).split('\n').map((line) => /(\d+) -> (.*)$/.exec(line)).filter((m) => m !== null);
        return links.map((m) => `${m[1]} -> ${m[2]}`).filter((link) => Number(link.split(' ')[0]) > 2 && !link.includes('-> /proc/'));
      };
      const direct = extraFds(await runCommand('ls', ['-l', '/proc/self/fd/'], { env: ENV }));
      const entered = extraFds(await run(['--target', String(process.pid), '--ns', ns, '--', 'ls', '-l', '/proc/self/fd/']));
      assert.deepEqual(entered, direct);
      assert.ok(!entered.some((link) => /-> (user|cgroup|ipc|uts|net|pid|mnt):\[/.test(link)), entered.join('\n'));
    });

    test(`SIGKILL of its parent kills the command (--ns ${ns})`, async () => {
      const marker = `sleep ${ns === 'net' ? 1234411 : 1234412}`;
      const parent = spawn('sh', ['-c', `"$0" --target ${process.pid} --ns ${ns} -- ${marker} & wait`, HELPER], { stdio: 'ignore', env: ENV });
      children.push(parent);
      await waitUntil(() => pidsWithCommandLine(marker).length === 1, 5000, `${marker} to start`);
      parent.kill('SIGKILL');
      await waitUntil(() => pidsWithCommandLine(marker).length === 0, 2000, `${marker} to die with the helper's parent`);
    });
  }

  test('the pid namespace: SIGHUP, SIGINT or SIGTERM to the whole tree reach the command, whose handling is not cut short', async () => {
    for (const signal of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) {
      // A command that cleans up on the signal; its `sleep` is why the shell runs the trap only after
      // up to 50 ms, by which time a helper that died of the signal would have had it SIGKILLed.
      const helper = spawn(HELPER, ['--target', String(process.pid), '--ns', 'pid', '--', 'sh', '-c', `trap "echo cleaned up; exit 3" ${signal.slice(3)}; echo ready; while :; do sleep 0.05; done`], {
        env: ENV,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(helper);
      let output = '';
      helper.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await waitUntil(() => output.includes('ready'), 5000, 'the command to start');
      // As the agent's process-tree kill does: the helper and everything under it.
      const tree = [helper.pid!, ...readFileSync(`/proc/${helper.pid}/task/${helper.pid}/children`, 'utf8').trim().split(' ').map(Number)];
      for (const pid of tree) process.kill(pid, signal);
      const [code, killedBy] = (await once(helper, 'exit')) as [number | null, NodeJS.Signals | null];
      assert.deepEqual({ code, killedBy, output }, { code: 3, killedBy: null, output: 'ready\ncleaned up\n' }, signal);
    }
  });

  test('the pid namespace: a command stopped and continued by someone else runs on to its end, the helper with it', async () => {
    const helper = spawn(HELPER, ['--target', String(process.pid), '--ns', 'pid', '--', 'sh', '-c', 'kill -STOP $$; echo resumed'], { env: ENV, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(helper);
    let output = '';
    helper.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = once(helper, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const stateOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]![0];
    let command = 0;
    await waitUntil(
      () => {
        command = Number(readFileSync(`/proc/${helper.pid}/task/${helper.pid}/children`, 'utf8').trim().split(' ')[0]);
        return command > 0 && stateOf(command) === 'T';
      },
      5000,
      'the command to stop itself',
    );
    // Continued on its own, as `kill -CONT` from another shell does: the helper is not signalled.
    process.kill(command, 'SIGCONT');
    const timeout = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 5000).unref());
    const ended = await Promise.race([exited, timeout]);
    assert.deepEqual(ended, [0, null], `the helper is ${ended === 'still running' ? `still there (state ${stateOf(helper.pid!)})` : 'done'}`);
    assert.equal(output, 'resumed\n');
  });

  test('the pid namespace: the command is forked into it, its parent (the helper) stays outside', async () => {
    const r = await run(['--target', String(isolatedPid), '--ns', 'pid', '--', 'sh', '-c', 'echo $$ $PPID']);
    assert.equal(r.code, 0, text(r.stderr));
    const [pid, parent] = text(r.stdout).trim().split(' ');
    assert.ok(Number(pid) > 1 && Number(pid) < 100, `a low PID in the new namespace: ${pid}`);
    assert.equal(parent, '0', 'the parent is not in the namespace');
  });

  test('--toolbox: a fresh /proc for the target PID namespace, the node\'s mounts untouched', async () => {
    const mountsBefore = readFileSync('/proc/self/mountinfo', 'utf8');
    const r = await run(['--target', String(isolatedPid), '--ns', 'pid', '--toolbox', '--', 'sh', '-c', 'tr "\\0" " " < /proc/1/cmdline; echo; ls /proc | grep -c "^[0-9]"']);
    assert.equal(r.code, 0, text(r.stderr));
    const [pid1, count] = text(r.stdout).split('\n');
    assert.equal(pid1!.trim(), 'sleep 1234401');
    assert.ok(Number(count) <= 4, `only the namespace's processes: ${count}`);
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8'), mountsBefore);
  });

  test('the mount namespace: root and working directory at its root', async () => {
    const r = await run(['--target', String(isolatedPid), '--ns', 'mnt', '--', 'sh', '-c', 'pwd; ls /proc | grep -c "^[0-9]"']);
    assert.equal(r.code, 0, text(r.stderr));
    const [cwd, count] = text(r.stdout).split('\n');
    assert.equal(cwd, '/');
    assert.ok(Number(count) <= 4, `the target's /proc: ${count} processes`);
  });
});

describe('--standby: the arguments, environment and unwanted streams come on stdin', { skip: needsRoot }, () => {
  const runStandby = (input: Buffer, room = ' '.repeat(64)): Promise<CommandResult> => runCommand(HELPER, ['--standby', room], { env: ENV, input, timeoutMs: 10_000 });
  const request = (argv: string[], env: Record<string, string>, streams = { stdin: true, stdout: true, stderr: true }) => standbyRequest(argv, env, streams);
  const inOwnUts = (command: string[], namespaces = 'uts') => [HELPER, '--target', String(process.pid), '--ns', namespaces, '--', ...command];
  const framed = (payload: Buffer) => Buffer.concat([Buffer.from([payload.length >>> 24, (payload.length >>> 16) & 255, (payload.length >>> 8) & 255, payload.length & 255]), payload]);

  test('the end of stdin before any request: exit 0 without a word (the agent let the standby go)', async () => {
    const r = await runStandby(Buffer.alloc(0));
    assert.deepEqual([r.code, text(r.stdout), text(r.stderr)], [0, '', '']);
  });

  test('the command runs with the environment sent, not the standby\'s, and reads what follows the request', async () => {
    const r = await runStandby(Buffer.concat([request(inOwnUts(['sh', '-c', 'echo "$GREETING $PATH"; cat']), { GREETING: 'hello', PATH: '/usr/bin:/bin' }), Buffer.from('the rest of stdin\n')]));
    assert.deepEqual([r.code, text(r.stdout), text(r.stderr)], [0, 'hello /usr/bin:/bin\nthe rest of stdin\n', '']);
  });

  test('streams not asked for are /dev/null: input ends at once, output goes nowhere without SIGPIPE', async () => {
    // The input after the request would be read by cat if stdin were not /dev/null.
    const script = 'cat; i=0; while [ $i -lt 3000 ]; do echo filler filler filler; i=$((i+1)); done; echo done >&2';
    const r = await runStandby(Buffer.concat([request(inOwnUts(['sh', '-c', script]), ENV, { stdin: false, stdout: false, stderr: true }), Buffer.from('not for cat\n')]));
    assert.deepEqual([r.code, text(r.stdout), text(r.stderr)], [0, '', 'done\n']);
  });

  test('ps shows the arguments sent over the room it was given, cut short where they do not fit (the helper waiting in the PID namespace\'s parent)', async () => {
    const sent = ['--target', String(process.pid), '--ns', 'uts,pid', '--', 'sleep', '30'];
    // The room is "--standby", the spaces, and their NULs; its last byte stays a NUL.
    const cut = (spaces: number) => sent.join('\0').slice(0, '--standby'.length + spaces + 1).split('\0').filter(Boolean);
    for (const [room, expected] of [
      [' '.repeat(200), sent],
      [' '.repeat(14), cut(14)],
    ] as const) {
      const child = spawn(HELPER, ['--standby', room], { env: ENV, stdio: ['pipe', 'ignore', 'ignore'] });
      children.push(child);
      child.stdin.write(request(inOwnUts(['sleep', '30'], 'uts,pid'), ENV));
      await waitUntil(() => readFileSync(`/proc/${child.pid}/cmdline`, 'latin1').includes('--target'), 5000, 'the arguments to be shown');
      const shown = readFileSync(`/proc/${child.pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
      assert.deepEqual(shown, [HELPER, ...expected]);
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });

  test('a broken request: exit 125 and a message naming the problem', async () => {
    const strings = (...parts: string[]) => Buffer.from(`${parts.join('\0')}\0`);
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from([0, 0]), /the standby request ended after 2 of 4 bytes/],
      [framed(Buffer.alloc(0)), /a standby request of 0 bytes/],
      [Buffer.from([0x10, 0, 0, 0]), /a standby request of 268435456 bytes/],
      [Buffer.concat([Buffer.from([0, 0, 0, 20]), Buffer.from('12\0')]), /the standby request ended after 3 of 20 bytes/],
      [framed(Buffer.from('\x002\0a\0b')), /does not end with a NUL/],
      [framed(strings('')), /has 1 strings, not the streams and the argument count/],
      [framed(strings('', 'x', 'true')), /argument count 'x' is not 1 to 1/],
      [framed(strings('', '3', 'a', 'b')), /argument count '3' is not 1 to 2/],
      [framed(strings('', '0', 'a')), /argument count '0' is not 1 to 1/],
      [framed(strings('3', '1', 'true')), /names stream '3', not 0, 1 or 2/],
      [framed(strings('', '1', HELPER)), /missing '--' before the command/],
    ];
    for (const [input, message] of cases) {
      const r = await runStandby(input);
      assert.equal(r.code, 125, `${JSON.stringify(input.toString('latin1'))}: ${text(r.stderr)}`);
      assert.match(text(r.stderr), message);
    }
  });

  test('--standby takes nothing else but its room of spaces', async () => {
    for (const args of [['--standby', 'x'], ['--standby', ' ', ' ']]) {
      const r = await runCommand(HELPER, args, { env: ENV, timeoutMs: 10_000 });
      assert.equal(r.code, 125);
      assert.match(text(r.stderr), /--standby takes nothing but an argument of spaces/);
    }
  });
});
