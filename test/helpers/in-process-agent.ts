// Starts an agent in the test's own process (src/cli/agent.ts, not the built CLI), on a loopback
// port with its own state dir, for tests that must reach inside it (a WeakRef on a request, a
// wrapped method); close() stops it and removes the dir.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type Agent, type AgentOverrides } from '../../src/cli/agent.js';
import { defaultSettings, type Settings } from '../../src/config/settings.js';
import type { TestDocker } from './docker-daemon.js';

export interface InProcessAgent {
  agent: Agent;
  port: number;
  token: string;
  caPem: string;
  close(): Promise<void>;
}

export async function startInProcessAgent(
  docker: TestDocker,
  nodeName: string,
  overrides: AgentOverrides = {},
  settings: Partial<Settings> = {},
): Promise<InProcessAgent> {
  const dir = mkdtempSync(join(tmpdir(), `execlet-${nodeName}-`));
  try {
    const agent = await startAgent({ ...defaultSettings(), listen: '127.0.0.1:0', dockerHost: docker.host, stateDir: dir, nodeName, logLevel: 'silent', ...settings }, overrides);
    return {
      agent,
      port: Number(new URL(agent.kubeconfig.serverUrl).port),
      token: readFileSync(join(dir, 'token'), 'utf8').trim(),
      caPem: readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8'),
      async close() {
        await agent.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
