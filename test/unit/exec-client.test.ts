// Unit test for the tests' own exec client (test/helpers/exec-client.ts): frames that arrive in the
// same read as the 101 reach `collect`, although ws reads them before `openExec`'s caller resumes.
// The server is a hand-written TLS server, so the 101 and the frames go out in one TLS record.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';

import { createCertificateAuthority, createServingCertificate } from '../../src/auth/self-signed.js';
import { collect, openExec } from '../helpers/exec-client.js';

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** An unmasked binary frame (server to client) with a payload under 126 bytes. */
function binaryFrame(payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x82, payload.length]), payload]);
}

describe('test exec client', () => {
  it('collects the frames that came in the same read as the 101', async () => {
    const ca = createCertificateAuthority('exec-client test CA');
    const serving = createServingCertificate(ca, '127.0.0.1', ['127.0.0.1']);
    const server = createServer({ key: serving.keyPem, cert: serving.certPem }, (socket: TLSSocket) => {
      let request = '';
      socket.on('data', (chunk: Buffer) => {
        request += chunk.toString('latin1');
        if (!request.includes('\r\n\r\n')) return;
        const key = /^sec-websocket-key:\s*(\S+)/im.exec(request)?.[1] ?? '';
        const accept = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
        const response = Buffer.from(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`,
          'latin1',
        );
        const status = Buffer.from('{"kind":"Status","apiVersion":"v1","status":"Success"}');
        const close = Buffer.from([0x88, 0x02, 0x03, 0xe8]); // close 1000
        // One write, so one TLS record: the client reads the 101 and every frame at once.
        socket.end(Buffer.concat([response, binaryFrame(Buffer.from('\x01early')), binaryFrame(Buffer.concat([Buffer.from([3]), status])), close]));
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const result = await collect(await openExec({ port, token: 't', caPem: ca.certPem }, '/exec'));
      assert.equal(result.stdout.toString(), 'early');
      assert.equal(JSON.parse(result.error).status, 'Success');
      assert.equal(result.closeCode, 1000);
    } finally {
      server.close();
    }
  });
});
