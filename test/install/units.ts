// Readers for the systemd unit and the Dockerfile, enough for the install tests' assertions.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A unit file as [section, key, value] entries in file order (continuation lines joined). */
export interface UnitFile {
  entries: Array<{ section: string; key: string; value: string }>;
  /** Every value of `key` in `section`, in order. */
  all(section: string, key: string): string[];
  /** The last value of `key` in `section` (systemd's "last one wins" for single-valued keys). */
  get(section: string, key: string): string | undefined;
}

export function parseUnit(text: string): UnitFile {
  const entries: UnitFile['entries'] = [];
  let section = '';
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = pending + raw.trim();
    pending = '';
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`not a unit file line: ${line}`);
    entries.push({ section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() });
  }
  const all = (s: string, k: string) => entries.filter((e) => e.section === s && e.key === k).map((e) => e.value);
  return { entries, all, get: (s, k) => all(s, k).pop() };
}

export function readUnit(path: string): UnitFile {
  return parseUnit(readFileSync(path, 'utf8'));
}

/** An ExecStart= command line as argv (the unit uses no quoting), without systemd's prefixes. */
export function execArgv(value: string): string[] {
  return value.replace(/^[-@:+!]+/, '').split(/\s+/).filter(Boolean);
}

/**
 * The capability bounding set a unit (plus drop-ins, in order) ends up with, following systemd's
 * rules: an empty assignment resets, assignments are merged, and `~` inverts (removes).
 */
export function boundingSet(units: UnitFile[]): Set<string> | 'all' {
  let set: Set<string> | 'all' = 'all';
  for (const unit of units) {
    for (const value of unit.all('Service', 'CapabilityBoundingSet')) {
      if (value === '') {
        set = 'all';
        continue;
      }
      const invert = value.startsWith('~');
      const caps = value.replace(/^~/, '').split(/\s+/).filter(Boolean);
      if (invert) {
        if (set === 'all') throw new Error('an inverted CapabilityBoundingSet over "all" is not modelled here');
        for (const cap of caps) set.delete(cap);
      } else {
        set = new Set([...(set === 'all' ? [] : set), ...caps]);
      }
    }
  }
  return set;
}

/** `systemd-analyze security --offline=true UNIT`: the overall exposure score (e.g. 4.4) and the report. */
export async function exposureOf(unitPath: string): Promise<{ score: number; report: string }> {
  const { stdout } = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', unitPath], { env: { ...process.env, SYSTEMD_COLORS: '0' } });
  const match = /Overall exposure level for \S+: (\d+\.\d)/.exec(stdout);
  if (!match) throw new Error(`no exposure score in:\n${stdout}`);
  return { score: Number(match[1]), report: stdout };
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

export interface Instruction {
  instruction: string;
  args: string;
  /** The stage (its `AS` name, or its index) the instruction belongs to; '' before the first FROM. */
  stage: string;
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = '';
  let stages = 0;
  let pending = '';
  for (const raw of text.split('\n')) {
    const trimmed = raw.trim();
    if (pending === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (pending !== '' && trimmed.startsWith('#')) continue;
    const line = pending + trimmed;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1).trimEnd()} `;
      continue;
    }
    pending = '';
    const space = line.search(/\s/);
    const instruction = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const args = space === -1 ? '' : line.slice(space + 1).trim();
    if (instruction === 'FROM') {
      const as = /\s+AS\s+(\S+)$/i.exec(args);
      stage = as ? as[1]! : String(stages);
      stages++;
    }
    out.push({ instruction, args, stage });
  }
  return out;
}

/** The JSON (exec) form of ENTRYPOINT/CMD; throws on the shell form. */
export function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return parsed as string[];
}
