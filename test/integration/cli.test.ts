// The built `execlet exec` and `execlet targets` against a real agent and engine: an interactive
// shell in a real pseudo-terminal (size, resize, typing, exit code, the local terminal restored on
// exit and on signals), byte-exact stdin/stdout, both streams and exit codes without a TTY,
// refusals (exit 255 with the agent's message), the targets listing, and the nsenter, toolbox and
// node modes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as pty from 'node-pty';
import { AGENT_MAIN, startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { waitUntil } from '../helpers/proc-scan.js';
import { runCommand, type CommandResult } from '../helpers/run-command.js';

const NODE_NAME = 'test-node';

let docker: TestDocker;
let agent: TestAgent;
let side: TestContainer;
let solo: TestContainer;
let plainContainer: TestContainer;
const containers: TestContainer[] = [];
/** PIDs of every child a test started, killed in after() if still alive. */
const children = new Set<number>();
/** Where the wrapper shells around the CLI write their reports (wrapperAround). */
const reportDir = mkdtempSync(join(tmpdir(), 'execlet-cli-report-'));

before(async () => {
  docker = await useTestDocker();
  agent = await startAgent(docker, { nodeName: NODE_NAME });
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'app') }));
  side = await startContainer(docker, { labels: podLabels('default', 'web', 'side') });
  containers.push(side);
  solo = await startContainer(docker, { labels: podLabels('default', 'solo', 'main') });
  containers.push(solo);
  plainContainer = await startContainer(docker);
  containers.push(plainContainer);
});

after(async () => {
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(reportDir, { recursive: true, force: true });
  for (const c of containers) await c.remove();
  await agent?.stop();
  await docker?.stop();
});

/** No kubeconfig unless a test names one: the state dir's of a real agent on this machine must not leak in. */
const CLIENT_ENV = { KUBECONFIG: '/nonexistent/execlet-cli-test/kubeconfig' };

/** Runs `execlet ARGS…` (the built CLI) to completion. */
function execlet(args: string[], input?: Buffer | string, timeoutMs = 30_000): Promise<CommandResult> {
  return runCommand(process.execPath, [AGENT_MAIN, ...args], { env: CLIENT_ENV, timeoutMs, ...(input !== undefined ? { input } : {}) });
}

const kube = () => ['--kubeconfig', agent.kubeconfig];
const text = (b: Buffer) => b.toString('utf8');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Terminal output without escape sequences (busybox asks for the cursor position, clears lines…). */
const plain = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

// ---------------------------------------------------------------------------------------------
// A pseudo-terminal session

class PtySession {
  output = '';
  readonly process: pty.IPty;
  readonly exited: Promise<{ exitCode: number; signal?: number }>;

  constructor(file: string, args: string[], size: { cols: number; rows: number }) {
    this.process = pty.spawn(file, args, { name: 'xterm', cols: size.cols, rows: size.rows, cwd: process.cwd(), env: { ...process.env, ...CLIENT_ENV } as Record<string, string> });
    children.add(this.process.pid);
    this.process.onData((data) => (this.output += data));
    this.exited = new Promise((resolve) =>
      this.process.onExit((e) => {
        children.delete(this.process.pid);
        resolve(e);
      }),
    );
  }

  type(keys: string): void {
    this.process.write(keys);
  }

  /** Waits until the output after `from` (escape sequences removed) matches. */
  async waitFor(pattern: RegExp, from: number, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
    let match: RegExpMatchArray | null = null;
    await waitUntil(() => (match = plain(this.output.slice(from)).match(pattern)) !== null, timeoutMs, `${what}; terminal output so far:\n${plain(this.output)}`);
    return match!;
  }

  /** Waits for the shell prompt (`/ # `) after `from`. */
  waitForPrompt(from: number): Promise<RegExpMatchArray> {
    return this.waitFor(/# $/, from, 20_000, 'the remote shell prompt');
  }

  async waitForExit(timeoutMs: number): Promise<{ exitCode: number; signal?: number }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the pty process did not exit within ${timeoutMs} ms; output:\n${plain(this.output)}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    try {
      process.kill(this.process.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

const shellQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/**
 * The wrapper shell around the CLI: once the CLI exits, its exit code and the terminal's settings
 * (`stty -a` on the pty) go to `report`, a file. Not to the pty: node-pty may report the wrapper's
 * exit before it delivers its last output, and on a busy machine drop that output altogether.
 */
function wrapperAround(cli: string, report: string): string {
  return `${cli}; { echo "EXIT=$?"; stty -a; } > ${shellQuote(report)} 2>&1`;
}

/** What the wrapper reported after the CLI's exit code `code`, or '' if it exited otherwise. */
function reportAfterExit(report: string, code: number): string {
  return readFileSync(report, 'utf8').split(`EXIT=${code}\n`)[1] ?? '';
}

/** `stty -a` flags (`icanon`, `-echo`, …) as a set. */
function sttyFlags(output: string): Set<string> {
  return new Set(output.split(/[\s;]+/).filter((w) => /^-?[a-z0-9]+$/.test(w)));
}

/** The direct children of `pid`. */
function childPids(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

/** The settings of the terminal `pid` has on stdin, read from outside (`stty -a -F /dev/pts/N`). */
async function terminalFlagsOf(pid: number): Promise<Set<string>> {
  const device = readlinkSync(`/proc/${pid}/fd/0`);
  assert.match(device, /^\/dev\/pts\/\d+$/);
  const r = await runCommand('stty', ['-a', '-F', device]);
  assert.equal(r.code, 0, text(r.stderr));
  return sttyFlags(text(r.stdout));
}

describe('execlet exec -it in a pseudo-terminal', () => {
  test('size, resize, typing and the exit code', { timeout: 90_000 }, async () => {
    const session = new PtySession(process.execPath, [AGENT_MAIN, 'exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '-it', '--', 'sh'], { cols: 97, rows: 31 });
    try {
      await session.waitForPrompt(0);

      let mark = session.output.length;
      session.type('stty size\r');
      await session.waitFor(/^31 97$/m, mark, 10_000, 'the initial size 31 97');

      session.process.resize(120, 40);
      const deadline = Date.now() + 15_000;
      for (;;) {
        mark = session.output.length;
        session.type('stty size\r');
        const [, size] = await session.waitFor(/^(\d+ \d+)$/m, mark, 10_000, 'a stty size answer');
        if (size === '40 120') break;
        assert.ok(Date.now() < deadline, `the resize never reached the remote terminal (last size ${size})`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      mark = session.output.length;
      session.type('echo typed-$((6*7))\r');
      await session.waitFor(/^typed-42$/m, mark, 10_000, 'the typed command to run');

      session.type('exit 7\r');
      const { exitCode } = await session.waitForExit(15_000);
      assert.equal(exitCode, 7, plain(session.output));
    } finally {
      session.kill();
    }
  });

  test('the local terminal is raw during the session and restored after it', { timeout: 60_000 }, async () => {
    const cli = [process.execPath, AGENT_MAIN, 'exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '-it', '--', 'sh'].map(shellQuote).join(' ');
    const report = join(reportDir, 'exit-0.txt');
    const session = new PtySession('/bin/sh', ['-c', wrapperAround(cli, report)], { cols: 80, rows: 24 });
    try {
      await session.waitForPrompt(0);
      const [cliPid] = childPids(session.process.pid);
      assert.ok(cliPid, 'the CLI runs under the wrapper shell');
      const during = await terminalFlagsOf(cliPid);
      assert.ok(during.has('-icanon') && during.has('-echo'), `raw during the session: ${[...during].join(' ')}`);

      session.type('exit 0\r');
      const { exitCode } = await session.waitForExit(15_000);
      assert.equal(exitCode, 0);
      const afterExit = reportAfterExit(report, 0);
      assert.ok(afterExit, `the CLI exited 0: ${readFileSync(report, 'utf8')}`);
      const flags = sttyFlags(afterExit);
      assert.ok(flags.has('icanon') && !flags.has('-icanon'), `icanon restored: ${afterExit}`);
      assert.ok(flags.has('echo') && !flags.has('-echo'), `echo restored: ${afterExit}`);
    } finally {
      session.kill();
    }
  });

  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGHUP', 129],
    ['SIGINT', 130],
  ] as const) {
    test(`${signal} ends the session with ${code} and restores the terminal`, { timeout: 60_000 }, async () => {
      const cli = [process.execPath, AGENT_MAIN, 'exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '-it', '--', 'sh'].map(shellQuote).join(' ');
      const report = join(reportDir, `${signal}.txt`);
      const session = new PtySession('/bin/sh', ['-c', wrapperAround(cli, report)], { cols: 80, rows: 24 });
      try {
        await session.waitForPrompt(0);
        const [cliPid] = childPids(session.process.pid);
        assert.ok(cliPid);
        assert.ok((await terminalFlagsOf(cliPid)).has('-icanon'), 'raw before the signal');
        process.kill(cliPid, signal);
        const { exitCode } = await session.waitForExit(15_000);
        assert.equal(exitCode, 0, 'the wrapper shell ran to its end');
        const afterExit = reportAfterExit(report, code);
        assert.ok(afterExit, `the CLI exited ${code}: ${readFileSync(report, 'utf8')}`);
        const flags = sttyFlags(afterExit);
        assert.ok(flags.has('icanon') && flags.has('echo') && !flags.has('-icanon') && !flags.has('-echo'), `terminal restored: ${afterExit}`);
      } finally {
        session.kill();
      }
    });
  }
});

describe('execlet exec without a TTY', () => {
  test('stdin round-trips byte for byte (1 MB of random bytes) and its EOF ends cat', { timeout: 60_000 }, async () => {
    const data = randomBytes(1024 * 1024);
    const r = await execlet(['exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '-i', '--', 'cat'], data);
    assert.equal(text(r.stderr), '');
    assert.equal(r.stdout.length, data.length);
    assert.equal(sha256(r.stdout), sha256(data));
    assert.equal(r.code, 0);
  });

  test('stdout and stderr on their own fds, the remote exit code as ours', async () => {
    const r = await execlet(['exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(text(r.stdout), 'out\n');
    assert.equal(text(r.stderr), 'err\n');
    assert.equal(r.code, 3);
  });

  test('arguments arrive as given (spaces, quotes, +, %, non-ASCII), and a remote 255 stays 255 without an error line', async () => {
    const words = ['a b', '"q"', "it's", 'x+y', '100%', 'é✓', '--', '-n'];
    const r = await execlet(['exec', ...kube(), '-n', 'default', 'web', '-c', 'side', '--', 'sh', '-c', 'for w in "$@"; do echo "[$w]"; done; exit 255', 'sh', ...words]);
    assert.equal(text(r.stdout), words.map((w) => `[${w}]\n`).join(''));
    assert.equal(text(r.stderr), '');
    assert.equal(r.code, 255);
  });

  test('without -i stdin is not read: the remote command sees none, and an open stdin does not keep the CLI alive', { timeout: 30_000 }, async () => {
    const child: ChildProcess = spawn(process.execPath, [AGENT_MAIN, 'exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '--', 'sh', '-c', 'cat; echo done'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...CLIENT_ENV },
    });
    children.add(child.pid!);
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stdin!.write('not for the remote side\n'); // and never closed
    const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
    children.delete(child.pid!);
    child.stdin!.destroy();
    assert.equal(stdout, 'done\n');
    assert.equal(code, 0);
  });

  test('SIGTERM ends it with 143 even while nobody reads its stdout (a stalled reader)', { timeout: 30_000 }, async () => {
    const child: ChildProcess = spawn(process.execPath, [AGENT_MAIN, 'exec', ...kube(), '-n', 'default', 'web', '-c', 'app', '--', 'yes'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...CLIENT_ENV },
    });
    children.add(child.pid!);
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    // Output flows; then this side stops reading: its buffer fills, then the pipe, then the CLI's writes wait.
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    child.stdout!.pause();
    await waitUntil(() => child.stdout!.readableLength >= child.stdout!.readableHighWaterMark, 10_000, 'this side to stop reading');
    process.kill(child.pid!, 'SIGTERM');
    const timeout = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref());
    const ended = await Promise.race([exited, timeout]);
    children.delete(child.pid!);
    if (ended === 'still running') child.kill('SIGKILL');
    assert.deepEqual(ended, [143, null], 'the CLI exited 143 within 10 s');
    child.stdout!.destroy();
  });

  test('the context namespace and the only container are the defaults', async () => {
    // serve's kubeconfig names namespace "docker": a plain container is a pod there.
    const r = await execlet(['exec', ...kube(), plainContainer.name, '--', 'hostname']);
    assert.equal(r.code, 0, text(r.stderr));
    assert.equal(text(r.stdout).trim(), plainContainer.id.slice(0, 12));
  });
});

describe('refusals exit 255 with the agent\'s message', () => {
  test('an unknown pod', async () => {
    const r = await execlet(['exec', ...kube(), '-n', 'default', 'nosuch', '--', 'true']);
    assert.equal(r.code, 255);
    assert.equal(text(r.stderr), 'error: pods "nosuch" not found in namespace "default"\n');
    assert.equal(text(r.stdout), '');
  });

  test('a bad token given with --token', async () => {
    const r = await execlet(['exec', ...kube(), '--token', 'not-the-token', '-n', 'default', 'web', '-c', 'app', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(text(r.stderr), /^error: Unauthorized: a valid bearer token or client certificate is required\n$/);
  });

  test('no container named in a two-container pod; an unknown container', async () => {
    let r = await execlet(['exec', ...kube(), '-n', 'default', 'web', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(text(r.stderr), /^error: a container name must be specified for pod web, choose one of: \[app side\]\n$/);
    r = await execlet(['exec', ...kube(), '-n', 'default', 'web', '-c', 'nosuch', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(text(r.stderr), /^error: container nosuch is not valid for pod web in namespace default, choose one of: \[app side\]\n$/);
  });

  test('no agent listening, a missing kubeconfig', async () => {
    let r = await execlet(['exec', '--server', 'https://127.0.0.1:1', '--token', 't', 'web', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(text(r.stderr), /^error: cannot connect to 127\.0\.0\.1:1: .*ECONNREFUSED/);
    r = await execlet(['exec', '--kubeconfig', '/nonexistent/kubeconfig', 'web', '--', 'true']);
    assert.equal(r.code, 255);
    assert.equal(text(r.stderr), 'error: kubeconfig /nonexistent/kubeconfig not found\n');
  });

  test('the agent\'s certificate is checked: --server without the CA fails, with --certificate-authority it works', async () => {
    let r = await execlet(['exec', '--server', agent.url, '--token', agent.token, '-n', 'default', 'web', '-c', 'app', '--', 'true']);
    assert.equal(r.code, 255);
    assert.match(text(r.stderr), /^error: cannot connect to .*(self[- ]signed|unable to verify|issuer)/i);
    r = await execlet(['exec', '--server', agent.url, '--token', agent.token, '--certificate-authority', `${agent.stateDir}/pki/ca.crt`, '-n', 'default', 'web', '-c', 'app', '--', 'echo', 'ok']);
    assert.equal(text(r.stdout), 'ok\n', text(r.stderr));
    assert.equal(r.code, 0);
  });

  test('command-line mistakes exit 2 naming the flag', async () => {
    const r = await execlet(['exec', ...kube(), 'web', '--no-such-flag', '--', 'true']);
    assert.equal(r.code, 2);
    assert.match(text(r.stderr), /^error: unknown flag --no-such-flag for "execlet exec"\nSee 'execlet exec --help' for usage\.\n$/);
    const t = await execlet(['targets', '-x']);
    assert.equal(t.code, 2);
    assert.match(text(t.stderr), /unknown flag -x for "execlet targets"/);
  });
});

describe('execlet targets', () => {
  test('a table with the pods, containers, states and modes', async () => {
    const r = await execlet(['targets', ...kube()]);
    assert.equal(r.code, 0, text(r.stderr));
    const lines = text(r.stdout).trimEnd().split('\n');
    assert.match(lines[0]!, /^NAMESPACE\s+POD\s+CONTAINER\s+STATE\s+MODES$/);
    const rows = lines.slice(1).map((l) => l.split(/\s+/));
    assert.ok(rows.some((row) => row.join(' ') === 'default web app running exec,nsenter,toolbox'), text(r.stdout));
    assert.ok(rows.some((row) => row.join(' ') === 'default web side running exec,nsenter,toolbox'), text(r.stdout));
    assert.ok(rows.some((row) => row.join(' ') === `execlet-node ${NODE_NAME} host running node`), text(r.stdout));
  });

  test('-o json is the agent\'s JSON', async () => {
    const r = await execlet(['targets', ...kube(), '-o', 'json']);
    assert.equal(r.code, 0, text(r.stderr));
    const body = JSON.parse(text(r.stdout)) as { node: string; targets: Array<{ namespace: string; pod: string; container: string; modes: string[] }> };
    assert.equal(body.node, NODE_NAME);
    assert.ok(body.targets.some((t) => t.namespace === 'default' && t.pod === 'web' && t.container === 'app' && t.modes.includes('exec')));
  });

  test('a refused listing exits 1 with the agent\'s message', async () => {
    const r = await execlet(['targets', ...kube(), '--token', 'wrong']);
    assert.equal(r.code, 1);
    assert.match(text(r.stderr), /^error: Unauthorized: /);
  });
});

describe('modes', () => {
  test('--mode nsenter: the container\'s namespaces, its only container found by the CLI', async () => {
    const r = await execlet(['exec', ...kube(), '--mode', 'nsenter', '-n', 'default', 'solo', '--', 'hostname']);
    assert.equal(r.code, 0, text(r.stderr));
    assert.equal(text(r.stdout).trim(), solo.id.slice(0, 12));
  });

  test('--mode nsenter without -c in a two-container pod lists the containers', async () => {
    const r = await execlet(['exec', ...kube(), '--mode', 'nsenter', '-n', 'default', 'web', '--', 'hostname']);
    assert.equal(r.code, 255);
    assert.equal(text(r.stderr), 'error: a container name must be specified for pod web, choose one of: [app side]\n');
  });

  test('--mode nsenter --namespaces net keeps the node\'s hostname; --mode toolbox has the container\'s', async () => {
    let r = await execlet(['exec', ...kube(), '--mode', 'nsenter', '--namespaces', 'net', '-n', 'default', 'web', '-c', 'side', '--', 'hostname']);
    assert.equal(r.code, 0, text(r.stderr));
    assert.equal(text(r.stdout).trim(), hostname());
    r = await execlet(['exec', ...kube(), '--mode', 'toolbox', '-n', 'default', 'web', '-c', 'side', '--', 'hostname']);
    assert.equal(r.code, 0, text(r.stderr));
    assert.equal(text(r.stdout).trim(), side.id.slice(0, 12));
  });

  test('--mode node NODE: a node shell', async () => {
    const r = await execlet(['exec', ...kube(), '--mode', 'node', NODE_NAME, '--', 'hostname']);
    assert.equal(r.code, 0, text(r.stderr));
    assert.equal(text(r.stdout).trim(), hostname());
  });

  test('--mode nsenter -c app: exit codes pass through', async () => {
    const r = await execlet(['exec', ...kube(), '--mode', 'nsenter', '-n', 'default', 'web', '-c', 'app', '--', 'sh', '-c', 'exit 42']);
    assert.equal(r.code, 42, text(r.stderr));
  });
});

describe('help', () => {
  test('execlet exec --help, execlet help exec, execlet targets --help, execlet help targets', async () => {
    for (const args of [['exec', '--help'], ['help', 'exec'], ['exec', 'web', '-h', '--', 'x']]) {
      const r = await execlet(args);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(text(r.stdout), /^Usage: execlet exec /);
      assert.match(text(r.stdout), /255 when execlet could not run it/);
      assert.match(text(r.stdout), /Examples:/);
    }
    for (const args of [['targets', '--help'], ['help', 'targets']]) {
      const r = await execlet(args);
      assert.equal(r.code, 0);
      assert.match(text(r.stdout), /^Usage: execlet targets /);
      assert.match(text(r.stdout), /Examples:/);
    }
    const main = await execlet(['--help']);
    assert.match(text(main.stdout), /execlet exec \[flags\] POD -- COMMAND/);
    assert.match(text(main.stdout), /execlet targets \[flags\]/);
  });
});
