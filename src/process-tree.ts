// Finds and signals a host process and everything it started, through /proc. The Engine API has no
// way to kill an exec, so both backends end processes by host PID; the target resolver and the
// orphan reaper read /proc through it too, hence its place outside any one folder (like metrics.ts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { uptime } from 'node:os';

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

/** The stat of every process on the host, read one by one (one that vanishes meanwhile is skipped). */
function* everyProcStat(procRoot = '/proc'): Generator<ProcStat> {
  for (const entry of readdirSync(procRoot)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid, procRoot);
    if (stat) yield stat;
  }
}

/** Per proc root: whether its kernel lists each task's children (CONFIG_PROC_CHILDREN). */
const childrenListsByRoot = new Map<string, boolean>();

function hasChildrenLists(procRoot: string): boolean {
  let known = childrenListsByRoot.get(procRoot);
  if (known === undefined) {
    known = existsSync(`${procRoot}/thread-self/children`);
    childrenListsByRoot.set(procRoot, known);
  }
  return known;
}

/**
 * The children of `pid`, as its threads list them in PROC/PID/task/TID/children (a child is listed
 * by the thread that started it). A thread or process that ends meanwhile lists nothing.
 */
function childrenOf(pid: number, procRoot: string): number[] {
  let threads: string[];
  try {
    threads = readdirSync(`${procRoot}/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const thread of threads) {
    let list: string;
    try {
      list = readFileSync(`${procRoot}/${pid}/task/${thread}/children`, 'latin1');
    } catch {
      continue;
    }
    for (const field of list.split(' ')) {
      const child = Number(field); // the list ends with a space: its last field is '' (0)
      if (child > 0 && Number.isInteger(child)) children.push(child);
    }
  }
  return children;
}

/**
 * Every live descendant of `root` (not including it), parents before children. Read from the
 * kernel's children lists, which costs the size of the tree; without them (a kernel built without
 * CONFIG_PROC_CHILDREN), from a scan of every process on the host, which costs tens of milliseconds
 * of the event loop on a node with thousands — for each session ended, and seconds when hundreds
 * end at once (a shutdown, a console that goes away). `procRoot` is /proc except in tests.
 */
export function descendantsOf(root: number, procRoot = '/proc'): number[] {
  const childrenOfPid = hasChildrenLists(procRoot) ? (pid: number) => childrenOf(pid, procRoot) : scannedChildren(procRoot);
  const result: number[] = [];
  const seen = new Set([root]);
  const queue = [root];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childrenOfPid(next)) {
      if (seen.has(child)) continue; // a PID listed twice while processes come and go
      seen.add(child);
      result.push(child);
      queue.push(child);
    }
  }
  return result;
}

/** Children by parent, from one scan of every process. */
function scannedChildren(procRoot: string): (pid: number) => number[] {
  const children = new Map<number, number[]>();
  for (const { pid, ppid } of everyProcStat(procRoot)) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  return (pid) => children.get(pid) ?? [];
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

/** Resolves true once `gone()` holds, false after `timeoutMs`; looks again after 5 ms, 10, 20, then every 50. */
async function pollUntil(gone: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  while (!gone()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 50);
  }
  return true;
}

/** Resolves true once none of `pids` is alive, false after `timeoutMs`. */
export function waitForDeath(pids: number[], timeoutMs: number): Promise<boolean> {
  return pollUntil(() => !pids.some(isAlive), timeoutMs);
}

/** True while the snapshot's process is alive and still the same process (its PID not reused). */
function isStillAlive({ pid, startTime }: { pid: number; startTime: string }): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.startTime === startTime && stat.state !== 'Z' && stat.state !== 'X';
}

/** Resolves true once no process of the snapshot is alive (a reused PID is not it), false after `timeoutMs`. */
function waitForSnapshotDeath(snapshot: ProcessTreeSnapshot, timeoutMs: number): Promise<boolean> {
  return pollUntil(() => !snapshot.some(isStillAlive), timeoutMs);
}

/**
 * Ends `pid` and everything it started: SIGHUP (what a closed terminal sends), then SIGKILL after
 * `graceMs` for whatever is left, including children re-parented after their parent died. A PID
 * the kernel has given to another process meanwhile is neither waited for nor signalled, and
 * neither is anything that process started.
 */
export async function killProcessTree(pid: number, graceMs: number): Promise<void> {
  const tree = snapshotProcessTree(pid);
  if (tree.length === 0) return;
  signalProcessTree(tree, 'SIGHUP');
  if (await waitForSnapshotDeath(tree, graceMs)) return;
  const known = new Set(tree.map((p) => p.pid));
  const late = isStillAlive(tree[0]!) ? snapshotProcessTree(pid).filter((p) => !known.has(p.pid)) : [];
  signalProcessTree([...tree, ...late], 'SIGKILL');
  await waitForSnapshotDeath([...tree, ...late], 2000);
}

/** True while the process group has a live member (a zombie waiting for its parent does not count). */
function groupHasMembers(pgid: number): boolean {
  // A group without any member, the usual case once they have ended, is known without a scan.
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  for (const stat of everyProcStat()) if (stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  return false;
}

/** Linux counts start times in /proc/PID/stat in USER_HZ ticks, 100 a second. */
const TICKS_PER_SECOND = 100;

/** Seconds since boot from /proc/uptime (the clock of start times: suspended time included). */
function readUptime(): number {
  return Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]);
}

/** The uptime when this module loaded, and performance.now() then: a fallback that needs no file. */
const bootClock = (() => {
  const at = performance.now();
  let seconds: number;
  try {
    seconds = readUptime();
  } catch {
    seconds = uptime();
  }
  return { uptimeMs: seconds * 1000, at };
})();

/**
 * Now, in the clock ticks since boot that /proc/PID/stat gives a process's start time in. Never
 * throws: it is called when a helper exits, where a read that threw (out of file descriptors) would
 * take the agent down. Then the uptime read at load, advanced by the monotonic clock, stands in
 * (behind by any time suspended since, which /proc/uptime counts).
 */
export function ticksSinceBoot(): number {
  let seconds: number;
  try {
    seconds = readUptime();
  } catch {
    seconds = (bootClock.uptimeMs + performance.now() - bootClock.at) / 1000;
  }
  return Math.ceil(seconds * TICKS_PER_SECOND);
}

/** Whether a process of group `pgid` had started by `ticks` (since boot). */
function groupHadMemberBy(pgid: number, ticks: number): boolean {
  for (const stat of everyProcStat()) if (stat.pgrp === pgid && Number(stat.startTime) <= ticks) return true;
  return false;
}

/**
 * Ends what is left of a process group whose leader has exited — what a session's process started
 * in the background and left running: SIGHUP, then SIGKILL after `graceMs`. While the group has a
 * member the kernel gives its id to no other process; once it has none, the id may lead another
 * group, so the group is signalled only when one of its members had started by `leaderExitedAt`
 * (ticksSinceBoot() when the leader exited): then it is still the same group.
 */
export async function killProcessGroup(pgid: number, graceMs: number, leaderExitedAt: number): Promise<void> {
  if (pgid <= 1) throw new Error(`refusing to act on process group ${pgid}`);
  if (!groupHasMembers(pgid) || !groupHadMemberBy(pgid, leaderExitedAt)) return;
  signal(-pgid, 'SIGHUP');
  if (await pollUntil(() => !groupHasMembers(pgid), graceMs)) return;
  signal(-pgid, 'SIGKILL');
  await pollUntil(() => !groupHasMembers(pgid), 2000);
}
