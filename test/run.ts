// Test entry point for `npm test` (`node --import tsx test/run.ts [node test flags] [files]`):
// starts one Docker engine for the whole run (private unless EXECLET_TEST_DOCKER_HOST is set),
// runs the test files under node:test against it, one file at a time, then stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useTestDocker, type TestDocker } from './helpers/docker-daemon.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SUITES = ['test/unit', 'test/integration', 'test/e2e'];
const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function log(message: string): void {
  process.stderr.write(`[test/run] ${message}\n`);
}

/** Every `*.test.ts` under `dir`, recursively, as paths relative to the repo root. */
function testFilesUnder(dir: string): string[] {
  const abs = path.join(repoRoot, dir);
  if (!fs.existsSync(abs)) return [];
  const found: string[] = [];
  for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...testFilesUnder(rel));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) found.push(rel);
  }
  return found;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + (os.constants.signals[signal] ?? 1);
  return 1;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  // Flags (e.g. --test-name-pattern=x) go to node; everything else is a test file.
  const flags = args.filter((a) => a.startsWith('-'));
  const given = args.filter((a) => !a.startsWith('-'));
  for (const file of given) {
    if (!fs.existsSync(file)) {
      log(`no such test file: ${file}`);
      return 2;
    }
  }
  const files = given.length > 0 ? given.map((f) => path.resolve(f)) : SUITES.flatMap(testFilesUnder).sort().map((f) => path.join(repoRoot, f));
  if (files.length === 0) {
    log(`no *.test.ts files under ${SUITES.join(', ')}: nothing to run`);
    return 0;
  }

  let child: ChildProcess | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let signalCount = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signalCount++;
    interrupted ??= signal;
    if (signalCount >= 3) {
      // Stop waiting for anything: the exit hook of the docker helper still kills the engine.
      log(`${signal} again: exiting now`);
      process.exit(exitCodeOf(null, interrupted));
    }
    if (child && child.exitCode === null && child.signalCode === null) {
      // A second signal means "now": do not wait for the test runner to wind down.
      child.kill(signalCount > 1 ? 'SIGKILL' : signal);
    }
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal);

  const t0 = Date.now();
  let docker: TestDocker;
  try {
    docker = await useTestDocker();
  } catch (err) {
    log(`could not get a Docker engine for the tests:\n${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  log(`${docker.private ? 'private dockerd' : 'external engine'} ${docker.host} ready in ${Date.now() - t0} ms, image ${docker.image}`);

  let code = 1;
  try {
    if (interrupted === undefined) {
      child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...flags, ...files], {
        cwd: repoRoot,
        stdio: 'inherit',
        env: { ...process.env, EXECLET_TEST_DOCKER_HOST: docker.host, EXECLET_TEST_IMAGE: docker.image },
      });
      const running = child;
      code = await new Promise<number>((resolve) => {
        running.once('error', (err) => {
          log(`could not start the test runner: ${err.message}`);
          resolve(1);
        });
        running.once('exit', (exitCode, signal) => resolve(exitCodeOf(exitCode, signal)));
      });
    }
  } finally {
    const t1 = Date.now();
    try {
      await docker.stop();
      if (docker.private) log(`private dockerd stopped in ${Date.now() - t1} ms`);
    } catch (err) {
      log(`stopping the Docker engine failed: ${err instanceof Error ? err.message : String(err)}`);
      if (code === 0) code = 1;
    }
  }
  if (interrupted !== undefined) {
    log(`interrupted by ${interrupted}`);
    return exitCodeOf(null, interrupted);
  }
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
