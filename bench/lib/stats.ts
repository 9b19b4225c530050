// Small statistics and measurement helpers for the benchmarks: percentiles, process CPU and memory.
import { readdirSync, readFileSync } from 'node:fs';

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
}

export function summarize(values: number[]): Summary {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** Numbers in [0, 1) from a fixed seed (xorshift32): deterministic, good enough for resampling and shuffling. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/**
 * A 95 % interval for p50(a) − p50(b), by the bootstrap (resampling both with replacement, 2000
 * times, with a fixed seed so a run's report is reproducible from its samples). Exec round trips
 * spread over ~20 ms on this kind of machine, so the difference of two medians of 150 runs moves by
 * a millisecond or more from run to run: the interval says how far.
 */
export function medianDifferenceInterval(a: number[], b: number[], iterations = 2000): [number, number] {
  const random = seededRandom(0x9e3779b9);
  const resampledMedian = (values: number[]) => percentile(Array.from(values, () => values[Math.floor(random() * values.length)]!), 50);
  const differences = Array.from({ length: iterations }, () => resampledMedian(a) - resampledMedian(b));
  return [percentile(differences, 2.5), percentile(differences, 97.5)];
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** The whole machine's CPU time so far, in seconds summed over its CPUs (the `cpu` line of /proc/stat). */
export function machineCpu(): { busy: number; idle: number } {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
  const [user, nice, system, idle, iowait, irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return { busy: (user! + nice! + system! + irq! + softirq!) / 100, idle: (idle! + iowait!) / 100 };
}

export function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * A process's RSS once it stops changing: sampled every second, after at least `minMs` (V8's memory
 * reducer, which returns what a burst left committed, acts after several quiet seconds), until three
 * samples in a row agree within 256 KiB, or `limitMs`. Returns the last sample and when it was taken.
 */
export async function settledRss(pid: number, { minMs, limitMs }: { minMs: number; limitMs: number }): Promise<{ bytes: number; afterMs: number }> {
  const started = performance.now();
  let last = rssBytes(pid);
  let steady = 0;
  while (performance.now() - started < limitMs) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = rssBytes(pid);
    steady = Math.abs(now - last) <= 256 * 1024 ? steady + 1 : 0;
    last = now;
    if (performance.now() - started >= minMs && steady >= 2) break;
  }
  return { bytes: last, afterMs: performance.now() - started };
}

/**
 * Of the echoes slower than `thresholdMs`, how many were in flight at the same time as another slow
 * one: a stall that holds every echo in flight (a pause of the machine, of a client, of the agent,
 * or of the engine) makes slow echoes in bursts; a cost of one path alone makes them one by one.
 */
export function slowEchoBursts(latencies: number[], sentAt: number[], thresholdMs: number): { slow: number; inBursts: number } {
  const slow = latencies
    .map((latency, i) => ({ latency, from: sentAt[i]!, to: sentAt[i]! + latency }))
    .filter((echo) => echo.latency > thresholdMs)
    .sort((a, b) => a.from - b.from); // the sweep below stops at the first that starts after one ends
  const inBurst = new Set<number>();
  for (let i = 0; i < slow.length; i++) {
    for (let j = i + 1; j < slow.length && slow[j]!.from < slow[i]!.to; j++) {
      inBurst.add(i);
      inBurst.add(j);
    }
  }
  return { slow: slow.length, inBursts: inBurst.size };
}

/** A span of time (ms since the epoch) during which something did not run: a GC pause, say. */
export interface Pause {
  from: number;
  to: number;
}

/** For each echo, whether it was in flight (from its keystroke to its echo) during one of `pauses`. */
export function inFlightDuring(echoes: { latencies: number[]; sentAt: number[] }, pauses: Pause[]): boolean[] {
  return echoes.sentAt.map((at, i) => pauses.some((pause) => pause.from < at + echoes.latencies[i]! && pause.to > at));
}
