// Scenario 3: output throughput of `dd bs=1M` in the container, received by a WebSocket client on
// this machine, without and with a TTY — against the docker CLI writing to /dev/null. kubectl,
// through the agent, is a second receiving client (Go, like the docker CLI). The least Node.js
// relay (ws-relay.ts) serves the same client without a TTY, once (not with --quick): what relaying
// the engine's stream over TLS costs in Node.js by itself. The whole machine's CPU time per GB is
// taken for every path: on 2 cores all of them keep the CPUs busy, so a path's rate follows from
// what it costs the machine as a whole.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentExec, execUrl, type ExecServer } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { cpuSeconds, machineCpu, round } from '../lib/stats.js';
import { startWebSocketRelay } from '../lib/ws-relay.js';

/**
 * The kubectl to run: $KUBECTL, else the newest of the versioned binaries Google's SDK installs
 * (its `kubectl` is a dispatcher that asks the server's version and runs another binary, which
 * would be timed too), else `kubectl` from PATH. It must speak WebSockets to the agent (≥ 1.30).
 */
function kubectlBinary(): string | null {
  if (process.env.KUBECTL) return process.env.KUBECTL;
  for (const minor of [33, 32, 31, 30]) {
    const versioned = `/usr/lib/google-cloud-sdk/bin/kubectl.1.${minor}`;
    if (existsSync(versioned)) return versioned;
  }
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  return null;
}

type PathLabel = 'agent non-TTY' | 'kubectl non-TTY' | 'relay non-TTY' | 'CLI non-TTY' | 'agent TTY' | 'CLI TTY';

interface PathRuns {
  mbps: number[];
  /** The agent's own CPU seconds per GB (the relay's on its path; none on the CLI's). */
  serverCpuPerGb: number[];
  /** Every process's CPU seconds per GB (user + system + interrupts, all CPUs). */
  machineCpuPerGb: number[];
  /** The share of the CPUs' time left idle during the run. */
  idleShare: number[];
}

export async function throughput(ctx: BenchContext): Promise<ScenarioResult> {
  const megabytes = ctx.quick ? 256 : 1024;
  // A terminal relays at ~45 MB/s: --quick sends it less, to stay under a minute.
  const ttyMegabytes = ctx.quick ? 64 : megabytes;
  // Non-TTY runs twice for the agent and the CLI (best of two: it is the figure drift moves most); TTY once.
  const rounds = ctx.quick ? 1 : 2;
  const dd = (count: number) => ['dd', 'if=/dev/zero', 'bs=1M', `count=${count}`];
  const runs = {} as Record<PathLabel, PathRuns>;
  for (const label of ['agent non-TTY', 'kubectl non-TTY', 'relay non-TTY', 'CLI non-TTY', 'agent TTY', 'CLI TTY'] as const) {
    runs[label] = { mbps: [], serverCpuPerGb: [], machineCpuPerGb: [], idleShare: [] };
  }
  const agentPid = ctx.agent.process.pid!;
  const relay = ctx.quick ? null : await startWebSocketRelay(ctx.agent, { socketPath: ctx.docker.socketPath, containers: { bench: ctx.app.id } });
  /** Runs one transfer of `size` MiB and records its rate and what it cost. */
  const measure = async (label: PathLabel, size: number, transfer: () => Promise<number>) => {
    const gigabytes = size / 1024;
    const machineBefore = machineCpu();
    const server = label.startsWith('CLI') ? null : label.startsWith('relay') ? relay!.pid : agentPid;
    const serverBefore = server ? cpuSeconds(server) : 0;
    const ms = await transfer();
    const machineAfter = machineCpu();
    const busy = machineAfter.busy - machineBefore.busy;
    const idle = machineAfter.idle - machineBefore.idle;
    const path = runs[label];
    path.mbps.push(size / (ms / 1000));
    path.machineCpuPerGb.push(busy / gigabytes);
    path.idleShare.push(idle / (busy + idle));
    if (server) path.serverCpuPerGb.push((cpuSeconds(server) - serverBefore) / gigabytes);
  };
  const kubectlFile = kubectlBinary();
  if (!kubectlFile) process.stderr.write('bench: no kubectl (set KUBECTL): throughput runs without the kubectl path\n');
  const home = mkdtempSync(join(tmpdir(), 'execlet-bench-kubectl-'));
  const kubectlEnv = { ...process.env, KUBECONFIG: ctx.agent.kubeconfig, HOME: home };
  const kubectl = async (command: string[]) => {
    const run = await ctx.timeProcess(kubectlFile!, ['exec', '--namespace', 'default', 'bench', '-c', 'app', '--', ...command], kubectlEnv);
    if (run.code !== 0) throw new Error(`bench: ${kubectlFile} exec through the agent exited with ${String(run.code)}`);
    return run.ms;
  };
  try {
    if (kubectlFile) await kubectl(['true']); // warm-up: kubectl's caches, the pod lookup
    for (let i = 0; i < rounds; i++) {
      for (const tty of i === 0 ? [false, true] : [false]) {
        const size = tty ? ttyMegabytes : megabytes;
        const command = tty ? ['sh', '-c', `stty raw -echo; ${dd(size).join(' ')} 2>/dev/null`] : dd(size);
        const streams = tty ? 'stdout=true&tty=true' : 'stdout=true&stderr=true';
        /** One transfer through the agent (or the relay) to the bench's client; all of it must arrive. */
        const received = (label: PathLabel, server: ExecServer) =>
          measure(label, size, async () => {
            const run = await agentExec(server, execUrl(server, 'default', 'bench', 'app', command, streams));
            if (run.bytes < size * 1024 * 1024) throw new Error(`${label}: received ${run.bytes} bytes, expected ${size} MiB`);
            return run.ms;
          });
        await received(tty ? 'agent TTY' : 'agent non-TTY', ctx.agent);
        await measure(tty ? 'CLI TTY' : 'CLI non-TTY', size, async () => (await ctx.timeProcess(ctx.dockerCli, ['exec', ...(tty ? ['-t'] : []), ctx.app.id, ...command], ctx.dockerEnv)).ms);
        // kubectl and the relay once (in the first round): a second client and a floor for the
        // agent's CPU per GB, not goals. The relay not with --quick, which must stay under a minute.
        if (!tty && i === 0 && kubectlFile) await measure('kubectl non-TTY', size, () => kubectl(command));
        if (!tty && i === 0 && relay) await received('relay non-TTY', relay.target);
      }
    }
  } finally {
    relay?.stop();
    rmSync(home, { recursive: true, force: true });
  }
  /** The run with the best rate, and its costs (NaN for a path that did not run). */
  const best = (label: PathLabel) => {
    const path = runs[label];
    const index = path.mbps.indexOf(Math.max(...path.mbps));
    return { mbps: path.mbps[index] ?? NaN, machineCpuPerGb: path.machineCpuPerGb[index] ?? NaN, idleShare: path.idleShare[index] ?? NaN, serverCpuPerGb: path.serverCpuPerGb[index] ?? NaN };
  };
  const agentNonTty = best('agent non-TTY');
  const kubectlNonTty = best('kubectl non-TTY');
  const relayNonTty = best('relay non-TTY');
  const cliNonTty = best('CLI non-TTY');
  const agentTty = best('agent TTY');
  const cliTty = best('CLI TTY');
  const nonTtyRatio = agentNonTty.mbps / cliNonTty.mbps;
  const ttyRatio = agentTty.mbps / cliTty.mbps;
  const percent = (share: number) => `${Math.round(share * 100)} %`;
  return {
    id: 'throughput',
    title: `Output throughput (${megabytes === ttyMegabytes ? megabytes : `${megabytes} MiB, with a TTY ${ttyMegabytes}`} MiB from dd bs=1M)`,
    figures: {
      'agent non-TTY MB/s': round(agentNonTty.mbps, 1),
      'docker CLI non-TTY MB/s': round(cliNonTty.mbps, 1),
      'agent / CLI non-TTY': round(nonTtyRatio),
      'kubectl through the agent non-TTY MB/s': round(kubectlNonTty.mbps, 1),
      'kubectl through the agent / CLI non-TTY': round(kubectlNonTty.mbps / cliNonTty.mbps),
      'least Node.js relay non-TTY MB/s': round(relayNonTty.mbps, 1),
      'least Node.js relay / CLI non-TTY': round(relayNonTty.mbps / cliNonTty.mbps),
      'agent TTY MB/s': round(agentTty.mbps, 1),
      'docker CLI TTY MB/s': round(cliTty.mbps, 1),
      'agent / CLI TTY': round(ttyRatio),
      // From the same (best) run as the rate beside it, like the machine's figures below.
      'agent CPU s/GB non-TTY': round(agentNonTty.serverCpuPerGb),
      'agent CPU s/GB non-TTY, kubectl receiving': round(kubectlNonTty.serverCpuPerGb),
      'least Node.js relay CPU s/GB non-TTY': round(relayNonTty.serverCpuPerGb),
      'agent CPU s/GB TTY': round(agentTty.serverCpuPerGb),
      // What each path costs the whole machine (dd, the shim, dockerd, the agent, the client), in the
      // best run of each: with the CPUs this busy, the rates are in inverse proportion to these.
      'machine CPU s/GB non-TTY: agent path / kubectl path / relay path / CLI path': [agentNonTty, kubectlNonTty, relayNonTty, cliNonTty].map((p) => round(p.machineCpuPerGb, 1)).join(' / '),
      'machine idle non-TTY: agent path / kubectl path / relay path / CLI path': [agentNonTty, kubectlNonTty, relayNonTty, cliNonTty].map((p) => percent(p.idleShare)).join(' / '),
      'machine CPU s/GB TTY: agent path / CLI path': [agentTty, cliTty].map((p) => round(p.machineCpuPerGb, 1)).join(' / '),
    },
    goals: [
      { text: 'non-TTY ≥ 0.9× docker CLI', met: nonTtyRatio >= 0.9, detail: `${round(nonTtyRatio)}×` },
      { text: 'TTY ≥ 1.0× docker CLI', met: ttyRatio >= 1.0, detail: `${round(ttyRatio)}×` },
    ],
    chart: {
      kind: 'bars',
      unit: 'MB/s',
      series: (Object.keys(runs) as PathLabel[]).filter((label) => runs[label].mbps.length > 0).map((label) => ({ label, values: [best(label).mbps] })),
    },
  };
}
