// Loads settings in layers — defaults ← YAML config file ← EXECLET_* environment ← flags — and
// validates the result with the one zod schema; every error names the setting and where it came from.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseYaml } from './yaml.js';
import { z } from 'zod';
import { defaultSettings, SETTINGS, settingsSchema, type SettingDescriptor, type Settings } from './settings.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadedSettings {
  settings: Settings;
  /** Where each explicitly set value came from (`--listen`, `EXECLET_LISTEN`, `config file …`). */
  sources: Map<string, string>;
  printConfig: boolean;
  help: boolean;
}

type Layer = Record<string, unknown>;

function setPath(target: Layer, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Layer;
  }
  node[keys[keys.length - 1]!] = value;
}

function mergeInto(target: Layer, source: Layer): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (value && typeof value === 'object' && !Array.isArray(value) && existing && typeof existing === 'object' && !Array.isArray(existing)) {
      mergeInto(existing as Layer, value as Layer);
    } else {
      target[key] = value;
    }
  }
}

function leafPaths(layer: Layer, prefix = ''): string[] {
  return Object.entries(layer).flatMap(([key, value]) =>
    value && typeof value === 'object' && !Array.isArray(value) ? leafPaths(value as Layer, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

function convertText(descriptor: SettingDescriptor, raw: string, origin: string): unknown {
  switch (descriptor.kind) {
    case 'string':
      return raw;
    case 'list':
      // A flag's value is one item where items may hold commas; the environment's, one per line.
      if (descriptor.itemsPerLine && origin === descriptor.flag) return raw.length > 0 ? [raw] : [];
      return raw
        .split(descriptor.itemsPerLine ? '\n' : ',')
        .map((item) => item.trim())
        .filter((item) => item.length > 0);
    case 'integer': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`invalid setting ${descriptor.path} (from ${origin}): expected an integer, got ${JSON.stringify(raw)}`);
      return Number(raw.trim());
    }
    case 'boolean': {
      const lowered = raw.trim().toLowerCase();
      // An empty value (a template left unfilled, say) is not taken for true.
      if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
      if (['0', 'false', 'no', 'off'].includes(lowered)) return false;
      throw new ConfigError(`invalid setting ${descriptor.path} (from ${origin}): expected true or false, got ${JSON.stringify(raw)}`);
    }
  }
}

function readConfigFile(file: string): Layer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${file} must hold a mapping of settings`);
  return parsed as Layer;
}

function envLayer(env: NodeJS.ProcessEnv, sources: Map<string, string>): Layer {
  const layer: Layer = {};
  for (const descriptor of SETTINGS) {
    const raw = env[descriptor.env];
    if (raw === undefined) continue;
    setPath(layer, descriptor.path, convertText(descriptor, raw, descriptor.env));
    sources.set(descriptor.path, descriptor.env);
  }
  return layer;
}

interface ParsedFlags {
  layer: Layer;
  configFile: string | undefined;
  printConfig: boolean;
  help: boolean;
}

function flagLayer(argv: string[], sources: Map<string, string>): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    config: { type: 'string' },
    'print-config': { type: 'boolean' },
    help: { type: 'boolean' },
  };
  for (const descriptor of SETTINGS) {
    const name = descriptor.flag.slice(2);
    options[name] = descriptor.kind === 'boolean' ? { type: 'boolean' } : descriptor.kind === 'list' ? { type: 'string', multiple: true } : { type: 'string' };
    // --no-NAME sets a boolean false: a flag can then override a config file or the environment.
    if (descriptor.kind === 'boolean') options[`no-${name}`] = { type: 'boolean' };
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }) as { values: Record<string, string | boolean | string[] | undefined> });
  } catch (err) {
    const message = (err as Error).message;
    const valued = /^Option '--([^'=\s]+)' does not take an argument/.exec(message)?.[1];
    const hint = valued && options[`no-${valued}`] ? `; to turn it off, give --no-${valued}` : '';
    throw new ConfigError(`${message}${hint} (see execlet serve --help)`);
  }
  const layer: Layer = {};
  for (const descriptor of SETTINGS) {
    const name = descriptor.flag.slice(2);
    let value = values[name];
    let source = descriptor.flag;
    if (descriptor.kind === 'boolean' && values[`no-${name}`] !== undefined) {
      if (value !== undefined) throw new ConfigError(`${descriptor.flag} and --no-${name} are both given (see execlet serve --help)`);
      value = false;
      source = `--no-${name}`;
    }
    if (value === undefined) continue;
    const converted =
      typeof value === 'boolean' ? value : Array.isArray(value) ? value.flatMap((v) => convertText(descriptor, v, descriptor.flag) as string[]) : convertText(descriptor, value, descriptor.flag);
    setPath(layer, descriptor.path, converted);
    sources.set(descriptor.path, source);
  }
  return {
    layer,
    configFile: values.config as string | undefined,
    printConfig: values['print-config'] === true,
    help: values.help === true,
  };
}

function describeIssue(issue: z.core.$ZodIssue, sources: Map<string, string>): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const where = path ? ` in ${path}` : '';
    return `unknown setting${issue.keys.length > 1 ? 's' : ''}${where}: ${issue.keys.join(', ')}`;
  }
  // An element of a list is reported with the list's source.
  const origin = issue.path.map((_, i) => sources.get(issue.path.slice(0, issue.path.length - i).map(String).join('.'))).find(Boolean);
  return `invalid setting ${path || '(root)'}${origin ? ` (from ${origin})` : ''}: ${issue.message}`;
}

/** Room a default maxConnections leaves beyond a raised sessions.maxPerNode: probes, scrapes, API calls. */
const CONNECTIONS_BEYOND_SESSIONS = 1024;

/** Loads and validates the settings of `execlet serve`; throws ConfigError with a readable message. */
export function loadSettings(argv: string[], env: NodeJS.ProcessEnv = process.env): LoadedSettings {
  const sources = new Map<string, string>();
  const flagSources = new Map<string, string>();
  const flags = flagLayer(argv, flagSources);
  // An empty --config is a mistake (a variable that expanded to nothing), not "no file": it would hide EXECLET_CONFIG's.
  if (flags.configFile === '') throw new ConfigError('--config needs the path of a config file (it was given an empty one)');
  const configFile = flags.configFile ?? env.EXECLET_CONFIG;
  const merged: Layer = defaultSettings(env) as unknown as Layer;
  // The one default taken from the environment: say so when it is wrong.
  if (env.DOCKER_HOST) sources.set('dockerHost', 'DOCKER_HOST');
  if (configFile) {
    const fileLayer = readConfigFile(configFile);
    for (const path of leafPaths(fileLayer)) sources.set(path, `config file ${configFile}`);
    mergeInto(merged, fileLayer);
  }
  // Later layers override earlier ones, value and recorded source alike.
  mergeInto(merged, envLayer(env, sources));
  mergeInto(merged, flags.layer);
  for (const [path, origin] of flagSources) sources.set(path, origin);

  const result = settingsSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => describeIssue(issue, sources)).join('\n'));
  }
  const { maxConnections, sessions } = result.data;
  if (maxConnections <= sessions.maxPerNode) {
    const origin = sources.get('maxConnections');
    // Left at its default, the cap follows a raised session limit (configs written before it existed).
    if (origin === undefined) result.data.maxConnections = sessions.maxPerNode + CONNECTIONS_BEYOND_SESSIONS;
    else {
      throw new ConfigError(
        `invalid setting maxConnections (from ${origin}): ${maxConnections} leaves no room beyond sessions.maxPerNode (${sessions.maxPerNode}): every session is a connection, and probes, scrapes and API calls need more`,
      );
    }
  }
  return { settings: result.data, sources, printConfig: flags.printConfig, help: flags.help };
}
