// A minimal channel.k8s.io WebSocket client for tests: opens an exec stream, sends stdin and
// resizes, and collects what comes back per channel together with the close code.
import { once } from 'node:events';
import WebSocket from 'ws';
import type { TestAgent } from './agent.js';

export interface ExecResult {
  protocol: string;
  stdout: Buffer;
  stderr: Buffer;
  /** Raw bytes of the error channel (3), decoded as UTF-8. */
  error: string;
  /** Number of messages received on channel 3. */
  errorFrames: number;
  closeCode: number;
  /** Every message as received (channel byte first) for protocol-level assertions. */
  messages: Buffer[];
}

export interface ExecOpenOptions {
  /** false: never answer the server's pings (a peer that vanished without a goodbye). */
  autoPong?: boolean;
  protocols?: string[];
  token?: string | null;
  headers?: Record<string, string>;
}

export function execPath(namespace: string, pod: string, params: Record<string, string | string[] | boolean>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v));
  }
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/exec?${query}`;
}

/**
 * Messages read together with the 101, per socket. ws emits 'open' and then reads the bytes that
 * came with the upgrade response on the next tick, before the caller of `openExec` (resumed in a
 * microtask after that) can listen; they are kept here until the event loop's next turn.
 */
const earlyMessages = new WeakMap<WebSocket, Array<[Buffer, boolean]>>();

/** Listens for messages, first handing over any read together with the 101. */
export function onMessage(ws: WebSocket, handler: (data: Buffer, isBinary: boolean) => void): void {
  for (const [data, isBinary] of earlyMessages.get(ws) ?? []) handler(data, isBinary);
  ws.on('message', handler);
}

/** Opens the WebSocket; rejects with the HTTP status and body when the upgrade is refused. */
export async function openExec(agent: Pick<TestAgent, 'port' | 'token' | 'caPem'>, path: string, options: ExecOpenOptions = {}): Promise<WebSocket> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? agent.token : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const ws = new WebSocket(`wss://127.0.0.1:${agent.port}${path}`, options.protocols ?? ['v5.channel.k8s.io'], {
    ca: agent.caPem,
    headers,
    perMessageDeflate: false,
    ...(options.autoPong === false ? ({ autoPong: false } as WebSocket.ClientOptions) : {}),
  });
  const early: Array<[Buffer, boolean]> = [];
  const keepEarly = (data: Buffer, isBinary: boolean): void => void early.push([data, isBinary]);
  ws.on('message', keepEarly);
  earlyMessages.set(ws, early);
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      resolve(ws);
      setImmediate(() => {
        ws.off('message', keepEarly);
        earlyMessages.delete(ws);
      });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode} ${body}`), { statusCode: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

/** Collects channel output until the server closes the socket. */
export async function collect(ws: WebSocket): Promise<ExecResult> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const errorParts: Buffer[] = [];
  const messages: Buffer[] = [];
  onMessage(ws, (data, isBinary) => {
    messages.push(data);
    if (!isBinary) {
      // base64 protocols: digit + base64 payload
      const text = data.toString('utf8');
      const payload = Buffer.from(text.slice(1), 'base64');
      const channel = Number(text[0]);
      (channel === 1 ? stdout : channel === 2 ? stderr : channel === 3 ? errorParts : []).push(payload);
      return;
    }
    const channel = data[0];
    const payload = data.subarray(1);
    if (channel === 1) stdout.push(payload);
    else if (channel === 2) stderr.push(payload);
    else if (channel === 3) errorParts.push(payload);
  });
  const [code] = (await once(ws, 'close')) as [number];
  return {
    protocol: ws.protocol,
    stdout: Buffer.concat(stdout),
    stderr: Buffer.concat(stderr),
    error: Buffer.concat(errorParts).toString('utf8'),
    errorFrames: errorParts.filter((p) => p.length > 0).length,
    closeCode: code,
    messages,
  };
}

/** Sends stdin in 32 KiB messages, as kubectl does. */
export function sendStdin(ws: WebSocket, data: Buffer | string): void {
  const bytes = Buffer.from(data);
  for (let offset = 0; offset < bytes.length; offset += 32 * 1024) {
    ws.send(Buffer.concat([Buffer.from([0]), bytes.subarray(offset, offset + 32 * 1024)]));
  }
}

/** The v5 close signal for stdin. */
export function closeStdin(ws: WebSocket): void {
  ws.send(Buffer.from([255, 0]));
}

export function sendResize(ws: WebSocket, width: number, height: number): void {
  ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(JSON.stringify({ Width: width, Height: height }))]));
}

/** Runs a non-interactive command and returns everything it produced. */
export async function runExec(
  agent: Pick<TestAgent, 'port' | 'token' | 'caPem'>,
  namespace: string,
  pod: string,
  params: Record<string, string | string[] | boolean>,
  options: ExecOpenOptions & { stdin?: Buffer | string } = {},
): Promise<ExecResult> {
  const ws = await openExec(agent, execPath(namespace, pod, params), options);
  const result = collect(ws);
  if (options.stdin !== undefined) {
    sendStdin(ws, options.stdin);
    closeStdin(ws);
  }
  return result;
}
