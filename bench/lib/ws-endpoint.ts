// The latency floor of an exec over a TLS WebSocket in Node.js: a bare endpoint in a child process,
// with the agent's key, certificate and cipher order, that accepts any upgrade to
// v5.channel.k8s.io and at once sends a Success Status and closes — no authentication, policy,
// audit or process. Timed with the agent's own client, it is what opening the stream costs the
// client and a Node.js server by themselves (TCP, TLS, the HTTP upgrade, one frame): the agent's
// round trip sits on top of this.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { TestAgent } from '../../test/helpers/agent.js';
import { SERVER_CIPHERS } from '../../src/auth/serving-tls.js';

// Its key comes over IPC, not on its command line, where any user's ps would show it; it exits
// when the bench does (the IPC channel closes).
const SERVER = `
const https = require('node:https');
process.once('message', ({ wsPath, key, cert, ciphers }) => {
const { WebSocketServer } = require(wsPath);
const status = Buffer.from('\\x03{"metadata":{},"status":"Success"}', 'latin1');
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const server = https.createServer({ key, cert, ciphers, honorCipherOrder: true }, (_req, res) => res.writeHead(400).end());
server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
  ws.send(status);
  ws.close(1000);
}));
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
});
process.once('disconnect', () => process.exit(0));
`;

export interface WebSocketEndpoint {
  /** What the bench's clients need to reach it, as they reach an agent. */
  target: Pick<TestAgent, 'port' | 'caPem' | 'token'>;
  stop(): void;
}

/** Starts the bare endpoint with `agent`'s key and certificate (so the client's CA accepts it). */
async function startWebSocketEndpoint(agent: TestAgent): Promise<WebSocketEndpoint> {
  const keyPem = readFileSync(join(agent.stateDir, 'pki', 'serving.key'), 'utf8');
  const certPem = readFileSync(join(agent.stateDir, 'pki', 'serving.crt'), 'utf8');
  const wsPath = createRequire(import.meta.url).resolve('ws');
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.send({ wsPath, key: keyPem, cert: certPem, ciphers: SERVER_CIPHERS });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench: the bare WebSocket endpoint exited (code ${String(code)})`);
  });
  try {
    const [{ port }] = (await Promise.race([once(child, 'message'), exited])) as [{ port: number }];
    return { target: { port, caPem: agent.caPem, token: 'unused' }, stop: () => void child.kill() };
  } catch (err) {
    child.kill();
    throw err;
  }
}

/** Runs `measure` with the bare endpoint up, and stops it afterwards whatever happens. */
export async function withWebSocketEndpoint<T>(agent: TestAgent, measure: (endpoint: WebSocketEndpoint['target']) => Promise<T>): Promise<T> {
  const endpoint = await startWebSocketEndpoint(agent);
  try {
    return await measure(endpoint.target);
  } finally {
    endpoint.stop();
  }
}
