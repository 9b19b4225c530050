// Unit test for the docker backend's part in keeping the container list honest
// (src/backend/docker.ts with src/backend/container-changes.ts), against a fake engine on a unix
// socket: when the engine refuses an exec because the container is gone (404) or not running (409)
// — a change whose event the agent never heard — the change feed moves, so the next exec lists the
// containers again; any other failure leaves it alone.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DockerBackend } from '../../src/backend/docker.js';
import type { ExecSpec } from '../../src/backend/types.js';

const refusals: Record<string, { status: number; message: string }> = {
  gone: { status: 404, message: 'No such container: gone' },
  stopped: { status: 409, message: 'Container stopped is not running' },
  broken: { status: 500, message: 'the engine broke' },
};

const spec = (containerId: string): ExecSpec => ({ place: { kind: 'container', containerId }, command: ['true'], tty: false, stdin: false, stdout: true, stderr: true });

describe('DockerBackend and the container-change feed', () => {
  it('moves the feed when the engine says the container is gone or not running, and only then', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'execlet-fake-engine-'));
    const socketPath = join(dir, 'engine.sock');
    const eventStreams: ServerResponse[] = [];
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/v1.41/events')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        eventStreams.push(res);
        return;
      }
      const exec = /^\/v1\.41\/containers\/([^/]+)\/exec$/.exec(req.url ?? '');
      const refusal = exec && req.method === 'POST' ? refusals[exec[1]!] : undefined;
      res.writeHead(refusal?.status ?? 500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: refusal?.message ?? `unexpected ${req.method} ${req.url}` }));
    });
    server.listen(socketPath);
    await once(server, 'listening');
    let connected!: () => void;
    const subscribed = new Promise<void>((resolve) => (connected = resolve));
    const backend = new DockerBackend({ dockerHost: `unix://${socketPath}`, killGraceMs: 100, onEventStreamChange: (up) => up && connected() });
    try {
      backend.watchEvents();
      await subscribed;
      const changes = backend.containerChanges;
      assert.equal(changes.live, true);

      let generation = changes.generation;
      await assert.rejects(backend.start(spec('broken')), /the engine broke/);
      assert.equal(changes.generation, generation, 'a failure that says nothing about the container');

      for (const id of ['gone', 'stopped']) {
        generation = changes.generation;
        await assert.rejects(backend.start(spec(id)), new RegExp(refusals[id]!.message));
        assert.ok(changes.generation > generation, `${id}: the feed moved`);
      }
    } finally {
      backend.close();
      for (const res of eventStreams) res.end();
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
