// Runs the built agent (dist/) as a child process against a test engine, on a kernel-chosen port,
// with its own state dir; stop() ends it by PID and removes the dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestDocker } from './docker-daemon.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');

export interface TestAgent {
  /** https://127.0.0.1:PORT */
  url: string;
  port: number;
  stateDir: string;
  kubeconfig: string;
  token: string;
  caPem: string;
  process: ChildProcess;
  /** Everything the agent printed so far (stdout and stderr). */
  output(): string;
  stop(): Promise<void>;
}

export interface StartAgentOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  nodeName?: string;
  /** Reuse a state dir (an agent restarted after a crash); it is then left in place by stop(). */
  stateDir?: string;
}

const START_TIMEOUT_MS = 20_000;

export async function startAgent(docker: TestDocker, options: StartAgentOptions = {}): Promise<TestAgent> {
  if (!existsSync(AGENT_MAIN)) throw new Error(`${AGENT_MAIN} is missing: run "npm run build" first (npm test does)`);
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'execlet-agent-'));
  const child = spawn(
    process.execPath,
    [
      AGENT_MAIN,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--docker-host',
      docker.host,
      '--state-dir',
      stateDir,
      '--node-name',
      options.nodeName ?? 'test-node',
      '--log-level',
      'info',
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => (output += text));
  child.stderr!.on('data', (text: string) => (output += text));

  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const onData = () => {
      const match = /execlet: serving (https:\/\/\S+);/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(match[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (code ${code}, signal ${signal}) before serving:\n${output}`));
    });
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (!options.stateDir) rmSync(stateDir, { recursive: true, force: true });
  };

  let url: string;
  try {
    url = await ready;
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    port: Number(new URL(url).port),
    stateDir,
    kubeconfig: join(stateDir, 'kubeconfig'),
    token: readFileSync(join(stateDir, 'token'), 'utf8').trim(),
    caPem: readFileSync(join(stateDir, 'pki', 'ca.crt'), 'utf8'),
    process: child,
    output: () => output,
    stop,
  };
}
