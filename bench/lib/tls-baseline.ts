// The memory floor of a session on a TLS connection in Node.js: a bare TLS echo server in a child
// process, `count` connections opened to it (each exchanging a few bytes, as a shell session does),
// its RSS per connection after a full GC. OpenSSL's and Node's per-connection buffers, nothing of
// execlet's: the agent's per-session memory sits on top of this.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import type { TestAgent } from '../../test/helpers/agent.js';
import { rssBytes } from './stats.js';

// The key comes over IPC, not on the command line, where any user's ps would show it.
const SERVER = `
const tls = require('node:tls');
process.on('message', (m) => {
  if (m === 'gc') { global.gc(); global.gc(); process.send({ collected: true }); return; }
  const server = tls.createServer({ key: m.key, cert: m.cert }, (socket) => socket.on('data', (d) => socket.write(d)));
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
});
`;

/** RSS per connection of a bare Node.js TLS server, with the agent's own key and certificate, holding `count` open connections, after GC. */
export async function tlsConnectionFloor(agent: TestAgent, count: number): Promise<number> {
  const keyPem = readFileSync(join(agent.stateDir, 'pki', 'serving.key'), 'utf8');
  const certPem = readFileSync(join(agent.stateDir, 'pki', 'serving.crt'), 'utf8');
  const child = spawn(process.execPath, ['--expose-gc', '-e', SERVER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.send({ key: keyPem, cert: certPem });
  const sockets: TLSSocket[] = [];
  try {
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`the TLS baseline server exited (code ${String(code)})`);
    });
    const reply = () => Promise.race([once(child, 'message'), exited]);
    const [{ port }] = (await reply()) as [{ port: number }];
    const exchange = async () => {
      const socket = connect({ host: '127.0.0.1', port, ca: agent.caPem, servername: 'localhost' });
      await once(socket, 'secureConnect');
      socket.write('hello');
      await once(socket, 'data');
      return socket;
    };
    (await exchange()).destroy(); // warm-up
    const collect = async () => {
      child.send('gc');
      await reply();
      return rssBytes(child.pid!);
    };
    const before = await collect();
    for (let i = 0; i < count; i++) sockets.push(await exchange());
    return ((await collect()) - before) / count;
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill();
  }
}
