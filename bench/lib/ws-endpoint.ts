// The latency floor of an exec over a TLS WebSocket in Node.js: a bare endpoint in a child process,
// with the agent's key, certificate and cipher order, that accepts any upgrade to
// v5.channel.k8s.io and at once sends a Success Status and closes — no authentication, policy,
// audit or process. Timed with the agent's own client, it is what opening the stream costs the
// client and a Node.js server by themselves (TCP, TLS, the HTTP upgrade, one frame): the agent's
// round trip sits on top of this.
import type { TestAgent } from '../../test/helpers/agent.js';
import { startBaselineServer, type BaselineServer } from './baseline-server.js';

// Run by baseline-server.ts, which sends it the key and certificate and stops it.
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

/** Runs `measure` with the bare endpoint up, and stops it afterwards whatever happens. */
export async function withWebSocketEndpoint<T>(agent: TestAgent, measure: (endpoint: BaselineServer['target']) => Promise<T>): Promise<T> {
  const endpoint = await startBaselineServer('bare WebSocket endpoint', agent, SERVER);
  try {
    return await measure(endpoint.target);
  } finally {
    endpoint.stop();
  }
}
