// The single source of truth for every setting: its zod type, default, flag, environment variable
// and help text. The loader, `--help`, `--print-config` and the README table all derive from here.
import { isIPv6 } from 'node:net';
import { hostname } from 'node:os';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

/** `HOST:PORT`, `[v6]:PORT`; port 0 lets the kernel choose (tests use it). */
export const listenAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, { message: 'expected HOST:PORT, e.g. 127.0.0.1:10350', abort: true })
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be 0–65535')
  .refine((v) => !v.startsWith('[') || isIPv6(v.slice(1, v.lastIndexOf(']'))), 'a host in brackets must be an IPv6 address, e.g. [::1]:10350');

const dockerHost = z
  .string()
  .regex(/^(unix:\/\/\/.+|tcp:\/\/[^/]+|http:\/\/[^/]+)$/, 'expected unix:///path/to/docker.sock or tcp://HOST:PORT (TLS to the engine is not supported)');

const optionalPath = z.string().min(1, 'must not be empty').optional();

/** A browser origin: scheme://host[:port], nothing else. */
const origin = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}, 'expected an origin such as https://console.example.com (scheme, host and optional port; no path)');

const regexSource = z.string().refine((value) => {
  try {
    new RegExp(value);
    return true;
  } catch {
    return false;
  }
}, 'expected a regular expression');

export const settingsSchema = z.strictObject({
  listen: listenAddress,
  dockerHost,
  stateDir: z.string().min(1, 'must not be empty'),
  nodeName: z
    .string()
    .max(253, { message: 'must be a DNS subdomain: at most 253 characters', abort: true })
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS subdomain (labels of lowercase letters, digits and -, separated by single dots)'),
  tls: z.strictObject({
    certFile: optionalPath,
    keyFile: optionalPath,
    clientCAFile: optionalPath,
  }),
  tokenFile: optionalPath,
  insecureSelfSignedOnNetwork: z.boolean(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  killGraceMs: z.number().int().min(0).max(60_000),
  nsenter: z.enum(['auto', 'enabled', 'disabled']),
  console: z.enum(['auto', 'enabled', 'disabled']),
  policyFile: optionalPath,
  allowedOrigins: z.array(origin),
  audit: z.strictObject({
    file: z.string().min(1, 'must not be empty (use "none" to turn the file off)').optional(),
    stdout: z.boolean(),
    maxBytes: z.number().int().min(4096),
    keep: z.number().int().min(0).max(100),
    failClosed: z.boolean(),
    redact: z.array(regexSource),
  }),
  sessions: z.strictObject({
    idleTimeoutSeconds: z.number().int().min(1),
    maxDurationSeconds: z.number().int().min(1),
    pingIntervalSeconds: z.number().int().min(1).max(300),
    maxPerNode: z.number().int().min(1),
    maxPerUser: z.number().int().min(1),
    ratePerUserPerMinute: z.number().int().min(1),
    outputHighWaterMarkBytes: z.number().int().min(16 * 1024),
  }),
  shutdownGraceSeconds: z.number().int().min(1).max(600),
  reaperIntervalSeconds: z.number().int().min(1).max(86_400),
  maxConnections: z.number().int().min(2),
});

export type Settings = z.infer<typeof settingsSchema>;

export type SettingKind = 'string' | 'boolean' | 'integer' | 'list';

export interface SettingDescriptor {
  /** Dotted path into Settings, e.g. `tls.certFile`; also the YAML key path. */
  path: string;
  flag: string;
  env: string;
  kind: SettingKind;
  help: string;
  /** Shown in --help and the README when the default is computed at start-up. */
  defaultText?: string;
  /**
   * For a list whose items may hold commas (regular expressions): each flag value is one item, and
   * the environment variable holds one item per line. Other lists are comma-separated everywhere.
   */
  itemsPerLine?: true;
}

export const SETTINGS: readonly SettingDescriptor[] = [
  { path: 'listen', flag: '--listen', env: 'EXECLET_LISTEN', kind: 'string', help: 'address to serve HTTPS on, HOST:PORT' },
  {
    path: 'dockerHost',
    flag: '--docker-host',
    env: 'EXECLET_DOCKER_HOST',
    kind: 'string',
    help: 'Docker Engine API endpoint',
    defaultText: '$DOCKER_HOST or unix:///var/run/docker.sock',
  },
  {
    path: 'stateDir',
    flag: '--state-dir',
    env: 'EXECLET_STATE_DIR',
    kind: 'string',
    help: 'where the generated CA, certificate, token and kubeconfig live',
    defaultText: '/var/lib/execlet as root, else $XDG_STATE_HOME/execlet (~/.local/state/execlet when unset)',
  },
  { path: 'nodeName', flag: '--node-name', env: 'EXECLET_NODE_NAME', kind: 'string', help: 'name of this node', defaultText: 'the hostname' },
  { path: 'tls.certFile', flag: '--tls-cert-file', env: 'EXECLET_TLS_CERT_FILE', kind: 'string', help: 'serving certificate (PEM); generated in the state dir when unset; re-read on change and SIGHUP' },
  { path: 'tls.keyFile', flag: '--tls-key-file', env: 'EXECLET_TLS_KEY_FILE', kind: 'string', help: 'private key of the serving certificate (PEM); re-read with it' },
  { path: 'tls.clientCAFile', flag: '--tls-client-ca-file', env: 'EXECLET_TLS_CLIENT_CA_FILE', kind: 'string', help: 'CA bundle that signs client certificates (PEM; mTLS: user = subject CN, groups = O); re-read on change and SIGHUP' },
  {
    path: 'tokenFile',
    flag: '--token-file',
    env: 'EXECLET_TOKEN_FILE',
    kind: 'string',
    help: 'bearer tokens of users, one per line: TOKEN-or-sha256:HEX USER [GROUP,GROUP…]; reloaded on change and SIGHUP',
  },
  {
    path: 'insecureSelfSignedOnNetwork',
    flag: '--insecure-self-signed-on-network',
    env: 'EXECLET_INSECURE_SELF_SIGNED_ON_NETWORK',
    kind: 'boolean',
    help: 'allow a non-loopback --listen with the generated self-signed certificate',
  },
  { path: 'logLevel', flag: '--log-level', env: 'EXECLET_LOG_LEVEL', kind: 'string', help: 'fatal, error, warn, info, debug, trace or silent' },
  {
    path: 'nsenter',
    flag: '--nsenter',
    env: 'EXECLET_NSENTER',
    kind: 'string',
    help: 'the privileged nsenter, toolbox and node modes: enabled, disabled, or auto (enabled only on a loopback listener)',
  },
  {
    path: 'console',
    flag: '--console',
    env: 'EXECLET_CONSOLE',
    kind: 'string',
    help: 'the built-in web console at /: enabled, disabled, or auto (enabled only on a loopback listener)',
  },
  {
    path: 'policyFile',
    flag: '--policy-file',
    env: 'EXECLET_POLICY_FILE',
    kind: 'string',
    help: 'authorization policy (YAML or JSON); when set, everything it does not grant is denied',
  },
  {
    path: 'allowedOrigins',
    flag: '--allowed-origins',
    env: 'EXECLET_ALLOWED_ORIGINS',
    kind: 'list',
    help: 'browser origins allowed to open streams besides the agent\'s own (comma-separated); an upgrade with any other Origin is refused',
  },
  {
    path: 'audit.file',
    flag: '--audit-file',
    env: 'EXECLET_AUDIT_FILE',
    kind: 'string',
    help: 'audit log (JSON lines), rotated by size; "none" turns it off',
    defaultText: 'STATE/audit.log',
  },
  { path: 'audit.stdout', flag: '--audit-stdout', env: 'EXECLET_AUDIT_STDOUT', kind: 'boolean', help: 'also write audit records to stdout' },
  { path: 'audit.maxBytes', flag: '--audit-max-bytes', env: 'EXECLET_AUDIT_MAX_BYTES', kind: 'integer', help: 'rotate the audit file beyond this size' },
  { path: 'audit.keep', flag: '--audit-keep', env: 'EXECLET_AUDIT_KEEP', kind: 'integer', help: 'rotated audit files kept' },
  {
    path: 'audit.failClosed',
    flag: '--audit-fail-closed',
    env: 'EXECLET_AUDIT_FAIL_CLOSED',
    kind: 'boolean',
    help: 'refuse sessions whose audit record cannot be written',
  },
  {
    path: 'audit.redact',
    flag: '--audit-redact',
    env: 'EXECLET_AUDIT_REDACT',
    kind: 'list',
    itemsPerLine: true,
    help: 'an extra regular expression (repeatable; in the environment one per line); command arguments matching one are redacted in the audit log (it runs on callers\' arguments: no nested quantifiers such as (a+)+)',
  },
  {
    path: 'sessions.idleTimeoutSeconds',
    flag: '--idle-timeout-seconds',
    env: 'EXECLET_IDLE_TIMEOUT_SECONDS',
    kind: 'integer',
    help: 'end a session after this long without input or output (a policy rule may set its own)',
  },
  {
    path: 'sessions.maxDurationSeconds',
    flag: '--max-duration-seconds',
    env: 'EXECLET_MAX_DURATION_SECONDS',
    kind: 'integer',
    help: 'end a session this long after it started (a policy rule may set its own)',
  },
  {
    path: 'sessions.pingIntervalSeconds',
    flag: '--ping-interval-seconds',
    env: 'EXECLET_PING_INTERVAL_SECONDS',
    kind: 'integer',
    help: 'WebSocket ping interval; a client that has not answered by the next ping is dropped once its kernel stops answering too (where it cannot be asked, unless it is taking its output)',
  },
  { path: 'sessions.maxPerNode', flag: '--max-sessions', env: 'EXECLET_MAX_SESSIONS', kind: 'integer', help: 'live sessions on this agent at most (429 beyond)' },
  {
    path: 'maxConnections',
    flag: '--max-connections',
    env: 'EXECLET_MAX_CONNECTIONS',
    kind: 'integer',
    help: "open client connections at most (each session is one): at the cap the oldest that is no authenticated caller's (no request of theirs in flight, no session) makes room, and only when every other is one is a new one closed at once; must be above --max-sessions (left unset, it follows a --max-sessions raised past it, + 1024)",
  },
  { path: 'sessions.maxPerUser', flag: '--max-sessions-per-user', env: 'EXECLET_MAX_SESSIONS_PER_USER', kind: 'integer', help: 'live sessions per user at most, and stream URLs not yet opened (429 beyond)' },
  {
    path: 'sessions.ratePerUserPerMinute',
    flag: '--session-rate-per-minute',
    env: 'EXECLET_SESSION_RATE_PER_MINUTE',
    kind: 'integer',
    help: 'sessions (and stream URLs) one user may start per minute (429 beyond)',
  },
  {
    path: 'sessions.outputHighWaterMarkBytes',
    flag: '--output-high-water-mark',
    env: 'EXECLET_OUTPUT_HIGH_WATER_MARK',
    kind: 'integer',
    help: 'bytes buffered towards a slow client before the process output is paused',
  },
  {
    path: 'shutdownGraceSeconds',
    flag: '--shutdown-grace-seconds',
    env: 'EXECLET_SHUTDOWN_GRACE_SECONDS',
    kind: 'integer',
    help: 'on SIGTERM or SIGINT, time to end every session before exiting',
  },
  {
    path: 'reaperIntervalSeconds',
    flag: '--reaper-interval-seconds',
    env: 'EXECLET_REAPER_INTERVAL_SECONDS',
    kind: 'integer',
    help: 'how often (at most 86400) processes left by ended sessions or an earlier agent are looked for and killed (besides a sweep --kill-grace-ms + 1 s after each session ends, at most every 5 s)',
  },
  { path: 'killGraceMs', flag: '--kill-grace-ms', env: 'EXECLET_KILL_GRACE_MS', kind: 'integer', help: 'milliseconds between SIGHUP and SIGKILL when a session ends its process' },
];

/** Defaults that depend on the environment are computed when settings are loaded. */
export function defaultSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return {
    listen: '127.0.0.1:10350',
    dockerHost: env.DOCKER_HOST && env.DOCKER_HOST.length > 0 ? env.DOCKER_HOST : 'unix:///var/run/docker.sock',
    stateDir: isRoot ? '/var/lib/execlet' : join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'execlet'),
    nodeName: hostname().toLowerCase(),
    tls: {},
    insecureSelfSignedOnNetwork: false,
    logLevel: 'info',
    killGraceMs: 1000,
    nsenter: 'auto',
    console: 'auto',
    allowedOrigins: [],
    audit: { stdout: false, maxBytes: 50 * 1024 * 1024, keep: 5, failClosed: false, redact: [] },
    sessions: {
      idleTimeoutSeconds: 30 * 60,
      maxDurationSeconds: 12 * 60 * 60,
      pingIntervalSeconds: 20,
      maxPerNode: 1000,
      maxPerUser: 100,
      ratePerUserPerMinute: 120,
      outputHighWaterMarkBytes: 1024 * 1024,
    },
    maxConnections: 4096,
    shutdownGraceSeconds: 10,
    reaperIntervalSeconds: 60,
  };
}

/** Host part and port of a validated listen address (brackets removed from IPv6). */
export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host, port: Number(listen.slice(colon + 1)) };
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function enabledFor(choice: 'auto' | 'enabled' | 'disabled', listen: string): boolean {
  return choice === 'enabled' || (choice === 'auto' && isLoopbackHost(splitListen(listen).host));
}

/** The privileged nsenter modes: `auto` enables them only while the agent listens on loopback. */
export function isNsenterEnabled(settings: Pick<Settings, 'nsenter' | 'listen'>): boolean {
  return enabledFor(settings.nsenter, settings.listen);
}

/** The built-in console: `auto` serves it only while the agent listens on loopback. */
export function isConsoleEnabled(settings: Pick<Settings, 'console' | 'listen'>): boolean {
  return enabledFor(settings.console, settings.listen);
}
