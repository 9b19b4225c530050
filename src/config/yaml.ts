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

/** Parses one YAML (or JSON) document; throws the library's error, which names line and column. */
export function parseYaml(text: string): unknown {
  return library().parse(text);
}

/** Writes a value as a YAML document. */
export function toYaml(value: unknown): string {
  return library().stringify(value);
}
