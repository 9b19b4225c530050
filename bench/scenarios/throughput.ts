// Scenario 3: output throughput of `dd bs=1M` in the container, received by a WebSocket client on
// this machine, without and with a TTY — against the docker CLI writing to /dev/null.
import { agentExec, execUrl } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { cpuSeconds, round } from '../lib/stats.js';

export async function throughput(ctx: BenchContext): Promise<ScenarioResult> {
  const megabytes = ctx.quick ? 256 : 1024;
  // Non-TTY runs twice (best of two: it is the figure drift moves most); TTY, at ~45 MB/s, once.
  const rounds = ctx.quick ? 1 : 2;
  const dd = ['dd', 'if=/dev/zero', 'bs=1M', `count=${megabytes}`];
  const results: Record<string, { mbps: number[]; cpuPerGb: number[] }> = {
    'agent non-TTY': { mbps: [], cpuPerGb: [] },
    'CLI non-TTY': { mbps: [], cpuPerGb: [] },
    'agent TTY': { mbps: [], cpuPerGb: [] },
    'CLI TTY': { mbps: [], cpuPerGb: [] },
  };
  const pid = ctx.agent.process.pid!;
  for (let i = 0; i < rounds; i++) {
    for (const tty of i === 0 ? [false, true] : [false]) {
      const command = tty ? ['sh', '-c', `stty raw -echo; ${dd.join(' ')} 2>/dev/null`] : dd;
      const url = execUrl(ctx.agent, 'default', 'bench', 'app', command, tty ? 'stdout=true&tty=true' : 'stdout=true&stderr=true');
      const cpuBefore = cpuSeconds(pid);
      const run = await agentExec(ctx.agent, url);
      const cpu = cpuSeconds(pid) - cpuBefore;
      const label = tty ? 'agent TTY' : 'agent non-TTY';
      if (run.bytes < megabytes * 1024 * 1024) throw new Error(`${label}: received ${run.bytes} bytes, expected ${megabytes} MiB`);
      results[label]!.mbps.push(megabytes / (run.ms / 1000));
      results[label]!.cpuPerGb.push(cpu / (megabytes / 1024));
      const cli = await ctx.timeProcess(ctx.dockerCli, ['exec', ...(tty ? ['-t'] : []), ctx.app.id, ...command], ctx.dockerEnv);
      results[tty ? 'CLI TTY' : 'CLI non-TTY']!.mbps.push(megabytes / (cli.ms / 1000));
    }
  }
  const best = (label: string) => Math.max(...results[label]!.mbps);
  const nonTtyRatio = best('agent non-TTY') / best('CLI non-TTY');
  const ttyRatio = best('agent TTY') / best('CLI TTY');
  return {
    id: 'throughput',
    title: `Output throughput (${megabytes} MiB from dd bs=1M)`,
    figures: {
      'agent non-TTY MB/s': round(best('agent non-TTY'), 1),
      'docker CLI non-TTY MB/s': round(best('CLI non-TTY'), 1),
      'agent / CLI non-TTY': round(nonTtyRatio),
      'agent TTY MB/s': round(best('agent TTY'), 1),
      'docker CLI TTY MB/s': round(best('CLI TTY'), 1),
      'agent / CLI TTY': round(ttyRatio),
      'agent CPU s/GB non-TTY': round(Math.min(...results['agent non-TTY']!.cpuPerGb)),
      'agent CPU s/GB TTY': round(Math.min(...results['agent TTY']!.cpuPerGb)),
    },
    goals: [
      { text: 'non-TTY ≥ 0.9× docker CLI', met: nonTtyRatio >= 0.9, detail: `${round(nonTtyRatio)}×` },
      { text: 'TTY ≥ 1.0× docker CLI', met: ttyRatio >= 1.0, detail: `${round(ttyRatio)}×` },
    ],
    chart: {
      kind: 'bars',
      unit: 'MB/s',
      series: Object.entries(results).map(([label, r]) => ({ label, values: [Math.max(...r.mbps)] })),
    },
  };
}
