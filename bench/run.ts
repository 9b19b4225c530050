// `npm run bench`: starts a private Docker engine and an agent like the tests do, runs each scenario
// against its baseline measured in the same run, prints a table, and writes bench/results/latest.json
// with one SVG chart per scenario. `--quick` for a short run; `--only a,b` to pick scenarios;
// `--out DIR` to write the results there instead (the smoke test does, to leave the committed ones).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { startAgent } from '../test/helpers/agent.js';
import { dockerClient, podLabels, startContainer } from '../test/helpers/containers.js';
import { startPrivateDocker } from '../test/helpers/docker-daemon.js';
import { processTimer, type ProcessTimer } from './lib/clients.js';
import type { BenchContext, ScenarioResult } from './lib/context.js';
import { chartFor } from './lib/svg.js';
import { backpressure } from './scenarios/backpressure.js';
import { concurrency } from './scenarios/concurrency.js';
import { execLatency } from './scenarios/exec-latency.js';
import { nsenterLatency } from './scenarios/nsenter-latency.js';
import { startup } from './scenarios/startup.js';
import { throughput } from './scenarios/throughput.js';

const SCENARIOS: Record<string, (ctx: BenchContext) => Promise<ScenarioResult>> = {
  'exec-latency': execLatency,
  'nsenter-latency': nsenterLatency,
  throughput,
  concurrency,
  backpressure,
  startup,
};
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const USAGE = `usage: npm run bench -- [--quick] [--only ${Object.keys(SCENARIOS).join(',')}] [--out DIR]`;

/** A command line the bench cannot run: said without a stack, exit code 2. */
class UsageError extends Error {}

interface BenchOptions {
  quick: boolean;
  only: string[];
  resultsDir: string;
}

/** The command line, or an error that names what is wrong with it. */
function parseArgs(args: string[]): BenchOptions {
  const options: BenchOptions = { quick: false, only: Object.keys(SCENARIOS), resultsDir: RESULTS_DIR };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = () => {
      const next = args[++i];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`${arg} needs a value\n${USAGE}`);
      return next;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') {
      options.only = value().split(',');
      for (const name of options.only) if (!SCENARIOS[name]) throw new UsageError(`unknown scenario ${name}; choose from ${Object.keys(SCENARIOS).join(', ')}`);
    } else if (arg === '--out') options.resultsDir = value();
    else throw new UsageError(`unknown argument ${arg}\n${USAGE}`);
  }
  return options;
}

function versionOf(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), 'execlet-bench-'));
  try {
    return await runScenarios(options, started, processTimer(scratch));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function runScenarios({ quick, only, resultsDir }: BenchOptions, started: number, timeProcess: ProcessTimer): Promise<number> {
  const docker = await startPrivateDocker();
  const agentArgs = ['--log-level', 'warn', '--max-sessions', '5000', '--max-connections', '10000', '--max-sessions-per-user', '5000', '--session-rate-per-minute', '100000'];
  const agents: Array<{ stop(): Promise<void> }> = [];
  const containers: Array<{ remove(): Promise<void> }> = [];
  try {
    const agent = await startAgent(docker, { args: agentArgs });
    agents.push(agent);
    const app = await startContainer(docker, { labels: podLabels('default', 'bench', 'app') });
    containers.push(app);
    const ctx: BenchContext = {
      docker,
      dockerode: dockerClient(docker),
      agent,
      app,
      dockerCli: 'docker',
      dockerEnv: { ...process.env, DOCKER_HOST: docker.host },
      quick,
      timeProcess,
      startAgent: async (extra = [], stateDir, env) => startAgent(docker, { args: [...agentArgs, ...extra], ...(stateDir ? { stateDir } : {}), ...(env ? { env } : {}) }),
      startContainer: async (name) => {
        const c = await startContainer(docker, { labels: podLabels('default', name, 'app') });
        containers.push(c);
        return c;
      },
    };
    const results: ScenarioResult[] = [];
    for (const name of only) {
      process.stderr.write(`bench: ${name}…\n`);
      const scenarioStarted = Date.now();
      const result = await SCENARIOS[name]!(ctx);
      results.push(result);
      process.stderr.write(`bench: ${name} done in ${((Date.now() - scenarioStarted) / 1000).toFixed(1)} s\n`);
    }

    mkdirSync(resultsDir, { recursive: true });
    const report = {
      date: new Date().toISOString(),
      quick,
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30) },
      versions: { node: process.version, docker: versionOf('dockerd', ['--version']), kernel: versionOf('uname', ['-r']) },
      scenarios: results.map(({ chart: _chart, ...rest }) => rest),
    };
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    for (const result of results) writeFileSync(join(resultsDir, `${result.id}.svg`), chartFor(result));

    for (const result of results) {
      console.log(`\n## ${result.title}`);
      for (const [key, value] of Object.entries(result.figures)) console.log(`  ${key.padEnd(40)} ${value}`);
      for (const goal of result.goals) console.log(`  ${goal.met ? 'MET   ' : 'MISSED'} ${goal.text} (${goal.detail})`);
    }
    const missed = results.flatMap((r) => r.goals.filter((g) => !g.met));
    console.log(`\nbench: ${results.length} scenarios in ${report.durationSeconds} s; ${missed.length} goal(s) missed; results in ${join(resultsDir, 'latest.json')}`);
    return 0;
  } finally {
    for (const agent of agents) await agent.stop();
    for (const container of containers) await container.remove().catch(() => undefined);
    await docker.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message}`);
      process.exit(2);
    }
    console.error(`bench: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
