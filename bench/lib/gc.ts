// A full garbage collection in an agent (or the bench's relay, ws-relay.ts), through the V8
// inspector (HeapProfiler.collectGarbage is a low-memory notification: everything collectable is
// collected and V8 gives back what a burst of work left committed), so memory can be measured
// "after GC". Only processes started with --inspect, which the bench does for the scenario that
// needs it.
import WebSocket from 'ws';
import type { TestAgent } from '../../test/helpers/agent.js';
import type { Pause } from './stats.js';

/** The inspector's option for a process whose garbage the bench collects: on a kernel-chosen loopback port. */
export const INSPECT_OPTION = '--inspect=127.0.0.1:0';
/** NODE_OPTIONS for an agent whose garbage the bench collects. */
export const INSPECTABLE = { NODE_OPTIONS: INSPECT_OPTION };

/** A process started with the inspector: what it printed says where the inspector listens. */
export type Inspectable = Pick<TestAgent, 'output'>;

/** Sends one inspector command to the process and resolves with its result. */
async function inspect(target: Inspectable, method: string, params: object = {}): Promise<unknown> {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(target.output())?.[1];
  if (!url) throw new Error(`the process was not started with the inspector (${INSPECT_OPTION}): cannot run ${method}`);
  const ws = new WebSocket(url);
  try {
    return await new Promise<unknown>((resolve, reject) => {
      ws.once('open', () => ws.send(JSON.stringify({ id: 1, method, params })));
      ws.on('message', (data: Buffer) => {
        const reply = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
        if (reply.id !== 1) return;
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result);
      });
      ws.once('error', reject);
    });
  } finally {
    ws.close();
  }
}

export async function collectGarbage(target: Inspectable): Promise<void> {
  await inspect(target, 'HeapProfiler.collectGarbage');
}

/** The process's process.memoryUsage(), read through the inspector. */
export async function memoryUsage(target: Inspectable): Promise<NodeJS.MemoryUsage> {
  const result = (await inspect(target, 'Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
  return JSON.parse(result.result.value) as NodeJS.MemoryUsage;
}

/**
 * Starts recording the agent's GC pauses (ms since the epoch), through the inspector: a
 * PerformanceObserver in the agent, kept on `globalThis` until `agentGcPauses` reads it.
 */
export async function recordAgentGcPauses(agent: TestAgent): Promise<void> {
  const expression = `(() => {
    const pauses = (globalThis.__benchGcPauses = []);
    const keep = (entries) => { for (const e of entries) pauses.push({ from: performance.timeOrigin + e.startTime, to: performance.timeOrigin + e.startTime + e.duration }); };
    const observer = new PerformanceObserver((list) => keep(list.getEntries()));
    observer.observe({ entryTypes: ['gc'] });
    globalThis.__benchGcFlush = () => { keep(observer.takeRecords()); observer.disconnect(); };
    return 'recording';
  })()`;
  await inspect(agent, 'Runtime.evaluate', { expression, returnByValue: true });
}

/** The agent's GC pauses recorded since `recordAgentGcPauses`, which stops recording them. */
export async function agentGcPauses(agent: TestAgent): Promise<Pause[]> {
  const result = (await inspect(agent, 'Runtime.evaluate', {
    expression: `(() => {
      globalThis.__benchGcFlush();
      const pauses = JSON.stringify(globalThis.__benchGcPauses);
      delete globalThis.__benchGcFlush;
      delete globalThis.__benchGcPauses;
      return pauses;
    })()`,
    returnByValue: true,
  })) as { result: { value: string } };
  return JSON.parse(result.result.value) as Pause[];
}
