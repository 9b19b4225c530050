// The least a Node.js exec agent can cost: a relay in a child process that takes an exec over a TLS
// WebSocket (v5.channel.k8s.io, with the agent's key, certificate and cipher order), runs it in the
// engine (create, start hijacked, inspect: Node.js's http over the engine's unix socket) and
// passes bytes between the two — stdin in; output out, a terminal's as it comes and the engine's
// multiplexed stream split without a copy, with the same backpressure as the agent — then the exit
// Status. No authentication, policy, audit, registry, metrics, liveness or limits. Its CPU per
// echo, CPU per GB and memory per session, next to the agent's, are what TLS, WebSocket framing
// and the engine connection cost in Node.js on this machine by themselves.
import type { TestAgent } from '../../test/helpers/agent.js';
import { startBaselineServer, type BaselineServer } from './baseline-server.js';

// Run by baseline-server.ts, which sends it the key, certificate and the options below, and stops it.
const SERVER = `
const https = require('node:https');
const http = require('node:http');
process.once('message', ({ wsPath, key, cert, ciphers, socketPath, containers, highWaterMark }) => {
const { WebSocketServer } = require(wsPath);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (offered) => offered.has('v5.channel.k8s.io') && 'v5.channel.k8s.io' });
const engine = (method, path, body) => new Promise((resolve, reject) => {
  const req = http.request({ socketPath, method, path, headers: { 'Content-Type': 'application/json' } }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      if (res.statusCode >= 300) reject(new Error(method + ' ' + path + ': ' + res.statusCode + ' ' + text));
      else resolve(text ? JSON.parse(text) : null);
    });
  });
  req.on('error', reject);
  req.end(body ? JSON.stringify(body) : undefined);
});
const hijack = (id, tty) => new Promise((resolve, reject) => {
  const req = http.request({ socketPath, method: 'POST', path: '/exec/' + id + '/start', headers: { 'Content-Type': 'application/json', Connection: 'Upgrade', Upgrade: 'tcp' } });
  req.on('upgrade', (_res, socket, head) => {
    if (head.length > 0) socket.unshift(head);
    resolve(socket);
  });
  req.on('response', (res) => reject(new Error('exec start: ' + res.statusCode)));
  req.on('error', reject);
  req.end(JSON.stringify({ Detach: false, Tty: tty }));
});
const statusOf = (code) => Buffer.from('\\x03' + JSON.stringify(code === 0
  ? { metadata: {}, status: 'Success' }
  : { metadata: {}, status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(code) }] } }), 'latin1');
const CHANNEL_PREFIX = [null, Buffer.from([1]), Buffer.from([2])];
const relay = async (ws, url) => {
  const pod = /\\/pods\\/([^/]+)\\/exec/.exec(url.pathname)?.[1];
  const container = containers[pod];
  if (!container) throw new Error('no container for pod ' + pod);
  const tty = url.searchParams.get('tty') === 'true';
  const stdin = url.searchParams.get('stdin') === 'true';
  const { Id: id } = await engine('POST', '/containers/' + container + '/exec', {
    Cmd: url.searchParams.getAll('command'), AttachStdin: stdin, AttachStdout: true, AttachStderr: !tty, Tty: tty,
  });
  const socket = await hijack(id, tty);
  const tcp = ws._socket;
  // As the agent: output waits while more than the high-water mark is queued for the client.
  const send = (message) => {
    ws.send(message);
    if (ws.bufferedAmount > highWaterMark && !socket.isPaused()) {
      socket.pause();
      tcp.once('drain', () => socket.resume());
    }
  };
  /** One channel message of chunk[start, end): into the byte before it where that byte is free. */
  const sendPayload = (channel, chunk, start, end, free) => {
    if (free) {
      chunk[start - 1] = channel;
      send(chunk.subarray(start - 1, end));
    } else {
      send(Buffer.concat([CHANNEL_PREFIX[channel], chunk.subarray(start, end)]));
    }
  };
  if (tty) {
    socket.on('data', (chunk) => sendPayload(1, chunk, 0, chunk.length, false));
  } else {
    // The engine's stream: an 8-byte header (stream, 0, 0, 0, size) before each payload. A payload
    // is sent as it arrives, in as many pieces as the reads cut it into; the header byte before it
    // takes the channel, where that byte is in the same read (free).
    let channel = 1;
    let remaining = 0;
    /** A header's first bytes, from the end of an earlier read. */
    let partial = null;
    socket.on('data', (chunk) => {
      let offset = 0;
      let free = false;
      while (offset < chunk.length) {
        if (remaining > 0) {
          const end = Math.min(chunk.length, offset + remaining);
          sendPayload(channel, chunk, offset, end, free);
          remaining -= end - offset;
          offset = end;
          free = false;
        } else if (partial === null && chunk.length - offset >= 8) {
          channel = chunk[offset] === 2 ? 2 : 1;
          remaining = chunk.readUInt32BE(offset + 4);
          offset += 8;
          free = true;
        } else {
          const take = Math.min(8 - (partial === null ? 0 : partial.length), chunk.length - offset);
          partial = Buffer.concat([partial ?? Buffer.alloc(0), chunk.subarray(offset, offset + take)]);
          offset += take;
          if (partial.length === 8) {
            channel = partial[0] === 2 ? 2 : 1;
            remaining = partial.readUInt32BE(4);
            partial = null;
            free = true;
          }
        }
      }
    });
  }
  ws.on('message', (data) => {
    if (data[0] === 0 && stdin) socket.write(data.subarray(1));
  });
  ws.on('close', () => socket.destroy());
  socket.once('close', async () => {
    if (ws.readyState !== ws.OPEN) return;
    const { ExitCode } = await engine('GET', '/exec/' + id + '/json');
    ws.send(statusOf(ExitCode));
    ws.close(1000);
  });
};
const server = https.createServer({ key, cert, ciphers, honorCipherOrder: true }, (_req, res) => res.writeHead(400).end());
server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
  relay(ws, new URL(req.url, 'https://relay')).catch((err) => {
    process.stderr.write('bench relay: ' + err.message + '\\n');
    ws.close(1011);
  });
}));
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
});
process.once('disconnect', () => process.exit(0));
`;

export type WebSocketRelay = BaselineServer;

export interface RelayOptions {
  /** The engine's unix socket. */
  socketPath: string;
  /** Pod name → container id: the pod in an exec URL names the container to run in. */
  containers: Record<string, string>;
  /** Output waits while this much is queued towards the client (the agent's default: 1 MiB). */
  highWaterMark?: number;
  /** Extra node options, e.g. the inspector (gc.ts's INSPECT_OPTION), so its memory can be read after GC. */
  nodeOptions?: string[];
}

/** Starts the relay with `agent`'s key and certificate (so the client's CA accepts it); the caller stops it. */
export function startWebSocketRelay(agent: TestAgent, options: RelayOptions): Promise<WebSocketRelay> {
  const config = { socketPath: options.socketPath, containers: options.containers, highWaterMark: options.highWaterMark ?? 1024 * 1024 };
  return startBaselineServer('WebSocket relay', agent, SERVER, config, options.nodeOptions);
}
