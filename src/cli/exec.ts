// `execlet exec`: runs a command in a container (or on the node) through an agent, like
// `kubectl exec`: parses the command line, works out the pod/container for the mode, builds the
// apiserver-shaped exec URL, puts the local terminal in raw mode for -t (and restores it on every
// way out), and exits with the remote command's exit code — or 255 when execlet could not run it.
import { execHelp } from './help.js';
import {
  AgentRequestError,
  authHeaders,
  booleanFlag,
  ClientConfigError,
  CONNECTION_FLAGS,
  connectionFlags,
  getJson,
  loadClientConfig,
  parseCommandLine,
  stringFlag,
  UsageError,
  type ClientConfig,
  type ConnectionFlags,
  type FlagSpec,
} from './client-config.js';
import { openExecStream, type ExecOutcome, type ExecStream, type TerminalSizeSource } from './exec-stream.js';

/** Exit code when execlet itself could not run the command (refused, unreachable, protocol error). */
export const AGENT_FAILURE_EXIT_CODE = 255;
/** Exit code for a mistake on the command line. */
export const USAGE_EXIT_CODE = 2;

export const EXEC_MODES = ['exec', 'nsenter', 'toolbox', 'node'] as const;
export type ExecMode = (typeof EXEC_MODES)[number];

/** The agent's node pod (src/target/modes.ts; not imported, to keep the client free of the agent's code). */
export const NODE_NAMESPACE = 'execlet-node';
export const NODE_CONTAINER = 'host';
const MODE_SUFFIXES = ['.nsenter', '.toolbox'] as const;

const EXEC_FLAGS: Readonly<Record<string, FlagSpec>> = {
  ...CONNECTION_FLAGS,
  namespace: { type: 'string', short: 'n' },
  container: { type: 'string', short: 'c' },
  stdin: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  mode: { type: 'string' },
  namespaces: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
};

/** What the command line asks for, before any kubeconfig is read. */
export interface ExecRequest {
  pod: string;
  /** -n as given; undefined means the context's namespace. */
  namespace: string | undefined;
  /** -c as given. */
  container: string | undefined;
  command: string[];
  stdin: boolean;
  tty: boolean;
  mode: ExecMode;
  /** --namespaces split on commas. */
  namespaces: string[];
  quiet: boolean;
  /** --kubeconfig, --server, --token, …: where to connect. */
  connection: ConnectionFlags;
}

/** Parses `execlet exec` arguments; returns 'help' for --help. Throws UsageError. */
export function parseExecArgs(argv: string[]): ExecRequest | 'help' {
  const parsed = parseCommandLine(argv, EXEC_FLAGS, 'exec');
  if (booleanFlag(parsed, 'help')) return 'help';
  const [podArg, ...extra] = parsed.positionals;
  if (podArg === undefined) throw new UsageError('a pod name is required: execlet exec POD -- COMMAND [ARG...]');
  if (parsed.afterTerminator === undefined) {
    throw new UsageError(
      extra.length > 0
        ? `put the command after "--": execlet exec ${podArg} -- ${extra.join(' ')}`
        : 'a command is required after "--": execlet exec POD -- COMMAND [ARG...]',
    );
  }
  if (extra.length > 0) throw new UsageError(`one pod only: unexpected ${extra.map((a) => JSON.stringify(a)).join(', ')} before "--"`);
  const command = parsed.afterTerminator;
  if (command.length === 0 || command[0] === '') throw new UsageError('a command is required after "--": execlet exec POD -- COMMAND [ARG...]');

  const modeText = stringFlag(parsed, 'mode') ?? 'exec';
  if (!(EXEC_MODES as readonly string[]).includes(modeText)) {
    throw new UsageError(`--mode must be one of ${EXEC_MODES.join(', ')}, got ${JSON.stringify(modeText)}`);
  }
  const mode = modeText as ExecMode;
  const pod = podArg.replace(/^pods?\//, '');
  if (pod === '') throw new UsageError(`invalid pod name ${JSON.stringify(podArg)}`);
  const namespacesText = stringFlag(parsed, 'namespaces');
  const namespaces = namespacesText === undefined ? [] : namespacesText.split(',').map((n) => n.trim()).filter((n) => n !== '');
  if (namespacesText !== undefined && namespaces.length === 0) throw new UsageError('--namespaces needs at least one name, e.g. --namespaces net,pid');
  if (namespaces.length > 0 && mode !== 'nsenter' && mode !== 'node') {
    const why = mode === 'toolbox' ? ': the toolbox view always enters net, pid, ipc and uts' : ': a Docker exec joins all of the container\'s namespaces';
    throw new UsageError(`--namespaces applies only to --mode nsenter (and node), not ${mode}${why}`);
  }
  const namespace = stringFlag(parsed, 'namespace');
  const container = stringFlag(parsed, 'container');
  checkModeFlags(mode, namespace, container);
  return {
    pod,
    namespace,
    container,
    command,
    stdin: booleanFlag(parsed, 'stdin'),
    tty: booleanFlag(parsed, 'tty'),
    mode,
    namespaces,
    quiet: booleanFlag(parsed, 'quiet'),
    connection: connectionFlags(parsed),
  };
}

/** Where the exec goes: the pod and the container name as the agent reads it (mode suffix included). */
export interface ExecTarget {
  namespace: string;
  pod: string;
  /** Undefined lets the agent default a one-container pod (exec mode only). */
  container: string | undefined;
}

/**
 * The target for a mode, before container defaulting: node mode is the pod `execlet-node/NODE`
 * with container `host`; nsenter and toolbox need a container name (to put the suffix on), which
 * `needsContainer` asks the caller to find when -c was left out.
 */
export function planTarget(request: ExecRequest, contextNamespace: string): { target: ExecTarget; needsContainer: boolean } {
  if (request.mode === 'node') return { target: { namespace: NODE_NAMESPACE, pod: request.pod, container: NODE_CONTAINER }, needsContainer: false };
  const namespace = request.namespace ?? contextNamespace;
  if (request.mode === 'exec' || request.container !== undefined) {
    const container = request.container === undefined ? undefined : containerForMode(request.container, request.mode);
    return { target: { namespace, pod: request.pod, container }, needsContainer: false };
  }
  return { target: { namespace, pod: request.pod, container: undefined }, needsContainer: true };
}

/** Flags that contradict the mode; checked before anything is read or sent. */
function checkModeFlags(mode: ExecMode, namespace: string | undefined, container: string | undefined): void {
  if (mode === 'node') {
    if (namespace !== undefined && namespace !== NODE_NAMESPACE) {
      throw new UsageError(`--mode node runs on the node named POD (pod ${NODE_NAMESPACE}/NODE): -n does not apply`);
    }
    if (container !== undefined && container !== NODE_CONTAINER) {
      throw new UsageError(`--mode node runs in the node pod's only container "${NODE_CONTAINER}": -c does not apply`);
    }
  } else if (mode !== 'exec' && container !== undefined) {
    const suffix = MODE_SUFFIXES.find((s) => container.endsWith(s));
    if (suffix) throw new UsageError(`-c ${container} already names a mode (${suffix}); drop either the suffix or --mode ${mode}`);
  }
}

/** `app` → `app.nsenter` / `app.toolbox`; other modes leave the name alone. */
export function containerForMode(container: string, mode: ExecMode): string {
  return mode === 'nsenter' || mode === 'toolbox' ? `${container}.${mode}` : container;
}

/** The single container of a Pod object, or an error listing them (as kubectl and the agent word it). */
export function onlyContainerOf(podObject: unknown, pod: string): string {
  const spec = typeof podObject === 'object' && podObject !== null ? (podObject as { spec?: { containers?: unknown } }).spec : undefined;
  const names = Array.isArray(spec?.containers)
    ? spec.containers.map((c: unknown) => (typeof c === 'object' && c !== null ? (c as { name?: unknown }).name : undefined)).filter((n): n is string => typeof n === 'string')
    : [];
  if (names.length === 1) return names[0]!;
  if (names.length === 0) throw new AgentRequestError(`pod ${pod} has no containers`);
  throw new AgentRequestError(`a container name must be specified for pod ${pod}, choose one of: [${names.join(' ')}]`);
}

/**
 * `/api/v1/namespaces/NS/pods/POD/exec?command=…&container=…&namespaces=…&stdin=true&stdout=true&stderr=true&tty=true`:
 * every `command` word in order, percent-encoded (a space is %20, never "+"); false flags are left
 * out, and stderr too with a TTY, as kubectl does.
 */
export function execRequestPath(target: ExecTarget, options: { command: string[]; stdin: boolean; tty: boolean; namespaces: string[] }): string {
  const query: Array<[string, string]> = options.command.map((word) => ['command', word]);
  if (target.container !== undefined) query.push(['container', target.container]);
  if (options.namespaces.length > 0) query.push(['namespaces', options.namespaces.join(',')]);
  if (options.stdin) query.push(['stdin', 'true']);
  query.push(['stdout', 'true']);
  if (!options.tty) query.push(['stderr', 'true']);
  if (options.tty) query.push(['tty', 'true']);
  const queryText = query.map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join('&');
  return `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/exec?${queryText}`;
}

/** `https://host:port/prefix` + path → `wss://host:port/prefix/path`. */
export function webSocketUrl(server: string, path: string): string {
  return `${server.replace(/^https:/, 'wss:')}${path}`;
}

/** Exit code for an outcome: the remote's own code, 255 for agent-side failures. */
export function exitCodeOf(outcome: ExecOutcome): number {
  switch (outcome.kind) {
    case 'exited':
      return outcome.code;
    case 'failed':
      return AGENT_FAILURE_EXIT_CODE;
    case 'aborted':
      return outcome.exitCode;
  }
}

// ---------------------------------------------------------------------------------------------
// The local terminal and the process around a session

/** The terminal size from whichever of stdout and stderr is a terminal, following its resizes. */
function localTerminalSize(): TerminalSizeSource | undefined {
  const out = process.stdout.isTTY ? process.stdout : process.stderr.isTTY ? process.stderr : undefined;
  if (!out) return undefined;
  return {
    size: () => (out.columns && out.rows ? { width: out.columns, height: out.rows } : undefined),
    onResize(listener) {
      out.on('resize', listener);
      return () => out.off('resize', listener);
    },
  };
}

const SIGNAL_EXIT_CODES: Readonly<Record<'SIGHUP' | 'SIGINT' | 'SIGTERM', number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
/**
 * After a signal ended the session, how long what was already written to stdout/stderr may take
 * to leave before the CLI exits anyway: a reader that stalled (a full pipe) must not keep it alive.
 */
const SIGNAL_EXIT_GRACE_MS = 1000;

/**
 * For the lifetime of a session: raw mode on the local terminal (once the stream is open) that is
 * undone on every way out — normal end, error, SIGINT/SIGTERM/SIGHUP (which also end the session),
 * an uncaught exception, and process exit.
 */
class SessionGuard {
  #raw = false;
  #stream: ExecStream | undefined;
  readonly #detach: Array<() => void> = [];

  constructor(private readonly terminalIn: NodeJS.ReadStream | undefined) {
    const onExit = () => this.restoreTerminal();
    process.on('exit', onExit);
    this.#detach.push(() => process.off('exit', onExit));
    for (const signal of Object.keys(SIGNAL_EXIT_CODES) as Array<keyof typeof SIGNAL_EXIT_CODES>) {
      const onSignal = () => {
        this.restoreTerminal();
        if (!this.#stream) process.exit(SIGNAL_EXIT_CODES[signal]);
        this.#stream.abort(`interrupted by ${signal}`, SIGNAL_EXIT_CODES[signal]);
        setTimeout(() => process.exit(SIGNAL_EXIT_CODES[signal]), SIGNAL_EXIT_GRACE_MS).unref();
      };
      process.on(signal, onSignal);
      this.#detach.push(() => process.off(signal, onSignal));
    }
    const onUncaught = (err: Error) => {
      this.restoreTerminal();
      process.stderr.write(`error: internal error in execlet exec: ${err.stack ?? err.message}\n`);
      process.exit(AGENT_FAILURE_EXIT_CODE);
    };
    process.on('uncaughtException', onUncaught);
    this.#detach.push(() => process.off('uncaughtException', onUncaught));
  }

  attach(stream: ExecStream): void {
    this.#stream = stream;
  }

  enterRawMode(): void {
    if (!this.terminalIn || this.#raw) return;
    this.terminalIn.setRawMode(true);
    this.#raw = true;
  }

  restoreTerminal(): void {
    if (!this.#raw || !this.terminalIn) return;
    this.#raw = false;
    try {
      this.terminalIn.setRawMode(false);
    } catch {
      // The terminal is gone (hang-up): nothing left to restore.
    }
  }

  dispose(): void {
    this.restoreTerminal();
    for (const detach of this.#detach.splice(0)) detach();
  }
}

function warn(request: ExecRequest, message: string): void {
  if (!request.quiet) process.stderr.write(`warning: ${message}\n`);
}

/** Fills in the container for nsenter/toolbox without -c: the pod's only container. */
async function resolveTarget(request: ExecRequest, config: ClientConfig): Promise<ExecTarget> {
  const { target, needsContainer } = planTarget(request, config.namespace);
  if (!needsContainer) return target;
  const path = `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}`;
  const container = onlyContainerOf(await getJson(config, path), target.pod);
  return { ...target, container: containerForMode(container, request.mode) };
}

/** `execlet exec …`: the process exit code. */
export async function execCommand(argv: string[]): Promise<number> {
  let request: ExecRequest | 'help';
  try {
    request = parseExecArgs(argv);
  } catch (err) {
    return reportFailure(err);
  }
  if (request === 'help') {
    process.stdout.write(execHelp());
    return 0;
  }

  try {
    const config = loadClientConfig(request.connection);
    const target = await resolveTarget(request, config);

    let tty = request.tty;
    if (tty && !request.stdin) {
      warn(request, '-t needs -i (as in kubectl): running without a TTY');
      tty = false;
    } else if (tty && !process.stdin.isTTY) {
      warn(request, 'Unable to use a TTY - input is not a terminal or the right kind of file');
      tty = false;
    }

    const path = execRequestPath(target, { command: request.command, stdin: request.stdin, tty, namespaces: request.namespaces });
    const guard = new SessionGuard(tty ? process.stdin : undefined);
    try {
      const terminal = tty ? localTerminalSize() : undefined;
      const stream = openExecStream({
        url: webSocketUrl(config.server, path),
        headers: authHeaders(config),
        tls: config.tls,
        stdin: request.stdin ? process.stdin : null,
        stdout: process.stdout,
        stderr: process.stderr,
        ...(terminal ? { terminal } : {}),
        onOpen: () => guard.enterRawMode(),
      });
      guard.attach(stream);
      const outcome = await stream.outcome;
      guard.restoreTerminal();
      if (outcome.kind === 'aborted') await Promise.race([stream.closed, new Promise((resolve) => setTimeout(resolve, 500).unref())]);
      if (request.stdin) process.stdin.destroy();
      if (outcome.kind === 'failed') process.stderr.write(`error: ${outcome.message}\n`);
      return exitCodeOf(outcome);
    } finally {
      guard.dispose();
    }
  } catch (err) {
    return reportFailure(err);
  }
}

/** Prints a failure the way kubectl does and picks its exit code. */
function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\nSee 'execlet exec --help' for usage.\n`);
    return USAGE_EXIT_CODE;
  }
  if (err instanceof ClientConfigError || err instanceof AgentRequestError) {
    process.stderr.write(`error: ${err.message}\n`);
    return AGENT_FAILURE_EXIT_CODE;
  }
  process.stderr.write(`error: internal error in execlet exec: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return AGENT_FAILURE_EXIT_CODE;
}
