// A small Docker Engine API client: exactly the calls execlet makes (ping, list and inspect
// containers, exec create/start/inspect/resize, the event stream), over the unix socket or TCP with
// a keep-alive agent, and the hijacked exec stream. Hand-written because dockerode loads gRPC, protobuf and ssh2
// that execlet never uses (+27 MB RSS, +0.37 s start-up, measured) and costs more per session.
import { Agent, request, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Socket } from 'node:net';

/** The engine's API version we speak; 1.41 is Docker 20.10, the oldest we test against. */
const API_VERSION = 'v1.41';
const REQUEST_TIMEOUT_MS = 30_000;

export class EngineError extends Error {
  constructor(
    message: string,
    /** HTTP status from the engine, when it answered. */
    readonly statusCode?: number,
    /** Node's error code (ECONNREFUSED, ENOENT, …) when it could not be reached. */
    readonly code?: string,
    /** The request went over a kept-alive connection (which the engine may have closed meanwhile). */
    readonly reusedConnection = false,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineContainer {
  Id: string;
  Names: string[];
  Image: string;
  Labels: Record<string, string> | null;
  State: string;
  Created: number;
}

export interface EngineExecInspect {
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
}

export interface EngineExecConfig {
  Cmd: string[];
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  Env?: string[];
  /** [height, width]; honoured by engines with API ≥ 1.42. */
  ConsoleSize?: [number, number];
}

/** One entry of the engine's event stream (the fields execlet reads). */
export interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

type Endpoint = { socketPath: string } | { host: string; port: number };

export function endpointFor(dockerHost: string): Endpoint {
  const url = new URL(dockerHost);
  if (url.protocol === 'unix:') return { socketPath: url.pathname };
  if (url.protocol === 'https:') throw new EngineError(`${dockerHost}: TLS to the engine is not supported; use unix:// or tcp://`);
  return { host: url.hostname, port: Number(url.port || 2375) };
}

export class EngineClient {
  readonly #endpoint: Endpoint;
  /**
   * Keep-alive connections save a connect per call; hijacked streams get their own. Idle ones are
   * closed after 5 s (as Node's global agent does) so a burst leaves no file descriptors behind.
   */
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 8, timeout: 5000, scheduling: 'lifo' });

  constructor(dockerHost: string) {
    this.#endpoint = endpointFor(dockerHost);
  }

  async ping(): Promise<void> {
    await this.#call('GET', '/_ping');
  }

  async listContainers(): Promise<EngineContainer[]> {
    return (await this.#json('GET', '/containers/json?all=1')) as EngineContainer[];
  }

  async inspectContainer(id: string): Promise<{ State: { Running: boolean; Pid: number } }> {
    return (await this.#json('GET', `/containers/${encodeURIComponent(id)}/json`)) as { State: { Running: boolean; Pid: number } };
  }

  async createExec(containerId: string, config: EngineExecConfig): Promise<string> {
    const created = (await this.#json('POST', `/containers/${encodeURIComponent(containerId)}/exec`, config)) as { Id: string };
    return created.Id;
  }

  async inspectExec(execId: string): Promise<EngineExecInspect> {
    return (await this.#json('GET', `/exec/${execId}/json`)) as EngineExecInspect;
  }

  async resizeExec(execId: string, height: number, width: number): Promise<void> {
    await this.#call('POST', `/exec/${execId}/resize?h=${height}&w=${width}`);
  }

  /** Starts the exec with the connection hijacked: the returned socket carries the process's streams. */
  startExec(execId: string, options: { tty: boolean; consoleSize?: [number, number] }): Promise<Socket> {
    const body = JSON.stringify({ Detach: false, Tty: options.tty, ...(options.consoleSize ? { ConsoleSize: options.consoleSize } : {}) });
    return new Promise((resolve, reject) => {
      const req = request({
        ...this.#endpoint,
        method: 'POST',
        path: `/${API_VERSION}/exec/${execId}/start`,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'Upgrade', upgrade: 'tcp' },
      });
      req.once('upgrade', (_response: IncomingMessage, socket: Socket, head: Buffer) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.once('response', (response: IncomingMessage) => {
        // An engine that did not upgrade answered with an error (or, for old APIs, a plain stream).
        // A body cut short (the engine going away mid-answer) rejects too: never an unhandled rejection.
        readBody(response).then(
          (text) => reject(new EngineError(errorMessage(response, text), response.statusCode)),
          (err: NodeJS.ErrnoException) => reject(new EngineError(`the engine's answer (${response.statusCode}) was cut short: ${err.message}`, response.statusCode, err.code)),
        );
      });
      req.once('error', (err: NodeJS.ErrnoException) => reject(new EngineError(err.message, undefined, err.code)));
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(noAnswer()));
      req.end(body);
    });
  }

  /**
   * Streams the engine's events that match `filters` (one JSON object per line) to `onEvent`, on a
   * connection of its own. Resolves once the engine answered, with a handle that ends the stream;
   * `onEnd` is told when the stream ends for any other reason (the engine went away, a bad line).
   * With `since` (Unix seconds), the engine first replays the matching events it logged since then.
   */
  streamEvents(filters: Record<string, string[]>, onEvent: (event: EngineEvent) => void, onEnd: (err: Error) => void, since?: number): Promise<{ close(): void }> {
    const path = `/${API_VERSION}/events?filters=${encodeURIComponent(JSON.stringify(filters))}${since === undefined ? '' : `&since=${since}`}`;
    return new Promise((resolve, reject) => {
      const req = request({ ...this.#endpoint, method: 'GET', path, agent: false }, (response) => {
        if (response.statusCode !== 200) {
          void readBody(response).then((text) => reject(new EngineError(errorMessage(response, text), response.statusCode)), reject);
          return;
        }
        let closing = false;
        let pending = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => {
          pending += text;
          for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            if (line.trim() === '') continue;
            let event: EngineEvent;
            try {
              event = JSON.parse(line) as EngineEvent;
            } catch {
              req.destroy(new Error(`the engine's event stream sent a line that is not JSON: ${line.slice(0, 100)}`));
              return;
            }
            onEvent(event);
          }
        });
        const ended = (err?: Error) => {
          if (closing) return;
          closing = true;
          onEnd(err ?? new Error('the engine ended the event stream'));
        };
        response.once('end', () => ended());
        response.once('close', () => ended());
        response.once('error', (err) => ended(err));
        req.once('error', (err) => ended(err));
        resolve({
          close() {
            closing = true;
            req.destroy();
          },
        });
      });
      req.once('error', (err: NodeJS.ErrnoException) => reject(new EngineError(err.message, undefined, err.code)));
      req.end();
    });
  }

  close(): void {
    this.#agent.destroy();
  }

  async #json(method: string, path: string, body?: unknown): Promise<unknown> {
    const text = await this.#call(method, path, body);
    try {
      return JSON.parse(text);
    } catch {
      throw new EngineError(`the engine answered ${method} ${path} with something that is not JSON`);
    }
  }

  async #call(method: string, path: string, body?: unknown): Promise<string> {
    try {
      return await this.#callOnce(method, path, body);
    } catch (err) {
      // A kept-alive connection the engine closed meanwhile (it restarted): one more try on a new one.
      if (err instanceof EngineError && err.reusedConnection && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return this.#callOnce(method, path, body);
      throw err;
    }
  }

  #callOnce(method: string, path: string, body?: unknown): Promise<string> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options: RequestOptions = {
      ...this.#endpoint,
      agent: this.#agent,
      method,
      path: `/${API_VERSION}${path}`,
      headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
    };
    return new Promise((resolve, reject) => {
      const req = request(options, (response) => {
        readBody(response).then((text) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(text);
          else reject(new EngineError(errorMessage(response, text), status));
        }, reject);
      });
      req.once('error', (err: NodeJS.ErrnoException) => reject(new EngineError(err.message, undefined, err.code, req.reusedSocket)));
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(noAnswer()));
      req.end(payload);
    });
  }
}

/** The error of a request the engine did not answer in time: ETIMEDOUT, an engine unavailable (503). */
function noAnswer(): NodeJS.ErrnoException {
  return Object.assign(new Error(`no answer from the engine within ${REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' });
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.once('error', reject);
  });
}

/** The engine's own message ({"message": …}) when it gave one. */
function errorMessage(response: IncomingMessage, text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: string };
    if (parsed.message) return parsed.message;
  } catch {
    // not JSON
  }
  return `HTTP ${response.statusCode}${text ? `: ${text.trim().slice(0, 200)}` : ''}`;
}
