// A client machine that can vanish: a network namespace joined to this one by a veth pair, in which
// a test runs a WebSocket client of its own (test/fixtures/ws-peer.ts). vanish() takes the
// namespace's link down: from then on nothing the client sends arrives and nothing reaches it — no
// FIN, no reset, as when a laptop's lid closes or a cable is pulled. Needs root and iproute2.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runCommand } from './run-command.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
let created = 0;

async function ip(...args: string[]): Promise<void> {
  const result = await runCommand('ip', args);
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${result.code}): ${result.stderr.toString().trim()}`);
}

export interface PeerClient {
  pid: number;
  /** Sends a command (`pause`, `resume`) and waits until the client has carried it out. */
  command(line: 'pause' | 'resume'): Promise<void>;
  /** The client's `closed CODE STDOUT_BYTES STATUS` line, once its connection has closed. */
  closed: Promise<string>;
}

export interface NetnsPeer {
  /** This namespace's address on the link: where a server listens for the client. */
  hostAddress: string;
  /** Starts the client in the namespace, connected to `url` (with a bearer token, if given); resolves once it is open. */
  startClient(url: string, caFile?: string, token?: string): Promise<PeerClient>;
  /** Takes the namespace's end of the link down. */
  vanish(): Promise<void>;
  /** Stops the client (by PID), deletes the link and the namespace. */
  stop(): Promise<void>;
}

export async function startNetnsPeer(): Promise<NetnsPeer> {
  const n = ++created;
  // Unique to this run (a namespace left by a crashed one keeps its name), short enough for a link
  // name (15 characters at most).
  const tag = `${process.pid % 100_000}n${n}${randomBytes(1).toString('hex')}`;
  const namespace = `execlet-test-${tag}`;
  const hostLink = `exh${tag}`;
  const peerLink = `exp${tag}`;
  // A /30 of 198.18.0.0/15, the range set aside for benchmarking (RFC 2544): never a real network's
  // or a cluster's pods'.
  const base = (n % 64) * 4;
  const subnet = `198.18.${process.pid % 256}`;
  const hostAddress = `${subnet}.${base + 1}`;
  const children: ChildProcessWithoutNullStreams[] = [];
  await ip('netns', 'add', namespace);
  try {
    await ip('link', 'add', hostLink, 'type', 'veth', 'peer', 'name', peerLink, 'netns', namespace);
    await ip('address', 'add', `${hostAddress}/30`, 'dev', hostLink);
    await ip('link', 'set', hostLink, 'up');
    await ip('-n', namespace, 'address', 'add', `${subnet}.${base + 2}/30`, 'dev', peerLink);
    await ip('-n', namespace, 'link', 'set', peerLink, 'up');
    await ip('-n', namespace, 'link', 'set', 'lo', 'up');
  } catch (err) {
    await ip('link', 'delete', hostLink).catch(() => undefined);
    await ip('netns', 'delete', namespace).catch(() => undefined);
    throw err;
  }
  return {
    hostAddress,
    async startClient(url, caFile, token) {
      const args = ['netns', 'exec', namespace, process.execPath, '--import', 'tsx', resolve(repoRoot, 'test/fixtures/ws-peer.ts'), url, ...(caFile ? [caFile] : [])];
      const child = spawn('ip', args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(token ? { EXECLET_TEST_TOKEN: token } : {}) } });
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const waiting = new Map<string, () => void>();
      let closedLine: (line: string) => void = () => undefined;
      const closed = new Promise<string>((resolveClosed) => (closedLine = resolveClosed));
      const said: string[] = [];
      createInterface({ input: child.stdout }).on('line', (line) => {
        said.push(line);
        if (line.startsWith('closed ')) closedLine(line);
        waiting.get(line)?.();
        waiting.delete(line);
      });
      const lineSeen = (line: string) => new Promise<void>((resolveLine) => waiting.set(line, resolveLine));
      const opened = lineSeen('open').then(() => 'open' as const);
      const exited = once(child, 'exit').then(() => 'exited' as const);
      if ((await Promise.race([opened, exited])) === 'exited') throw new Error(`the client in ${namespace} exited before its connection opened: ${[...said, stderr.trim()].join('; ')}`);
      return {
        pid: child.pid!,
        async command(line) {
          const done = lineSeen(line);
          child.stdin.write(`${line}\n`);
          await done;
        },
        closed,
      };
    },
    async vanish() {
      await ip('-n', namespace, 'link', 'set', peerLink, 'down');
    },
    async stop() {
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          process.kill(child.pid!, 'SIGKILL');
          await exited;
        }
      }
      // The client's socket can outlive it in the kernel (retransmitting to a vanished peer) and
      // keep the namespace, its end of the link with it, for minutes: the link is deleted first.
      let linkError: unknown = null;
      try {
        await ip('link', 'delete', hostLink);
      } catch (err) {
        linkError = err; // the namespace is deleted all the same
      }
      await ip('netns', 'delete', namespace);
      if (linkError) throw linkError;
    },
  };
}
