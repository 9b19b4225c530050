// `execlet targets`: what the caller may reach on an agent (GET /v1/targets), as a kubectl-style
// table (NAMESPACE POD CONTAINER STATE MODES) or as the agent's JSON.
import { z } from 'zod';
import { targetsHelp } from './help.js';
import {
  AgentRequestError,
  booleanFlag,
  ClientConfigError,
  CONNECTION_FLAGS,
  connectionFlags,
  getJson,
  loadClientConfig,
  parseCommandLine,
  stringFlag,
  UsageError,
  type FlagSpec,
} from './client-config.js';

const TARGETS_FLAGS: Readonly<Record<string, FlagSpec>> = {
  ...CONNECTION_FLAGS,
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

const OUTPUT_FORMATS = ['table', 'json'] as const;

const targetsResponseSchema = z.looseObject({
  node: z.string().optional(),
  user: z.string().optional(),
  targets: z.array(
    z.looseObject({
      namespace: z.string(),
      pod: z.string(),
      container: z.string(),
      state: z.string().optional(),
      modes: z.array(z.string()),
    }),
  ),
});

export type TargetsResponse = z.infer<typeof targetsResponseSchema>;

/** Columns separated by three spaces, each as wide as its widest cell (kubectl's plain output). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('   ')
      .trimEnd();
  return [header, ...rows].map(line).join('\n') + '\n';
}

export function targetsTable(response: TargetsResponse): string {
  const rows = response.targets.map((t) => [t.namespace, t.pod, t.container, t.state ?? '', t.modes.join(',')]);
  return formatTable(['NAMESPACE', 'POD', 'CONTAINER', 'STATE', 'MODES'], rows);
}

/** `execlet targets …`: the process exit code (0, 1 when the agent could not be asked, 2 for usage). */
export async function targetsCommand(argv: string[]): Promise<number> {
  try {
    const parsed = parseCommandLine(argv, TARGETS_FLAGS, 'targets');
    if (booleanFlag(parsed, 'help')) {
      process.stdout.write(targetsHelp());
      return 0;
    }
    const extra = [...parsed.positionals, ...(parsed.afterTerminator ?? [])];
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: execlet targets takes flags only`);
    const output = stringFlag(parsed, 'output') ?? 'table';
    if (!(OUTPUT_FORMATS as readonly string[]).includes(output)) {
      throw new UsageError(`-o must be one of ${OUTPUT_FORMATS.join(', ')}, got ${JSON.stringify(output)}`);
    }
    const config = loadClientConfig(connectionFlags(parsed));
    const body = await getJson(config, '/v1/targets');
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      return 0;
    }
    const checked = targetsResponseSchema.safeParse(body);
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      throw new AgentRequestError(`the agent's /v1/targets answer is not what execlet expects: ${issue.path.join('.')}: ${issue.message}`);
    }
    if (checked.data.targets.length === 0) {
      process.stderr.write(`No targets found${checked.data.node ? ` on node ${checked.data.node}` : ''}${checked.data.user ? ` for user ${checked.data.user}` : ''}.\n`);
      return 0;
    }
    process.stdout.write(targetsTable(checked.data));
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\nSee 'execlet targets --help' for usage.\n`);
      return 2;
    }
    if (err instanceof ClientConfigError || err instanceof AgentRequestError) {
      process.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
