// Finds the processes execlet started by the marker in their environment (see session-marker.ts)
// and kills those nobody owns any more: every process of an earlier agent instance (the agent was
// killed, even with SIGKILL, and restarted) and every process of a session of this instance that
// has ended. Works on host PIDs through /proc, like the backends' own kill path (process-tree.ts).
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';

import {
  descendantsOf,
  killProcessTree,
  readProcStat,
  signalProcessTree,
  snapshotProcessTree,
  waitForDeath,
  type ProcStat,
  type ProcessTreeSnapshot,
} from '../process-tree.js';
import { MARKER_VARIABLE, MAX_MARKER_LENGTH, parseMarker, type Marker } from './session-marker.js';

export interface MarkedProcess {
  pid: number;
  marker: Marker;
  /** Start time from /proc/PID/stat (clock ticks since boot), so a reused PID is never mistaken for it. */
  startTime: string;
}

const DEFAULT_PROC_ROOT = '/proc';
const PREFIX = Buffer.from(`${MARKER_VARIABLE}=`, 'latin1');
const CHUNK_BYTES = 4096;
/** Errors that mean "this process is gone or not ours to look at": skipped without a word. */
const SKIPPED_ERRORS = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM']);
/** How long killProcessTree itself waits after SIGKILL; the careful path waits as long. */
const KILL_WAIT_MS = 2000;

function isZombie(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X';
}

/**
 * The value of the first `EXECLET_SESSION=` entry of an environ file (NUL-separated), or null when
 * there is none. Reads in small chunks and stops as soon as that entry is complete; entries that
 * are not it are skipped without being kept. A value longer than any valid marker yields '' (invalid).
 */
function readMarkerValue(path: string): string | null {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    // Within the current entry: how many bytes matched the prefix so far, -1 once it cannot match.
    let matched = 0;
    // Set once the prefix matched: the value collected so far.
    let value: string | null = null;
    for (;;) {
      const length = readSync(fd, chunk, 0, CHUNK_BYTES, null);
      if (length === 0) return value; // the last entry need not end with a NUL
      let i = 0;
      while (i < length) {
        if (matched < 0) {
          const nul = chunk.indexOf(0, i);
          if (nul === -1 || nul >= length) break; // the entry goes on in the next chunk
          matched = 0;
          i = nul + 1;
          continue;
        }
        const byte = chunk[i++]!;
        if (value !== null) {
          if (byte === 0) return value;
          if (value.length >= MAX_MARKER_LENGTH) return '';
          value += String.fromCharCode(byte);
        } else if (byte === 0) {
          matched = 0; // an empty entry, or one shorter than the prefix
        } else if (byte === PREFIX[matched]) {
          matched++;
          if (matched === PREFIX.length) value = '';
        } else {
          matched = -1;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

function isSkipped(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && SKIPPED_ERRORS.has(code);
}

/**
 * Every live (non-zombie) process on the host whose environment has a valid EXECLET_SESSION marker
 * of `scope`. Reads /proc/PID/environ (NUL-separated) up to the first EXECLET_SESSION= entry only;
 * processes that vanish or cannot be read (EACCES, EPERM) are skipped silently, and so is a PID
 * whose start time changed while it was read (reused). Throws only when `procRoot` itself cannot be
 * listed or for an unexpected error (EMFILE, …).
 */
export function findMarkedProcesses(scope: string, procRoot: string = DEFAULT_PROC_ROOT): MarkedProcess[] {
  const found: MarkedProcess[] = [];
  for (const marked of scanProcesses(scope, procRoot)) if (marked) found.push(marked);
  return found;
}

/**
 * findMarkedProcesses for a serving agent: the same scan, handing the event loop back whenever it
 * has run for `sliceMs`. A sweep reads every process on the host (~75 µs each, measured): on a node
 * with hundreds of processes a scan in one piece would stall every live session for tens of ms.
 */
export async function findMarkedProcessesYielding(scope: string, procRoot: string = DEFAULT_PROC_ROOT, sliceMs = 2): Promise<MarkedProcess[]> {
  const found: MarkedProcess[] = [];
  let sliceStart = performance.now();
  for (const marked of scanProcesses(scope, procRoot)) {
    if (marked) found.push(marked);
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
  }
  return found;
}

/** Looks at each process in turn: yields its MarkedProcess when it is one of the scope's, else null. */
function* scanProcesses(scope: string, procRoot: string): Generator<MarkedProcess | null> {
  for (const entry of readdirSync(procRoot)) {
    if (!/^[1-9][0-9]*$/.test(entry)) continue;
    yield markedProcess(Number(entry), scope, procRoot);
  }
}

function markedProcess(pid: number, scope: string, procRoot: string): MarkedProcess | null {
  const before = readProcStat(pid, procRoot);
  if (!before || isZombie(before)) return null;
  let value: string | null;
  try {
    value = readMarkerValue(`${procRoot}/${pid}/environ`);
  } catch (err) {
    if (isSkipped(err)) return null;
    throw err;
  }
  if (value === null) return null;
  const marker = parseMarker(value);
  if (!marker || marker.scope !== scope) return null;
  const after = readProcStat(pid, procRoot);
  if (!after || after.startTime !== before.startTime || isZombie(after)) return null;
  return { pid, marker, startTime: before.startTime };
}

export interface ReapResult {
  /** Marked processes killed, each counted once (not trees, and not unmarked descendants). */
  killed: number;
  /** Distinct session ids of the processes killed, in the order first seen. */
  sessions: string[];
}

export interface ReaperOptions {
  scope: string;
  instance: string;
  /**
   * True for sessions of this instance that are live; their processes are left alone. A session
   * must count as live before its process is started, or a reap in between kills it.
   */
  isLive(session: string): boolean;
  /** SIGHUP, then SIGKILL after this many milliseconds for whatever is left. */
  graceMs: number;
  /** Called once per marked process killed (the caller logs and counts). */
  onReaped?(process: MarkedProcess): void;
}

/** Processes that must survive whatever happens: this agent, its ancestors, PID 1, live sessions. */
interface Guard {
  pids: Set<number>;
  /** Process groups with a protected member: never signalled as a group. */
  groups: Set<number>;
}

function agentAndAncestors(): Set<number> {
  const pids = new Set<number>([1, process.pid]);
  let pid = process.pid;
  for (;;) {
    const stat = readProcStat(pid);
    if (!stat || !(stat.ppid > 0) || pids.has(stat.ppid)) return pids;
    pids.add(stat.ppid);
    pid = stat.ppid;
  }
}

function sameMarker(a: Marker, b: Marker): boolean {
  return a.scope === b.scope && a.instance === b.instance && a.session === b.session;
}

function isSameLiveProcess(pid: number, startTime: string): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.startTime === startTime && !isZombie(stat);
}

/** Like signalProcessTree, but never by group for a group that holds a protected process. */
function signalCarefully(members: ProcessTreeSnapshot, sig: NodeJS.Signals, guard: Guard): void {
  signalProcessTree(
    members.filter((m) => !guard.groups.has(m.pid)),
    sig,
  );
  for (const m of members) {
    if (!guard.groups.has(m.pid) || !isSameLiveProcess(m.pid, m.startTime)) continue;
    try {
      process.kill(m.pid, sig);
    } catch {
      // Gone meanwhile.
    }
  }
}

/**
 * Kills the tree of `root` and returns the snapshot of it taken before (empty when the root is gone
 * or its PID was reused). A tree that holds a protected process, or whose members lead a process
 * group holding one, is killed member by member with the protected ones left out; any other tree
 * goes through killProcessTree.
 */
async function killOrphanTree(root: MarkedProcess, graceMs: number, guard: Guard): Promise<ProcessTreeSnapshot> {
  const tree = snapshotProcessTree(root.pid);
  if (tree[0]?.pid !== root.pid || tree[0].startTime !== root.startTime) return [];
  if (!tree.some((m) => guard.pids.has(m.pid) || guard.groups.has(m.pid))) {
    await killProcessTree(root.pid, graceMs);
    return tree;
  }
  const targets = tree.filter((m) => !guard.pids.has(m.pid));
  const pids = targets.map((m) => m.pid);
  signalCarefully(targets, 'SIGHUP', guard);
  if (await waitForDeath(pids, graceMs)) return tree;
  signalCarefully(targets, 'SIGKILL', guard);
  await waitForDeath(pids, KILL_WAIT_MS);
  return tree;
}

/**
 * Kills every marked process of the scope that belongs to another instance, or to this instance
 * but a session that is not live: each orphan's whole tree (SIGHUP, SIGKILL after graceMs), roots
 * first, so a child carrying the marker dies with its parent's tree and is reported once; children
 * re-parented after their parent died are found on their own. This process, its ancestors, PID 1,
 * the processes of live sessions and, when this process carries a marker itself, its descendants
 * that inherited that marker are never signalled. Processes that vanish meanwhile are
 * skipped; a process still alive after SIGKILL is not reported (the next run tries again). When
 * onReaped throws, the reap still completes and the first such error is thrown at the end.
 */
export async function reapOrphans(options: ReaperOptions): Promise<ReapResult> {
  const guard: Guard = { pids: agentAndAncestors(), groups: new Set() };
  const marked = await findMarkedProcessesYielding(options.scope);
  // When the agent itself carries a marker of the scope (it was started from an execlet session),
  // the helpers it starts inherit that marker: they are the agent's, not orphans.
  const own = marked.find((p) => p.pid === process.pid)?.marker;
  const ownChildren = own ? new Set(descendantsOf(process.pid)) : new Set<number>();
  const pending = new Map<number, MarkedProcess>();
  for (const found of marked) {
    const isOwnHelper = own !== undefined && ownChildren.has(found.pid) && sameMarker(found.marker, own);
    if (isOwnHelper || (found.marker.instance === options.instance && options.isLive(found.marker.session))) guard.pids.add(found.pid);
    else pending.set(found.pid, found);
  }
  for (const pid of guard.pids) {
    pending.delete(pid);
    const stat = readProcStat(pid);
    if (stat) guard.groups.add(stat.pgrp);
  }

  const killed: MarkedProcess[] = [];
  let callbackError: unknown;
  let reported = false;
  const report = (reaped: MarkedProcess) => {
    killed.push(reaped);
    try {
      options.onReaped?.(reaped);
    } catch (err) {
      if (!reported) callbackError = err;
      reported = true;
    }
  };

  while (pending.size > 0) {
    // Forget whatever ended on its own (or whose PID was reused), then take the topmost orphans.
    const parents = new Map<number, number>();
    for (const p of pending.values()) {
      const stat = readProcStat(p.pid);
      if (!stat || stat.startTime !== p.startTime || isZombie(stat)) pending.delete(p.pid);
      else parents.set(p.pid, stat.ppid);
    }
    const roots = [...pending.values()].filter((p) => !pending.has(parents.get(p.pid)!));
    // Trees may overlap (a marked process under an unmarked child of another): each marked process
    // is accounted for by the first tree that holds it.
    const candidates = new Map(pending);
    const trees = await Promise.all(roots.map((root) => killOrphanTree(root, options.graceMs, guard)));
    for (const tree of trees) {
      for (const member of tree) {
        const marked = candidates.get(member.pid);
        if (!marked || marked.startTime !== member.startTime || !pending.delete(member.pid)) continue;
        if (!isSameLiveProcess(marked.pid, marked.startTime)) report(marked);
      }
    }
    for (const root of roots) pending.delete(root.pid);
  }

  if (reported) throw callbackError;
  return { killed: killed.length, sessions: [...new Set(killed.map((p) => p.marker.session))] };
}

export interface PeriodicReaperOptions extends ReaperOptions {
  intervalMs: number;
  /** How long after soon() its run starts (default 1 s: a session's own kill path goes first). */
  soonDelayMs?: number;
  /** The least time from the end of one run to the start of a run asked for by soon() (default 5 s). */
  minSpacingMs?: number;
  onError?(err: Error): void;
  onResult?(r: ReapResult): void;
}

export interface PeriodicReaper {
  /** No further run starts, and neither onResult nor onError is called (a run in progress still completes and calls onReaped). */
  stop(): void;
  /**
   * Asks for a run soon — a session ended, and what it left running in the background is an orphan
   * now: soonDelayMs from now, but no sooner than minSpacingMs after the previous run ended, so
   * sessions that end one after another cost one sweep per minSpacingMs at most.
   */
  soon(): void;
}

/**
 * Runs reapOrphans every intervalMs, the first time intervalMs after the call (an agent reaps once
 * itself at start-up, before it accepts sessions), and sooner when asked (soon()). Runs never
 * overlap: the next is scheduled once the previous finished. The timer is unref'd. A throwing
 * onResult is passed to onError; errors without onError are dropped.
 */
export function startPeriodicReaper(options: PeriodicReaperOptions): PeriodicReaper {
  const { intervalMs, soonDelayMs = 1000, minSpacingMs = 5000 } = options;
  for (const [name, value] of [['interval', intervalMs], ['soon delay', soonDelayMs], ['minimum spacing', minSpacingMs]] as const) {
    if (!Number.isFinite(value) || value < 0 || (name === 'interval' && value === 0)) {
      throw new RangeError(`reaper ${name} must be a ${name === 'interval' ? 'positive' : 'non-negative'} number of milliseconds, not ${value}`);
    }
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  /** When the timer fires (performance.now()). */
  let timerAt = Infinity;
  let running = false;
  let lastRunEnd = -Infinity;
  /** A soon() during a run: the earliest time it asked for. */
  let soonAfterRun = Infinity;

  const fail = (err: unknown) => {
    if (stopped) return;
    try {
      options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // A throwing error handler must not stop the reaper.
    }
  };
  const schedule = (at: number) => {
    if (timer) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => void run(), Math.max(0, at - performance.now()));
    timer.unref();
  };
  const run = async () => {
    timer = undefined;
    timerAt = Infinity;
    running = true;
    try {
      const result = await reapOrphans(options);
      if (!stopped) options.onResult?.(result);
    } catch (err) {
      fail(err);
    }
    running = false;
    lastRunEnd = performance.now();
    if (stopped) return;
    const asked = soonAfterRun;
    soonAfterRun = Infinity;
    schedule(Math.min(lastRunEnd + intervalMs, Math.max(asked, lastRunEnd + minSpacingMs)));
  };

  schedule(performance.now() + intervalMs);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    soon() {
      if (stopped) return;
      const at = Math.max(performance.now() + soonDelayMs, lastRunEnd + minSpacingMs);
      if (running) soonAfterRun = Math.min(soonAfterRun, at);
      else if (at < timerAt) schedule(at);
    },
  };
}
