// Sessions that never leak, against a real engine: abrupt disconnects in bulk, an agent killed
// with live sessions and restarted, a stalled reader of `yes`, timeouts, an engine restart under a
// live session, graceful SIGTERM, and metrics that promtool accepts and that match what ran.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as tls from 'node:tls';
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type WebSocket from 'ws';
import { startAgent, type TestAgent } from '../helpers/agent.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { startPrivateDocker, useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';
import { closeStdin, collect, execPath, onMessage, openExec, sendResize, sendStdin } from '../helpers/exec-client.js';
import { pidsWithCommandLine, waitUntil } from '../helpers/proc-scan.js';
import { runCommand } from '../helpers/run-command.js';

let docker: TestDocker;
let app: TestContainer;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  docker = await useTestDocker();
  app = await startContainer(docker, { labels: podLabels('default', 'life', 'app') });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await app?.remove();
  await docker?.stop();
});

async function agentFor(args: string[] = [], stateDir?: string): Promise<TestAgent> {
  const agent = await startAgent(docker, { args: ['--log-level', 'warn', ...args], ...(stateDir ? { stateDir } : {}) });
  cleanups.push(() => agent.stop());
  return agent;
}

function get(agent: TestAgent, path: string, token: string | null = agent.token): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: agent.port, path, ca: agent.caPem, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample in Prometheus text format (sum over label sets matching `labels`). */
function sample(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

describe('bulk abrupt disconnects', () => {
  test('200 sessions dropped without a close frame, both modes: no process, no session, no fd left', async () => {
    const agent = await agentFor(['--session-rate-per-minute', '1000']);
    // Warm up (first TLS handshake, engine connection pool), then take the fd baseline.
    await collect(await openExec(agent, execPath('default', 'life', { command: 'true', container: 'app', stdout: true })));
    const baselineFds = fdCount(agent.process.pid!);
    const markers: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const sockets: WebSocket[] = [];
      const batchMarkers: string[] = [];
      for (let i = 0; i < 10; i++) {
        const n = 4_000_000 + batch * 10 + i;
        const marker = `sleep ${n}`;
        batchMarkers.push(marker);
        const container = i % 2 === 0 ? 'app' : 'app.nsenter';
        const tty = i % 4 === 1;
        const ws = await openExec(agent, execPath('default', 'life', { command: ['sleep', String(n)], container, stdout: true, ...(tty ? { tty: true, stdin: true } : { stderr: true }) }));
        if (tty) sendResize(ws, 80, 24);
        sockets.push(ws);
      }
      await waitUntil(() => batchMarkers.every((m) => pidsWithCommandLine(m).length === 1), 15_000, `batch ${batch} to start`);
      for (const ws of sockets) (ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
      markers.push(...batchMarkers);
    }
    await waitUntil(() => markers.every((m) => pidsWithCommandLine(m).length === 0), 10_000, 'every session process to be gone');
    await waitUntil(async () => sample((await get(agent, '/metrics')).body, 'execlet_sessions_active') === 0, 10_000, 'no live session in the registry');
    await waitUntil(() => fdCount(agent.process.pid!) <= baselineFds + 2, 10_000, `agent fds back to baseline (${baselineFds})`);
    const metricsText = (await get(agent, '/metrics')).body;
    assert.equal(sample(metricsText, 'execlet_sessions_ended_total', { outcome: 'disconnect' }), 200);
  });
});

describe('agent crash', () => {
  test('SIGKILL with 20 live sessions, restart: 20 orphans reaped before it serves, all 20 processes gone within 5 s', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'execlet-crash-'));
    cleanups.push(async () => rmSync(stateDir, { recursive: true, force: true }));
    const first = await agentFor([], stateDir);
    const markers = Array.from({ length: 20 }, (_, i) => `sleep ${5_000_000 + i}`);
    for (const marker of markers) {
      await openExec(first, execPath('default', 'life', { command: marker.split(' '), container: 'app', stdout: true, stderr: true }));
    }
    await waitUntil(() => markers.every((m) => pidsWithCommandLine(m).length === 1), 15_000, 'the 20 processes to run');
    const exited = once(first.process, 'exit');
    first.process.kill('SIGKILL');
    await exited;
    // Docker exec processes belong to the container, not the agent: they survive its death.
    assert.ok(markers.every((m) => pidsWithCommandLine(m).length === 1), 'the exec processes outlived the agent');
    const second = await agentFor([], stateDir);
    // The agent reaps before it serves: counted by the time it answers, and gone within 5 s of that
    // (the start-up itself is not timed: on a loaded machine it can take seconds).
    assert.equal(sample((await get(second, '/metrics')).body, 'execlet_orphans_reaped_total'), 20);
    await waitUntil(() => markers.every((m) => pidsWithCommandLine(m).length === 0), 5_000, 'the orphans to be gone');
  });
});

describe('backpressure', () => {
  test('yes into a client that stalls 30 s: agent RSS stays within the high-water mark + 25 MB, then the data is right', { timeout: 90_000 }, async () => {
    const agent = await agentFor();
    const pid = agent.process.pid!;
    await collect(await openExec(agent, execPath('default', 'life', { command: 'true', container: 'app', stdout: true })));
    const baseline = rssBytes(pid);
    const ws = await openExec(agent, execPath('default', 'life', { command: 'yes', container: 'app', stdout: true }));
    // Every byte is checked to be part of "y\n" repeated, across message boundaries — from the
    // first frame on, so none read before the stall is missed.
    let received = 0;
    let expectY = true;
    let bad = false;
    const enough = new Promise<void>((resolve) => {
      onMessage(ws, (data) => {
        if (data[0] !== 1) return;
        for (let i = 1; i < data.length; i++) {
          if (data[i] !== (expectY ? 0x79 : 0x0a)) bad = true;
          expectY = !expectY;
        }
        received += data.length - 1;
        if (received > 64 * 1024 * 1024) resolve();
      });
    });
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    let peak = baseline;
    const started = Date.now();
    while (Date.now() - started < 30_000) {
      peak = Math.max(peak, rssBytes(pid));
      await new Promise((resolve) => setTimeout(resolve, 250)); // sampling interval, not synchronisation
    }
    const growth = peak - baseline;
    assert.ok(growth <= 1024 * 1024 + 25 * 1024 * 1024, `agent RSS grew by ${(growth / 1048576).toFixed(1)} MB`);
    // Now read fast.
    socket.resume();
    await enough;
    assert.equal(bad, false, 'the stream is "y\\n" repeated');
    const closed = once(ws, 'close');
    ws.close();
    await closed;
    await waitUntil(() => pidsWithCommandLine('yes').length === 0, 5_000, 'yes to be gone');
  });
});

describe('timeouts', () => {
  test('idle timeout and max duration end sessions with a Status saying why', async () => {
    const agent = await agentFor(['--idle-timeout-seconds', '2', '--max-duration-seconds', '3']);
    const idleStarted = performance.now();
    const idle = await collect(await openExec(agent, execPath('default', 'life', { command: ['sleep', '6000001'], container: 'app', stdout: true })));
    const idleMs = performance.now() - idleStarted;
    assert.deepEqual(JSON.parse(idle.error), {
      metadata: {},
      status: 'Failure',
      reason: 'Timeout',
      code: 504,
      message: 'session ended: no input or output for 2s (idle timeout)',
    });
    // From the request: the handshake, the exec's start, 2 s idle, then the kill and the exit, on a machine that may be busy.
    assert.ok(idleMs >= 2000 && idleMs < 6000, `idle session lasted ${idleMs} ms`);
    const busy = await collect(
      await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', 'while true; do echo tick; sleep 0.3; done'], container: 'app.nsenter', stdout: true })),
    );
    assert.equal(JSON.parse(busy.error).message, 'session ended: it reached its maximum duration of 3s');
    assert.match(busy.stdout.toString(), /^(tick\n)+$/);
    await waitUntil(() => pidsWithCommandLine('sleep 6000001').length === 0, 3_000, 'the idle process to be gone');
  });
});

describe('background processes', () => {
  test('what a session leaves running in the background is ended within seconds of its end, not at the next sweep', async () => {
    // An hour between sweeps: only the sweep a session's end asks for can reap them in time.
    const agent = await agentFor(['--reaper-interval-seconds', '3600']);
    const reaped = async () => sample((await get(agent, '/metrics')).body, 'execlet_orphans_reaped_total');
    assert.equal(await reaped(), 0);
    const left = [
      { container: 'app', commandLine: 'sleep 6600001' },
      { container: 'app.nsenter', commandLine: 'sleep 6600002' },
    ];
    for (const { container, commandLine } of left) {
      const result = await collect(
        await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', `${commandLine} >/dev/null 2>&1 & echo started`], container, stdout: true })),
      );
      assert.equal(result.stdout.toString(), 'started\n', container);
      assert.equal(JSON.parse(result.error).status, 'Success', container);
    }
    // Each sleep outlived its session's shell; the agent, not the sleep (it never ends), ends it.
    await waitUntil(() => left.every(({ commandLine }) => pidsWithCommandLine(commandLine).length === 0), 15_000, 'the background processes to be ended');
    // The sweep counts them once it has seen them die (it polls), which may come a little after.
    await waitUntil(async () => (await reaped()) >= 2, 2_000, 'the sweep to count them');
    assert.equal(await reaped(), 2);
  });

  test('a background process that keeps the output open does not keep the session open, in either mode', async () => {
    const agent = await agentFor(['--reaper-interval-seconds', '3600']);
    const left = [
      { container: 'app', commandLine: 'sleep 6600003' },
      { container: 'app.nsenter', commandLine: 'sleep 6600004' },
    ];
    for (const { container, commandLine } of left) {
      const started = performance.now();
      const ws = await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', `${commandLine} & echo started`], container, stdout: true, stderr: true }));
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${container}: the session was still open after 15 s`)), 15_000)));
      try {
        const result = await Promise.race([collect(ws), stuck]);
        assert.equal(result.stdout.toString(), 'started\n', container);
        assert.equal(JSON.parse(result.error).status, 'Success', container);
      } finally {
        clearTimeout(timer);
        ws.terminate();
      }
      assert.ok(performance.now() - started < 15_000, container);
    }
    await waitUntil(() => left.every(({ commandLine }) => pidsWithCommandLine(commandLine).length === 0), 15_000, 'the background processes to be ended');
  });
});

describe('start rate', () => {
  test('exec requests refused for their upgrade (a plain GET, a SPDY POST) do not count towards the start rate', async () => {
    const agent = await agentFor(['--session-rate-per-minute', '2']);
    const path = execPath('default', 'life', { command: ['true'], container: 'app', stdout: true });
    for (let i = 0; i < 3; i++) assert.equal((await get(agent, path)).status, 400, 'not an upgrade');
    for (let i = 0; i < 2; i++) {
      const result = await collect(await openExec(agent, path));
      assert.equal(JSON.parse(result.error).status, 'Success', `session ${i + 1} of the 2 a minute`);
    }
    const third = await openExec(agent, path).then(
      () => null,
      (err: { statusCode?: number }) => err.statusCode,
    );
    assert.equal(third, 429, 'the rate still holds for sessions');
  });
});

describe('logs', () => {
  test("a command's arguments stay out of the request log (they may hold secrets); the session's log line names the program", async () => {
    const agent = await agentFor(['--log-level', 'info']);
    const result = await collect(await openExec(agent, execPath('default', 'life', { command: ['env', 'PGPASSWORD=hunter2-6900001', 'true'], container: 'app', stdout: true })));
    assert.equal(JSON.parse(result.error).status, 'Success');
    await waitUntil(() => agent.output().includes('command=[redacted]') && agent.output().includes('"program":"env"'), 10_000, 'the request and session log lines');
    assert.ok(!agent.output().includes('hunter2-6900001'), 'the argument is in no log line');
  });
});

describe('dead peers', () => {
  test('a process that does not read its stdin for a while is not taken for a dead client', async () => {
    const agent = await agentFor(['--ping-interval-seconds', '1']);
    // The process reads nothing for 4 s, so the client's input is paused (and with it its pongs) for longer than two ping intervals.
    const ws = await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', 'sleep 4; wc -c'], container: 'app.nsenter', stdin: true, stdout: true }));
    const result = collect(ws);
    const input = 16 * 1024 * 1024;
    sendStdin(ws, Buffer.alloc(input, 0x78)); // far more than the pipes and buffers between hold
    closeStdin(ws);
    const r = await result;
    assert.equal(JSON.parse(r.error).status, 'Success', r.error);
    assert.equal(r.stdout.toString().trim(), String(input));
  });

  test('a client that answers no ping while its kernel acknowledges them is kept; once it goes, its process is ended', async () => {
    const agent = await agentFor(['--ping-interval-seconds', '1']);
    const ws = await openExec(agent, execPath('default', 'life', { command: ['sleep', '6500001'], container: 'app', stdout: true }), { autoPong: false });
    const closed = once(ws, 'close');
    await waitUntil(() => pidsWithCommandLine('sleep 6500001').length === 1, 10_000, 'the session to run');
    // Four ping intervals unanswered (the pings taken by its kernel): a client that is there.
    const droppedMeanwhile = await Promise.race([closed.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 4000))]); // a span the client stays silent, not synchronisation
    assert.equal(droppedMeanwhile, false, 'the agent kept the client');
    assert.equal(pidsWithCommandLine('sleep 6500001').length, 1, 'its process runs on');
    ws.terminate();
    await waitUntil(() => pidsWithCommandLine('sleep 6500001').length === 0, 6_000, 'the process of the client that went to be ended');
    // The session is counted once the engine has reported the exit, a moment after the process is gone.
    const disconnects = async () => sample((await get(agent, '/metrics')).body, 'execlet_sessions_ended_total', { outcome: 'disconnect' });
    await waitUntil(async () => (await disconnects()) === 1, 5_000, 'the session to be counted as a disconnect');
  });
});

describe('engine outage', () => {
  test('dockerd killed under a live session: Failure Status within 2 s, /readyz 503 then 200, new sessions work', { timeout: 120_000 }, async () => {
    const engine = await startPrivateDocker();
    cleanups.push(() => engine.stop());
    const container = await startContainer(engine, { labels: podLabels('default', 'outage', 'app') });
    const agent = await startAgent(engine, { args: ['--log-level', 'warn'] });
    cleanups.push(() => agent.stop());
    assert.equal((await get(agent, '/readyz', null)).status, 200);
    const ws = await openExec(agent, execPath('default', 'outage', { command: ['sleep', '7000001'], container: 'app', stdout: true }));
    const result = collect(ws);
    await waitUntil(() => pidsWithCommandLine('sleep 7000001').length === 1, 10_000, 'the session to run');
    const killedAt = performance.now();
    await engine.killDockerd!();
    const r = await result;
    assert.ok(performance.now() - killedAt < 5000, `the session ended ${performance.now() - killedAt} ms after the engine died`);
    const status = JSON.parse(r.error) as { status: string; reason: string; message: string };
    assert.equal(status.status, 'Failure');
    assert.equal(status.reason, 'InternalError');
    assert.match(status.message, /unreachable|ECONNREFUSED|ENOENT|engine/);
    assert.equal(r.closeCode, 1000);
    const down = await get(agent, '/readyz', null);
    assert.equal(down.status, 503);
    assert.match(down.body, /not ready/);
    await engine.startDockerd!();
    await waitUntil(async () => (await get(agent, '/readyz', null)).status === 200, 10_000, '/readyz to recover');
    const fresh = await startContainer(engine, { labels: podLabels('default', 'after', 'app') });
    const again = await collect(await openExec(agent, execPath('default', 'after', { command: ['echo', 'engine-is-back'], container: 'app', stdout: true })));
    assert.equal(again.stdout.toString(), 'engine-is-back\n');
    await fresh.remove();
    await container.remove();
  });
});

describe('graceful shutdown', () => {
  test('SIGTERM with a TLS connection that never sent a request: the agent still exits 0, in about a second', async () => {
    const agent = await agentFor();
    const idle = tls.connect({ host: '127.0.0.1', port: agent.port, ca: agent.caPem });
    cleanups.push(async () => void idle.destroy());
    await once(idle, 'secureConnect');
    const exited = once(agent.process, 'exit') as Promise<[number | null, string | null]>;
    const signalledAt = performance.now();
    agent.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the agent did not exit within 10 s of SIGTERM')), 10_000)));
    const [code] = await Promise.race([exited, hung]).finally(() => clearTimeout(timer));
    assert.equal(code, 0);
    // Only the second that close() gives requests in flight; before, the connection held SIGTERM as long as it stayed open.
    assert.ok(performance.now() - signalledAt < 5000, `exited after ${Math.round(performance.now() - signalledAt)} ms`);
  });

  test('SIGTERM with live sessions: every client gets a Status, processes end, the agent exits 0 within the grace', async () => {
    const agent = await startAgent(docker, { args: ['--log-level', 'warn', '--shutdown-grace-seconds', '5'] });
    cleanups.push(() => agent.stop());
    const sessions = await Promise.all([
      openExec(agent, execPath('default', 'life', { command: ['sleep', '8000001'], container: 'app', stdout: true })),
      openExec(agent, execPath('default', 'life', { command: ['sleep', '8000002'], container: 'app.nsenter', stdout: true })),
      openExec(agent, execPath('default', 'life', { command: 'sh', container: 'app', stdin: true, stdout: true, tty: true })),
    ]);
    sendResize(sessions[2]!, 80, 24);
    const results = sessions.map((ws) => collect(ws));
    await waitUntil(() => pidsWithCommandLine('sleep 8000001').length === 1 && pidsWithCommandLine('sleep 8000002').length === 1, 10_000, 'the sessions to run');
    const exited = once(agent.process, 'exit') as Promise<[number | null, string | null]>;
    const signalledAt = performance.now();
    agent.process.kill('SIGTERM');
    for (const result of results) {
      const r = await result;
      assert.deepEqual(JSON.parse(r.error), { metadata: {}, status: 'Failure', reason: 'ServiceUnavailable', code: 503, message: 'the agent is shutting down' });
      assert.equal(r.closeCode, 1000);
    }
    const [code] = await exited;
    assert.equal(code, 0);
    assert.ok(performance.now() - signalledAt < 5000, 'within the grace');
    assert.equal(pidsWithCommandLine('sleep 8000001').length + pidsWithCommandLine('sleep 8000002').length, 0);
  });
});

describe('metrics', () => {
  test('/metrics passes promtool and its counters match the sessions that ran', async () => {
    const agent = await agentFor();
    await collect(await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', 'printf 12345'], container: 'app', stdout: true })));
    await collect(await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', 'exit 3'], container: 'app.nsenter', stdout: true })));
    await get(agent, '/api', 'wrong-token');
    // A live session that has sent 7 bytes: they count before it ends.
    const ws = await openExec(agent, execPath('default', 'life', { command: ['sh', '-c', 'printf 1234567; exec sleep 9000001'], container: 'app', stdout: true }));
    let liveBytes = 0;
    onMessage(ws, (data) => {
      if (data[0] === 1) liveBytes += data.length - 1;
    });
    await waitUntil(() => liveBytes === 7 && pidsWithCommandLine('sleep 9000001').length === 1, 10_000, 'the live session');
    const text = (await get(agent, '/metrics')).body;
    const checked = await runCommand('promtool', ['check', 'metrics'], { input: text });
    assert.equal(checked.code, 0, `promtool: ${checked.stdout}${checked.stderr}`);
    assert.equal(sample(text, 'execlet_sessions_started_total', { mode: 'exec' }), 2);
    assert.equal(sample(text, 'execlet_sessions_started_total', { mode: 'nsenter' }), 1);
    assert.equal(sample(text, 'execlet_sessions_ended_total', { outcome: 'exited' }), 2);
    assert.equal(sample(text, 'execlet_sessions_active', { mode: 'exec' }), 1);
    assert.equal(sample(text, 'execlet_relayed_bytes_total', { direction: 'out' }), 5 + 7);
    assert.equal(sample(text, 'execlet_relayed_bytes_total', { direction: 'out', stream: 'tty' }), 0, 'every series exists from the start');
    assert.equal(sample(text, 'execlet_authentication_failures_total', { reason: 'invalid-token' }), 1);
    assert.equal(sample(text, 'execlet_session_start_seconds_count'), 3);
    assert.equal(sample(text, 'execlet_engine_up'), 1);
    assert.ok(sample(text, 'process_resident_memory_bytes') > 0, 'default process metrics');
    ws.terminate();
    // Its end adds nothing already counted.
    let after = '';
    await waitUntil(async () => {
      after = (await get(agent, '/metrics')).body;
      return sample(after, 'execlet_sessions_ended_total') === 3;
    }, 10_000, 'the live session ends');
    assert.equal(sample(after, 'execlet_relayed_bytes_total', { direction: 'out' }), 5 + 7);
  });
});
