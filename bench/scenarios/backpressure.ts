// Scenario 5: `yes` into a client that stalls: how much the agent's memory grows, against the
// configured high-water mark; then the client reads and the data must be right.
import WebSocket from 'ws';
import { execUrl } from '../lib/clients.js';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { round, rssBytes } from '../lib/stats.js';

const HIGH_WATER_MARK = 1024 * 1024;

export async function backpressure(ctx: BenchContext): Promise<ScenarioResult> {
  const stallMs = ctx.quick ? 5_000 : 30_000;
  const pid = ctx.agent.process.pid!;
  const baseline = rssBytes(pid);
  const ws = new WebSocket(execUrl(ctx.agent, 'default', 'bench', 'app', ['yes'], 'stdout=true'), ['v5.channel.k8s.io'], {
    ca: ctx.agent.caPem,
    headers: { authorization: `Bearer ${ctx.agent.token}` },
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  const samples: number[] = [];
  const started = Date.now();
  while (Date.now() - started < stallMs) {
    samples.push(rssBytes(pid) - baseline);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  let received = 0;
  let expectY = true;
  let bad = false;
  await new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      if (data[0] !== 1) return;
      for (let i = 1; i < data.length; i++) {
        if (data[i] !== (expectY ? 0x79 : 0x0a)) bad = true;
        expectY = !expectY;
      }
      received += data.length - 1;
      if (received > 32 * 1024 * 1024) resolve();
    });
    socket.resume();
  });
  ws.terminate();
  const growth = Math.max(...samples);
  const limit = HIGH_WATER_MARK + 25 * 1024 * 1024;
  return {
    id: 'backpressure',
    title: `yes into a client that stalls ${stallMs / 1000} s`,
    figures: {
      'agent RSS growth MB': round(growth / 1048576, 1),
      'limit MB (high-water mark + 25 MB)': round(limit / 1048576, 1),
      'growth / limit': round(growth / limit),
      'data correct after the stall': bad ? 'no' : 'yes',
    },
    goals: [
      { text: 'RSS growth ≤ high-water mark + 25 MB', met: growth <= limit, detail: `${round(growth / 1048576, 1)} MB` },
      { text: 'the data is "y\\n" repeated after the stall', met: !bad, detail: bad ? 'corrupt' : 'correct' },
    ],
    chart: { kind: 'bars', unit: 'MB', series: [{ label: 'RSS growth', values: [growth / 1048576] }, { label: 'limit', values: [limit / 1048576] }] },
  };
}
