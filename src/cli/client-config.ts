// Where the client commands (`execlet exec`, `execlet targets`) connect and with which credentials:
// reads a kubeconfig (the one `execlet serve` writes, $KUBECONFIG, or --kubeconfig), takes its
// current context's server, CA, token or client certificate and namespace, applies the --server and
// --token overrides, and makes authenticated JSON GETs with the result.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isBearerTokenText } from '../auth/bearer-token.js';
import { ForbiddenYamlKey, parseYaml } from '../config/yaml.js';
import { z } from 'zod';
import { defaultSettings } from '../config/settings.js';

/** Connection flags shared by every client command, as given on the command line. */
export interface ConnectionFlags {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  server?: string | undefined;
  token?: string | undefined;
  certificateAuthority?: string | undefined;
  insecureSkipTlsVerify?: boolean | undefined;
}

/** TLS material for the connection; the names are those `ws` and `https` accept. */
export interface ClientTls {
  ca?: string;
  cert?: string;
  key?: string;
  /** From the cluster's tls-server-name: the name the serving certificate must carry. */
  servername?: string;
  rejectUnauthorized: boolean;
}

export interface ClientConfig {
  /** `https://host:port[/prefix]`, without a trailing slash. */
  server: string;
  /** The context's namespace, else `default`. */
  namespace: string;
  token?: string;
  tls: ClientTls;
  /** Where the settings came from, for error messages: `kubeconfig /x (context c)` or `--server`. */
  source: string;
}

export class ClientConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientConfigError';
  }
}

/** An HTTP request the agent refused or that could not be made; the message is ready to print. */
export class AgentRequestError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
    this.name = 'AgentRequestError';
  }
}

// ---------------------------------------------------------------------------------------------
// The command line

/** A mistake on the command line: the command prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
}

/** Flags every client command takes to find the agent and its credentials. */
export const CONNECTION_FLAGS: Readonly<Record<string, FlagSpec>> = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  server: { type: 'string', short: 's' },
  token: { type: 'string' },
  'certificate-authority': { type: 'string' },
  'insecure-skip-tls-verify': { type: 'boolean' },
};

export interface ParsedCommandLine {
  /** Flag values by long name; the last occurrence wins. */
  values: Map<string, string | boolean>;
  /** Positional arguments before `--`. */
  positionals: string[];
  /** Everything after the first `--`, untouched; undefined when there was no `--`. */
  afterTerminator: string[] | undefined;
}

/**
 * Parses `argv` with node:util parseArgs, flags and positionals in any order until `--`. Unlike
 * parseArgs' strict mode, every mistake is reported as a UsageError naming the flag as written.
 */
export function parseCommandLine(argv: string[], flags: Readonly<Record<string, FlagSpec>>, command: string): ParsedCommandLine {
  const { tokens } = parseArgs({ args: argv, options: { ...flags }, strict: false, allowPositionals: true, tokens: true });
  const parsed: ParsedCommandLine = { values: new Map(), positionals: [], afterTerminator: undefined };
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      parsed.afterTerminator = argv.slice(token.index + 1);
      break;
    }
    if (token.kind === 'positional') {
      parsed.positionals.push(token.value);
      continue;
    }
    const spec = Object.hasOwn(flags, token.name) ? flags[token.name] : undefined;
    if (!spec) throw new UsageError(`unknown flag ${token.rawName} for "execlet ${command}"`);
    if (spec.type === 'boolean') {
      if (token.inlineValue) throw new UsageError(`flag ${token.rawName} takes no value (got ${JSON.stringify(token.value)})`);
      parsed.values.set(token.name, true);
    } else {
      // Without strict mode parseArgs would take a following "--" as the value.
      if (token.value === undefined || (!token.inlineValue && token.value === '--')) throw new UsageError(`flag ${token.rawName} needs a value`);
      parsed.values.set(token.name, token.value);
    }
  }
  return parsed;
}

export function stringFlag(parsed: ParsedCommandLine, name: string): string | undefined {
  const value = parsed.values.get(name);
  return typeof value === 'string' ? value : undefined;
}

export function booleanFlag(parsed: ParsedCommandLine, name: string): boolean {
  return parsed.values.get(name) === true;
}

export function connectionFlags(parsed: ParsedCommandLine): ConnectionFlags {
  return {
    kubeconfig: stringFlag(parsed, 'kubeconfig'),
    context: stringFlag(parsed, 'context'),
    server: stringFlag(parsed, 'server'),
    token: stringFlag(parsed, 'token'),
    certificateAuthority: stringFlag(parsed, 'certificate-authority'),
    insecureSkipTlsVerify: parsed.values.has('insecure-skip-tls-verify') ? true : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// The kubeconfig file

const clusterSchema = z.looseObject({
  server: z.string().optional(),
  'certificate-authority': z.string().optional(),
  'certificate-authority-data': z.string().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(),
  'tls-server-name': z.string().optional(),
});
const userSchema = z.looseObject({
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-certificate-data': z.string().optional(),
  'client-key': z.string().optional(),
  'client-key-data': z.string().optional(),
  exec: z.unknown().optional(),
  'auth-provider': z.unknown().optional(),
  username: z.string().optional(),
});
const contextSchema = z.looseObject({
  cluster: z.string().optional(),
  user: z.string().optional(),
  namespace: z.string().optional(),
});
const kubeconfigSchema = z.looseObject({
  clusters: z.array(z.looseObject({ name: z.string(), cluster: clusterSchema.nullish() })).nullish(),
  users: z.array(z.looseObject({ name: z.string(), user: userSchema.nullish() })).nullish(),
  contexts: z.array(z.looseObject({ name: z.string(), context: contextSchema.nullish() })).nullish(),
  'current-context': z.string().nullish(),
});

type Cluster = z.infer<typeof clusterSchema>;
type User = z.infer<typeof userSchema>;
type Context = z.infer<typeof contextSchema>;

/** One entry with the file it came from (relative paths in it are relative to that file). */
interface Entry<T> {
  value: T;
  file: string;
}

/** The kubeconfig files merged the way kubectl merges $KUBECONFIG: the first file to define a name wins. */
interface MergedKubeconfig {
  files: string[];
  clusters: Map<string, Entry<Cluster>>;
  users: Map<string, Entry<User>>;
  contexts: Map<string, Entry<Context>>;
  currentContext: string | undefined;
}

/** The kubeconfig `execlet serve` writes: STATE/kubeconfig for the default state dir. */
export function stateDirKubeconfig(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultSettings(env).stateDir, 'kubeconfig');
}

/**
 * The kubeconfig files to read and whether the user named them: --kubeconfig FILE, else the
 * $KUBECONFIG list, else the state dir's kubeconfig.
 */
export function kubeconfigPaths(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { paths: string[]; named: 'flag' | 'env' | 'default' } {
  // As kubectl: an empty --kubeconfig is the flag's default, not a path (it read the current directory).
  if (flag !== undefined && flag !== '') return { paths: [flag], named: 'flag' };
  const fromEnv = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) return { paths: fromEnv, named: 'env' };
  return { paths: [stateDirKubeconfig(env)], named: 'default' };
}

function errorText(err: unknown): string {
  if (err instanceof Error) return 'code' in err && typeof err.code === 'string' && err.code === 'ENOENT' ? 'no such file' : err.message;
  return String(err);
}

/**
 * What is wrong with a kubeconfig's YAML, and where — never the text around it: the yaml library's
 * message quotes the offending lines, which may be a token or a key.
 */
function yamlErrorText(err: unknown): string {
  if (err instanceof ForbiddenYamlKey) return err.message;
  const { code, linePos } = err as { code?: unknown; linePos?: Array<{ line: number; col: number }> };
  if (typeof code !== 'string') return 'it does not parse';
  const at = linePos?.[0] ? ` at line ${linePos[0].line}, column ${linePos[0].col}` : '';
  return `${code.toLowerCase().replaceAll('_', ' ')}${at}`;
}

function isMissingFile(err: unknown): boolean {
  return err instanceof Error && 'code' in err && err.code === 'ENOENT';
}

function parseKubeconfigFile(file: string, text: string): z.infer<typeof kubeconfigSchema> {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    throw new ClientConfigError(`kubeconfig ${file} is not valid YAML: ${yamlErrorText(err)}`);
  }
  const parsed = kubeconfigSchema.safeParse(document ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ClientConfigError(`kubeconfig ${file}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Reads and merges the files; missing files are skipped (as kubectl does) and the list of those read is returned. */
export function readKubeconfigs(paths: string[], readText: (path: string) => string = (p) => readFileSync(p, 'utf8')): MergedKubeconfig {
  const merged: MergedKubeconfig = { files: [], clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: undefined };
  for (const path of paths) {
    const file = resolve(path);
    let text: string;
    try {
      text = readText(file);
    } catch (err) {
      if (isMissingFile(err)) continue;
      throw new ClientConfigError(`cannot read kubeconfig ${file}: ${errorText(err)}`);
    }
    const config = parseKubeconfigFile(file, text);
    merged.files.push(file);
    const add = <T>(target: Map<string, Entry<T>>, name: string, value: T | null | undefined, empty: T) => {
      if (!target.has(name)) target.set(name, { value: value ?? empty, file });
    };
    for (const item of config.clusters ?? []) add(merged.clusters, item.name, item.cluster, {});
    for (const item of config.users ?? []) add(merged.users, item.name, item.user, {});
    for (const item of config.contexts ?? []) add(merged.contexts, item.name, item.context, {});
    if (merged.currentContext === undefined && config['current-context']) merged.currentContext = config['current-context'];
  }
  return merged;
}

// ---------------------------------------------------------------------------------------------
// Resolution

/** Reads a file named in a kubeconfig (relative to that kubeconfig's directory) or on the command line. */
function readReferencedFile(path: string, relativeTo: string | undefined, what: string, readText: (path: string) => string): string {
  const full = relativeTo !== undefined && !isAbsolute(path) ? join(dirname(relativeTo), path) : resolve(path);
  try {
    return readText(full);
  } catch (err) {
    throw new ClientConfigError(`cannot read ${what} ${full}: ${errorText(err)}`);
  }
}

/** `*-data` fields are base64 PEM; anything that does not decode to PEM is refused here rather than by TLS later. */
function decodePemData(data: string, what: string): string {
  const text = Buffer.from(data.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (!text.includes('-----BEGIN ')) throw new ClientConfigError(`${what} is not base64-encoded PEM`);
  return text;
}

/** A PEM from either a `-data` field or a file field; the data form wins, as in client-go. */
function pemFrom(data: string | undefined, file: string | undefined, kubeconfigFile: string, what: string, readText: (path: string) => string): string | undefined {
  if (data) return decodePemData(data, `${what}-data in ${kubeconfigFile}`);
  if (file) return readReferencedFile(file, kubeconfigFile, what, readText);
  return undefined;
}

function normalizeServer(server: string, from: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ClientConfigError(`server ${JSON.stringify(server)} (${from}) is not a URL: expected https://HOST:PORT`);
  }
  if (url.protocol !== 'https:') {
    throw new ClientConfigError(`server ${server} (${from}) must be an https:// URL: execlet only serves TLS, and a token must not travel in clear`);
  }
  if (url.search || url.hash) throw new ClientConfigError(`server ${server} (${from}) must not have a query or fragment`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  readText?: (path: string) => string;
}

/**
 * The server, credentials and default namespace for a client command. Throws ClientConfigError
 * naming the file, context, cluster or user that is missing a piece.
 */
export function loadClientConfig(flags: ConnectionFlags, options: LoadOptions = {}): ClientConfig {
  const env = options.env ?? process.env;
  const readText = options.readText ?? ((p: string) => readFileSync(p, 'utf8'));
  const { paths, named } = kubeconfigPaths(flags.kubeconfig, env);
  const merged = readKubeconfigs(paths, readText);

  if (merged.files.length === 0) {
    const where = paths.map((p) => resolve(p)).join(', ');
    if (named === 'flag') throw new ClientConfigError(`kubeconfig ${where} not found`);
    if (flags.server === undefined) {
      throw new ClientConfigError(
        `no kubeconfig found (looked for ${where}${named === 'env' ? ', from $KUBECONFIG' : ', the one "execlet serve" writes'}): ` +
          'pass --kubeconfig FILE, or --server URL with --token TOKEN',
      );
    }
    return fromFlagsOnly(flags, readText);
  }

  const fileList = merged.files.join(':');
  const contextName = flags.context ?? merged.currentContext;
  if (!contextName) throw new ClientConfigError(`kubeconfig ${fileList} has no current-context: pass --context NAME`);
  const context = merged.contexts.get(contextName);
  if (!context) {
    const known = [...merged.contexts.keys()];
    throw new ClientConfigError(`context "${contextName}" not found in kubeconfig ${fileList}${known.length ? ` (it has: ${known.join(', ')})` : ''}`);
  }
  const source = `kubeconfig ${fileList} (context "${contextName}")`;

  const clusterName = context.value.cluster;
  const cluster = clusterName !== undefined ? merged.clusters.get(clusterName) : undefined;
  if (!cluster && flags.server === undefined) {
    throw new ClientConfigError(
      clusterName === undefined ? `context "${contextName}" in ${context.file} names no cluster` : `cluster "${clusterName}" of context "${contextName}" not found in kubeconfig ${fileList}`,
    );
  }
  const serverText = flags.server ?? cluster?.value.server;
  if (!serverText) throw new ClientConfigError(`cluster "${clusterName}" in ${cluster?.file ?? fileList} has no server: pass --server URL`);
  const server = normalizeServer(serverText, flags.server !== undefined ? '--server' : `cluster "${clusterName}" in ${cluster?.file}`);

  const userName = context.value.user;
  const user = userName !== undefined ? merged.users.get(userName) : undefined;
  if (userName !== undefined && !user && flags.token === undefined) {
    throw new ClientConfigError(`user "${userName}" of context "${contextName}" not found in kubeconfig ${fileList}`);
  }

  const tls: ClientTls = { rejectUnauthorized: !(flags.insecureSkipTlsVerify ?? cluster?.value['insecure-skip-tls-verify'] ?? false) };
  const [ca, caFrom] = flags.certificateAuthority
    ? [readReferencedFile(flags.certificateAuthority, undefined, 'certificate authority (--certificate-authority)', readText), '--certificate-authority']
    : cluster
      ? [
          pemFrom(cluster.value['certificate-authority-data'], cluster.value['certificate-authority'], cluster.file, `certificate-authority of cluster "${clusterName}"`, readText),
          `the certificate-authority of cluster "${clusterName}" in ${cluster.file}`,
        ]
      : [undefined, ''];
  if (ca !== undefined) tls.ca = checkedCertificateAuthority(ca, caFrom);
  if (cluster?.value['tls-server-name']) tls.servername = cluster.value['tls-server-name'];

  let token = flags.token;
  let tokenFrom = 'given with --token';
  if (user) {
    const u = user.value;
    const where = `user "${userName}" in ${user.file}`;
    if (token === undefined) {
      // As client-go: a tokenFile that reads takes precedence over token (it is the one kept fresh).
      if (u.tokenFile) {
        try {
          token = readReferencedFile(u.tokenFile, user.file, `tokenFile of ${where}`, readText).trim() || undefined;
          tokenFrom = `in the tokenFile of ${where}`;
        } catch (err) {
          if (!u.token) throw err;
        }
        if (token === undefined && !u.token) throw new ClientConfigError(`the tokenFile of ${where} is empty`);
      }
      if (token === undefined && u.token) {
        token = u.token;
        tokenFrom = `of ${where}`;
      }
    }
    const cert = pemFrom(u['client-certificate-data'], u['client-certificate'], user.file, `client-certificate of ${where}`, readText);
    const key = pemFrom(u['client-key-data'], u['client-key'], user.file, `client-key of ${where}`, readText);
    if ((cert === undefined) !== (key === undefined)) {
      throw new ClientConfigError(`${where} has a client ${cert === undefined ? 'key' : 'certificate'} without its ${cert === undefined ? 'certificate' : 'key'}`);
    }
    if (cert !== undefined && key !== undefined) {
      checkClientCertificate(cert, key, where);
      tls.cert = cert;
      tls.key = key;
    }
    if (token === undefined && tls.cert === undefined) {
      const unsupported = u.exec !== undefined ? 'an exec credential plugin' : u['auth-provider'] !== undefined ? 'an auth-provider' : u.username !== undefined ? 'a username and password' : undefined;
      throw new ClientConfigError(
        unsupported
          ? `${where} uses ${unsupported}, which execlet does not support: give it a token or a client certificate, or pass --token TOKEN`
          : `${where} has no token and no client certificate: pass --token TOKEN`,
      );
    }
  } else if (token === undefined) {
    throw new ClientConfigError(`context "${contextName}" in ${context.file} names no user: pass --token TOKEN`);
  }

  const config: ClientConfig = { server, namespace: context.value.namespace || 'default', tls, source };
  if (token !== undefined) config.token = checkedToken(token, tokenFrom);
  return config;
}

/** The token, or a ClientConfigError naming where it came from (`from`: "given with --token", "of user …"), never the token. */
function checkedToken(token: string, from: string): string {
  if (!isBearerTokenText(token)) {
    throw new ClientConfigError(`the token ${from} holds a character other than printable ASCII (a space, a line break, a letter outside ASCII): no Authorization header can carry it`);
  }
  return token;
}

/**
 * A certificate authority that is not a PEM certificate is refused here, naming where it came from:
 * TLS would only say later that it cannot verify the server's certificate.
 */
function checkedCertificateAuthority(pem: string, from: string): string {
  try {
    new X509Certificate(pem);
  } catch {
    throw new ClientConfigError(`${from} is not a PEM certificate`);
  }
  return pem;
}

/** A client certificate and key that TLS could not use together are refused here, naming the user. */
function checkClientCertificate(cert: string, key: string, where: string): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ClientConfigError(`the client-certificate of ${where} is not a PEM certificate`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ClientConfigError(`the client-key of ${where} is not a PEM private key`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new ClientConfigError(`the client-key of ${where} is not the key of its client-certificate`);
}

/** No kubeconfig at all: --server and --token (and maybe --certificate-authority) are everything. */
function fromFlagsOnly(flags: ConnectionFlags, readText: (path: string) => string): ClientConfig {
  const server = normalizeServer(flags.server!, '--server');
  if (flags.token === undefined) throw new ClientConfigError('--server without a kubeconfig needs --token TOKEN');
  const tls: ClientTls = { rejectUnauthorized: !flags.insecureSkipTlsVerify };
  if (flags.certificateAuthority) {
    tls.ca = checkedCertificateAuthority(readReferencedFile(flags.certificateAuthority, undefined, 'certificate authority (--certificate-authority)', readText), '--certificate-authority');
  }
  return { server, namespace: 'default', token: checkedToken(flags.token, 'given with --token'), tls, source: '--server' };
}

// ---------------------------------------------------------------------------------------------
// Requests

export function authHeaders(config: ClientConfig): Record<string, string> {
  return config.token !== undefined ? { authorization: `Bearer ${config.token}` } : {};
}

/**
 * The message of a refusal body: a Kubernetes Status's `message` (what kubectl prints), else the
 * HTTP status and the start of the body.
 */
export function refusalMessage(statusCode: number | undefined, body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'message' in parsed && typeof parsed.message === 'string' && parsed.message !== '') {
      return parsed.message;
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.trim().replace(/\s+/g, ' ').slice(0, 300);
  return `the server answered HTTP ${statusCode ?? '?'}${text ? `: ${text}` : ' with an empty body'}`;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** GET `path` on the server with the credentials; resolves to the parsed JSON of a 2xx answer. */
export function getJson(config: ClientConfig, path: string): Promise<unknown> {
  const url = `${config.server}${path}`;
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'GET',
        headers: { ...authHeaders(config), accept: 'application/json' },
        agent: false,
        timeout: REQUEST_TIMEOUT_MS,
        ...config.tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(new AgentRequestError(`reading the answer of GET ${url} failed: ${err.message}`)));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          if (code < 200 || code > 299) {
            reject(new AgentRequestError(refusalMessage(code, body), code));
            return;
          }
          try {
            resolvePromise(JSON.parse(body));
          } catch (err) {
            reject(new AgentRequestError(`GET ${url} answered with invalid JSON: ${errorText(err)}`, code));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', (err) => reject(new AgentRequestError(`cannot reach ${config.server} (${config.source}): ${err.message}`)));
    req.end();
  });
}
