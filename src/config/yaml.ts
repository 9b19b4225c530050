// The YAML reader and writer, loaded on first use: an agent started without a config file or a
// policy file never reads YAML, and the library would cost it memory from start-up on.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

const requireModule = createRequire(import.meta.url);
let yaml: typeof Yaml | null = null;

function library(): typeof Yaml {
  yaml ??= requireModule('yaml') as typeof Yaml;
  return yaml;
}

/**
 * Mapping keys no document may hold. The library keeps `__proto__` as an own key; code that merges
 * or copies the value by its keys (the settings' layers) would then write into Object.prototype,
 * and a schema would drop the key without a word (a policy rule's labels: a condition gone).
 */
const FORBIDDEN_KEYS = new Set(['__proto__']);

/** A document holds a key no document may hold; the message names it and where, nothing else of the document. */
export class ForbiddenYamlKey extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenYamlKey';
  }
}

/** Throws naming the first forbidden key, by its path in the document. Each object once: aliases may make cycles. */
function refuseForbiddenKeys(value: unknown, path: string, seen = new WeakSet<object>()): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((item, index) => refuseForbiddenKeys(item, `${path}[${index}]`, seen));
    return;
  }
  for (const key of Object.keys(value)) {
    const at = path === '' ? key : `${path}.${key}`;
    if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenYamlKey(`the key ${JSON.stringify(key)} (at ${at}) is not allowed`);
    refuseForbiddenKeys((value as Record<string, unknown>)[key], at, seen);
  }
}

/**
 * Parses one YAML (or JSON) document; throws the library's error or warning, which names line and
 * column, or one naming a key no document may hold (`__proto__`).
 */
export function parseYaml(text: string): unknown {
  const document = library().parseDocument(text);
  // A warning is an error here: an unknown tag (`!custom x`) would otherwise pass its text on as the
  // value, with a warning on stderr that nobody reads.
  const problem = document.errors[0] ?? document.warnings[0];
  if (problem) throw problem;
  const value = document.toJS();
  refuseForbiddenKeys(value, '');
  return value;
}

/** Writes a value as a YAML document. */
export function toYaml(value: unknown): string {
  return library().stringify(value);
}
