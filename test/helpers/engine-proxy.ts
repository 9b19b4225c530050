// A pass-through between the agent and the real engine socket that records which API calls the
// agent makes, can cut (and refuse) its event stream, and can hold requests back until released (a
// slow engine) — to see how the agent talks to the engine, not to stand in for it. Stopped by the
// test that starts it.
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EngineProxy {
  /** unix://… for --docker-host. */
  host: string;
  /** Every request line seen, in order ("GET /v1.41/exec/…/json"). */
  requests: string[];
  /** Emits 'request' with each request line. */
  events: EventEmitter;
  /** Ends the open event-stream connections; while refused, new ones are closed as they come. */
  cutEventStreams(options: { refuseNew: boolean }): void;
  /**
   * Holds back every request whose path matches `path` (and whatever its connection sends after
   * it) until the returned release() passes them on: the agent waits as on a slow engine.
   */
  holdRequests(path: RegExp): () => void;
  stop(): Promise<void>;
}

const REQUEST_LINE = /(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) (\/\S*) HTTP\/1\.[01]\r\n/g;

export async function startEngineProxy(engineSocketPath: string): Promise<EngineProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'execlet-engine-proxy-'));
  const path = join(dir, 'engine.sock');
  const requests: string[] = [];
  const events = new EventEmitter();
  const eventStreams = new Set<Socket>();
  const open = new Set<Socket>();
  let refuseEvents = false;
  let holding: RegExp | null = null;
  /** What each held connection has sent since its held request, to pass on at release. */
  const held = new Map<Socket, { engine: Socket; chunks: Buffer[] }>();

  const server: Server = createServer((client) => {
    const engine = connect(engineSocketPath);
    open.add(client).add(engine);
    const closeBoth = () => {
      client.destroy();
      engine.destroy();
      open.delete(client);
      open.delete(engine);
      eventStreams.delete(client);
      held.delete(client);
    };
    client.on('error', closeBoth).on('close', closeBoth);
    engine.on('error', closeBoth).on('close', closeBoth);
    let upgraded = false;
    client.on('data', (chunk: Buffer) => {
      const holdingThis = held.get(client);
      if (holdingThis) {
        holdingThis.chunks.push(chunk);
        return;
      }
      if (!upgraded) {
        // Request lines only until a hijack: after that the bytes are a process's stdin.
        for (const match of chunk.toString('latin1').matchAll(REQUEST_LINE)) {
          const line = `${match[1]} ${match[2]}`;
          requests.push(line);
          events.emit('request', line);
          if (/\/exec\/[^/]+\/start$/.test(match[2]!)) upgraded = true;
          if (holding?.test(match[2]!)) {
            held.set(client, { engine, chunks: [chunk] });
            return;
          }
          if (/^\/v[\d.]+\/events\b/.test(match[2]!)) {
            if (refuseEvents) {
              closeBoth();
              return;
            }
            eventStreams.add(client);
          }
        }
      }
      engine.write(chunk);
    });
    engine.on('data', (chunk: Buffer) => client.write(chunk));
  });
  server.listen(path);
  await once(server, 'listening');

  return {
    host: `unix://${path}`,
    requests,
    events,
    cutEventStreams({ refuseNew }) {
      refuseEvents = refuseNew;
      for (const socket of eventStreams) socket.destroy();
      eventStreams.clear();
    },
    holdRequests(path) {
      holding = path;
      return () => {
        holding = null;
        for (const [client, { engine, chunks }] of held) {
          held.delete(client);
          for (const chunk of chunks) engine.write(chunk);
        }
      };
    },
    async stop() {
      for (const socket of open) socket.destroy();
      server.close();
      await once(server, 'close');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
