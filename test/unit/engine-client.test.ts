// The engine client's failure paths that a real engine produces only when it dies mid-answer:
// against a fake engine on a unix socket that answers an exec start with half an error and hangs up.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EngineClient, EngineError } from '../../src/backend/engine-client.js';
import { toBackendError } from '../../src/backend/docker.js';

describe('EngineClient, an engine that goes away mid-answer', () => {
  let dir: string;
  let server: ReturnType<typeof createServer>;
  const sockets = new Set<Socket>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'execlet-engine-client-'));
    server = createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.once('data', () => {
        // A 409 whose body promises 100 bytes, then the connection drops.
        socket.write('HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"message":"container is not');
        setImmediate(() => socket.destroy());
      });
    });
    server.listen(join(dir, 'engine.sock'));
    await once(server, 'listening');
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
    rmSync(dir, { recursive: true, force: true });
  });

  it('an exec start answered with half an error rejects with an EngineError (no unhandled rejection)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const client = new EngineClient(`unix://${join(dir, 'engine.sock')}`);
      const err = await client.startExec('0123456789abcdef', { tty: false }).then(
        () => assert.fail('the start cannot succeed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof EngineError, String(err));
      assert.equal(err.statusCode, 409);
      assert.match(err.message, /cut short/);
      // Give a stray rejection the turn it would need to surface.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('an engine that does not answer in time is unavailable (503), not an internal error', () => {
    const timedOut = new EngineError('no answer from the engine within 30000 ms', undefined, 'ETIMEDOUT');
    assert.equal(toBackendError(timedOut, 'start the exec').kind, 'Unavailable');
    assert.equal(toBackendError(new EngineError('boom', 500), 'start the exec').kind, 'Internal');
  });
});
