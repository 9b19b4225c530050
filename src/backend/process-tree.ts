// Finds and signals a host process and everything it started, through /proc. The Engine API has no
// way to kill an exec, so both backends end processes by host PID.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  startTime: string;
}

/**
 * Parses PROC/PID/stat; the command name may hold spaces and parentheses, so split after the last
 * ')'. `procRoot` is /proc except in tests of code that scans it.
 */
export function readProcStat(pid: number, procRoot = '/proc'): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`${procRoot}/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is state (field 3); ppid is field 4, pgrp field 5, starttime field 22.
  return { pid, state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]), startTime: fields[19] ?? '' };
}

/** Every live descendant of `root` (not including it), parents before children. */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid);
    if (!stat) continue;
    const list = children.get(stat.ppid);
    if (list) list.push(pid);
    else children.set(stat.ppid, [pid]);
  }
  const result: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const next = children.get(queue.shift()!) ?? [];
    result.push(...next);
    queue.push(...next);
  }
  return result;
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // Already gone (ESRCH) or not ours to signal: nothing left to do for this one.
  }
}

/** A process and its descendants as seen now, with start times so a reused PID is never signalled. */
export type ProcessTreeSnapshot = Array<{ pid: number; startTime: string }>;

export function snapshotProcessTree(pid: number): ProcessTreeSnapshot {
  if (pid <= 1) throw new Error(`refusing to act on the process tree of pid ${pid}`);
  const snapshot: ProcessTreeSnapshot = [];
  for (const member of [pid, ...descendantsOf(pid)]) {
    const stat = readProcStat(member);
    if (stat) snapshot.push({ pid: member, startTime: stat.startTime });
  }
  return snapshot;
}

/**
 * Signals every process of the snapshot that is still the same process, and its process group when
 * it leads one. Children re-parented since the snapshot (their parent died) are still reached.
 */
export function signalProcessTree(snapshot: ProcessTreeSnapshot, sig: NodeJS.Signals): void {
  for (const { pid, startTime } of snapshot) {
    const stat = readProcStat(pid);
    if (!stat || stat.startTime !== startTime) continue;
    if (stat.pgrp === pid) signal(-pid, sig);
    signal(pid, sig);
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/** Resolves true once none of `pids` is alive, false after `timeoutMs`. */
export async function waitForDeath(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (pids.some(isAlive)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 50);
  }
  return true;
}

/**
 * Ends `pid` and everything it started: SIGHUP (what a closed terminal sends), then SIGKILL after
 * `graceMs` for whatever is left, including children re-parented after their parent died.
 */
export async function killProcessTree(pid: number, graceMs: number): Promise<void> {
  const tree = snapshotProcessTree(pid);
  if (tree.length === 0) return;
  signalProcessTree(tree, 'SIGHUP');
  if (await waitForDeath(tree.map((p) => p.pid), graceMs)) return;
  const known = new Set(tree.map((p) => p.pid));
  const late = isAlive(pid) ? snapshotProcessTree(pid).filter((p) => !known.has(p.pid)) : [];
  signalProcessTree([...tree, ...late], 'SIGKILL');
  await waitForDeath([...known, ...late.map((p) => p.pid)], 2000);
}
