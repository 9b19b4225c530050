// The benchmark (`npm run bench`, bench/run.ts) still runs, end to end: `--quick`, every scenario,
// against its own private engine and agents, writing its results to a temp dir (`--out`) rather
// than over the committed ones. Timing goals are the bench's business, not this test's: it checks
// that every scenario measured something, that the results and charts are written, and the
// behaviours that do not depend on the machine's speed — two fds per session, and backpressure
// holding the agent's memory with the data intact after the stall. Also: a command line the bench
// cannot run is refused with a usage line, not a stack.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const outDir = mkdtempSync(join(tmpdir(), 'execlet-bench-test-'));

after(() => rmSync(outDir, { recursive: true, force: true }));

/** Runs bench/run.ts (dist is built by `npm test`); on a timeout, SIGTERM lets its exit hooks stop the engine it started. */
async function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  try {
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

interface Report {
  quick: boolean;
  durationSeconds: number;
  machine: { cpus: number };
  versions: { node: string; docker: string; kernel: string };
  scenarios: Array<{ id: string; figures: Record<string, number | string | null>; goals: Array<{ text: string; met: boolean; detail: string }> }>;
}

test('npm run bench -- --quick runs every scenario and writes its results and charts where --out says', { timeout: 240_000 }, async () => {
  const run = await runBench(['--quick', '--out', outDir], 200_000);
  assert.equal(run.code, 0, `the bench failed:\n${run.stderr.slice(-4000)}`);
  assert.match(run.stdout, /bench: 6 scenarios in \d+ s; \d+ goal\(s\) missed; results in /);

  const report = JSON.parse(readFileSync(join(outDir, 'latest.json'), 'utf8')) as Report;
  assert.equal(report.quick, true);
  assert.equal(report.versions.node, process.version);
  assert.ok(report.machine.cpus >= 1);
  const ids = ['exec-latency', 'nsenter-latency', 'throughput', 'concurrency', 'backpressure', 'startup'];
  assert.deepEqual(
    report.scenarios.map((s) => s.id),
    ids,
  );
  const scenario = (id: string) => report.scenarios.find((s) => s.id === id)!;
  for (const { id, goals } of report.scenarios) {
    assert.ok(goals.length > 0, `${id} judges at least one goal`);
    for (const goal of goals) assert.equal(typeof goal.met, 'boolean', `${id}: ${goal.text}`);
    assert.match(readFileSync(join(outDir, `${id}.svg`), 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/, `${id}.svg is an SVG document`);
  }

  // Each path measured something, next to its baseline.
  const positive = (id: string, figure: string) => {
    const value = scenario(id).figures[figure];
    assert.ok(typeof value === 'number' && Number.isFinite(value) && value > 0, `${id}: '${figure}' is ${String(value)}`);
  };
  positive('exec-latency', 'agent p50 ms, full TLS handshake');
  positive('exec-latency', 'agent p50 ms, resumed TLS session');
  positive('exec-latency', 'raw Engine API p50 ms');
  positive('exec-latency', 'docker CLI p50 ms');
  positive('nsenter-latency', 'agent nsenter p50 ms, full TLS handshake');
  positive('nsenter-latency', 'util-linux nsenter process p50 ms');
  positive('throughput', 'agent non-TTY MB/s');
  positive('throughput', 'docker CLI non-TTY MB/s');
  positive('throughput', 'agent TTY MB/s');
  positive('throughput', 'docker CLI TTY MB/s');
  positive('concurrency', 'agent echo p50 ms');
  positive('concurrency', 'raw engine echo p50 ms');
  positive('startup', 'agent restart → /readyz ms (p50)');
  positive('startup', 'agent idle RSS, settled MB');

  // What holds whatever the machine's speed.
  const goal = (id: string, text: string) => {
    const found = scenario(id).goals.find((g) => g.text.startsWith(text));
    assert.ok(found, `${id} has a goal '${text}…'`);
    return found;
  };
  // Two per session (the client's socket and the engine's); a few more in all (kept-alive engine
  // connections) move the figure at --quick's 50 sessions by 0.02 each.
  const fds = scenario('concurrency').figures['agent fds per session'];
  assert.ok(typeof fds === 'number' && fds >= 1.9 && fds <= 2.1, `agent fds per session: ${String(fds)}`);
  assert.equal(scenario('backpressure').figures['data correct after the stall'], 'yes');
  assert.equal(goal('backpressure', 'RSS growth ≤ high-water mark').met, true, goal('backpressure', 'RSS growth ≤ high-water mark').detail);
});

test('a command line the bench cannot run gets a usage line and exit code 2, before anything starts', async () => {
  for (const [args, message] of [
    [['--bogus'], /unknown argument --bogus/],
    [['--only'], /--only needs a value/],
    [['--only', 'exec-latency,nope'], /unknown scenario nope; choose from exec-latency, nsenter-latency/],
    [['--out', '--quick'], /--out needs a value/],
  ] as const) {
    const run = await runBench([...args], 30_000);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.match(run.stderr, /usage: npm run bench -- \[--quick\]|choose from/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  }
});
