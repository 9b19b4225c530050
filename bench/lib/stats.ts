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

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return ticks / 100; // USER_HZ is 100 on Linux
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
