// The built-in web console's files: the page at GET / and its scripts and styles under
// GET /console/… (its own files from web/, xterm.js and its fit addon from node_modules). Only a
// fixed allowlist is served, read once at start-up, with a strict Content-Security-Policy. These
// routes need no credential: the page reads the token from its URL fragment and sends it itself.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendStatus } from './status-reply.js';

export interface ConsoleRouteOptions {
  /** When false, `/` and `/console/…` answer a 404 Status. */
  enabled: boolean;
}

/** Everything the console serves is at `/` or below this prefix. */
export const CONSOLE_PREFIX = '/console/';

/** True for the paths the console serves without authentication (`/` and `/console/…`). */
export function isConsolePath(path: string): boolean {
  return path === '/' || path.startsWith(CONSOLE_PREFIX);
}

/**
 * Scripts only from this origin (no inline script, no eval); inline styles are allowed because
 * xterm.js positions its rows with them; network only to this origin (`wss:` for the stream URL,
 * which browsers that predate CSP 3 do not count as 'self'); never framed.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self' wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
} as const;

interface AssetSource {
  file: string;
  type: string;
  /** The page itself is never cached (a new agent may serve a new page); the rest is revalidated. */
  cacheControl: 'no-store' | 'no-cache';
}

interface Asset {
  body: Buffer;
  type: string;
  cacheControl: string;
  etag: string;
}

const WEB_DIR = new URL('../../web/', import.meta.url);

function webFile(name: string): string {
  return fileURLToPath(new URL(name, WEB_DIR));
}

/** URL path → file: the only files the console serves. Package files are resolved from node_modules. */
function assetSources(): Map<string, AssetSource> {
  const require = createRequire(import.meta.url);
  return new Map<string, AssetSource>([
    ['/', { file: webFile('index.html'), type: TYPES.html, cacheControl: 'no-store' }],
    ['/console/console.js', { file: webFile('console.js'), type: TYPES.js, cacheControl: 'no-cache' }],
    ['/console/console.css', { file: webFile('console.css'), type: TYPES.css, cacheControl: 'no-cache' }],
    ['/console/vendor/xterm.mjs', { file: require.resolve('@xterm/xterm/lib/xterm.mjs'), type: TYPES.js, cacheControl: 'no-cache' }],
    ['/console/vendor/xterm.css', { file: require.resolve('@xterm/xterm/css/xterm.css'), type: TYPES.css, cacheControl: 'no-cache' }],
    ['/console/vendor/addon-fit.mjs', { file: require.resolve('@xterm/addon-fit/lib/addon-fit.mjs'), type: TYPES.js, cacheControl: 'no-cache' }],
  ]);
}

function loadAsset(path: string, source: AssetSource): Asset {
  let body: Buffer;
  try {
    body = readFileSync(source.file);
  } catch (err) {
    throw new Error(`web console: cannot read ${source.file} (served as ${path}): ${(err as Error).message}`, { cause: err });
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type: source.type, cacheControl: source.cacheControl, etag };
}

/** Reads every allowlisted file; a missing one stops start-up with its name. */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const [path, source] of assetSources()) assets.set(path, loadAsset(path, source));
  return assets;
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, asset: Asset): FastifyReply {
  reply.headers(SECURITY_HEADERS).header('cache-control', asset.cacheControl).header('etag', asset.etag);
  if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
  return reply.type(asset.type).send(asset.body);
}

/**
 * Serves the console at `GET /` and `GET /console/*` (HEAD too), or a 404 Status there when
 * disabled. Register before the server listens; the app's authentication hook must let these
 * paths through (see `isConsolePath`).
 */
export function registerConsoleRoutes(app: FastifyInstance, options: ConsoleRouteOptions): void {
  if (!options.enabled) {
    const disabled = async (_request: FastifyRequest, reply: FastifyReply) => sendStatus(reply, 404, 'the web console is disabled on this agent');
    app.get('/', disabled);
    app.get(`${CONSOLE_PREFIX}*`, disabled);
    return;
  }
  const assets = loadAssets();
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?', 1)[0]!;
    const asset = assets.get(path);
    if (!asset) return sendStatus(reply, 404, 'no such file in the web console');
    return sendAsset(request, reply, asset);
  };
  app.get('/', serve);
  app.get(`${CONSOLE_PREFIX}*`, serve);
}
