// Starts one of the bench's baseline servers (ws-endpoint.ts, ws-relay.ts): a Node.js program in a
// child process that serves TLS with the agent's key, certificate and cipher order, so the bench's
// clients reach it as they reach the agent. The key comes over IPC, never on its command line, where
// any user's ps would show it; the program answers with the port it listens on, and exits when the
// bench does (the IPC channel closes).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { TestAgent } from '../../test/helpers/agent.js';
import { SERVER_CIPHERS } from '../../src/auth/serving-tls.js';

export interface BaselineServer {
  /** What the bench's clients need to reach it, as they reach an agent. */
  target: Pick<TestAgent, 'port' | 'caPem' | 'token'>;
  pid: number;
  /** What it wrote to stderr (the inspector's address, gc.ts; its own errors). */
  output(): string;
  stop(): void;
}

/**
 * Runs `source` (CommonJS, for `node -e`), which is sent `{ wsPath, key, cert, ciphers, ...config }`
 * as its first IPC message and must send back `{ port }` once it listens. `name` says which server
 * it is in errors.
 */
export async function startBaselineServer(name: string, agent: TestAgent, source: string, config: object = {}, nodeOptions: string[] = []): Promise<BaselineServer> {
  const key = readFileSync(join(agent.stateDir, 'pki', 'serving.key'), 'utf8');
  const cert = readFileSync(join(agent.stateDir, 'pki', 'serving.crt'), 'utf8');
  const wsPath = createRequire(import.meta.url).resolve('ws');
  const child = spawn(process.execPath, [...nodeOptions, '-e', source], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let output = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.send({ wsPath, key, cert, ciphers: SERVER_CIPHERS, ...config });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench: the ${name} exited (code ${String(code)}):\n${output}`);
  });
  try {
    const [{ port }] = (await Promise.race([once(child, 'message'), exited])) as [{ port: number }];
    return { target: { port, caPem: agent.caPem, token: 'unused' }, pid: child.pid!, output: () => output, stop: () => void child.kill() };
  } catch (err) {
    child.kill();
    throw err;
  }
}
