// The concurrency scenario's clients as a pool of worker threads (echo-worker.ts), each holding its
// share of the shells on its own event loop — as many clients would, rather than one process
// queueing 500 connections' echoes behind each other.
import { Worker } from 'node:worker_threads';
import type { Echoes } from './echo-shells.js';
import type { ClientLoopDelay, EchoWorkerData, FromEchoWorker, ToEchoWorker } from './echo-worker.js';

export interface ShellPool {
  /** Runs the echo test on every shell at once: every echo, and how late the latest client thread's loop ran. */
  echo(rounds: number): Promise<{ echoes: Echoes; clientLoopDelay: ClientLoopDelay; duringClientGc: boolean[] }>;
  /** Ends every shell and stops the threads. */
  close(): Promise<void>;
}

/** A worker thread running a TypeScript module: tsx's loader is registered in the thread first. */
function typeScriptWorker(module: URL, workerData: unknown): Worker {
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(module.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** The next message of `type` from `worker`; rejects if the thread fails or exits first. */
function next<T extends FromEchoWorker['type']>(worker: Worker, type: T): Promise<Extract<FromEchoWorker, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: FromEchoWorker) => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as Extract<FromEchoWorker, { type: T }>);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new Error(`bench: an echo client thread failed: ${err.message}`, { cause: err }));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`bench: an echo client thread exited (code ${code}) while waiting for '${type}'`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

/** Opens `sessions` shells over `threads` worker threads; resolves once every shell is open. */
export async function openShellPool(options: Omit<EchoWorkerData, 'thread' | 'threads'>, threads: number): Promise<ShellPool> {
  const module = new URL('./echo-worker.ts', import.meta.url);
  const workers = Array.from({ length: threads }, (_, thread) => typeScriptWorker(module, { ...options, thread, threads } satisfies EchoWorkerData));
  // A thread that has exited answers nothing, and says nothing more: close() must not wait for it.
  const exited = new Set<Worker>();
  for (const worker of workers) worker.once('exit', () => exited.add(worker));
  const send = (message: ToEchoWorker) => {
    for (const worker of workers) worker.postMessage(message);
  };
  try {
    await Promise.all(workers.map((worker) => next(worker, 'opened')));
  } catch (err) {
    await Promise.all(workers.map((worker) => worker.terminate()));
    throw err;
  }
  return {
    async echo(rounds) {
      const replies = workers.map((worker) => next(worker, 'latencies'));
      send({ type: 'echo', rounds });
      const all = await Promise.all(replies);
      return {
        echoes: { latencies: all.flatMap((reply) => reply.echoes.latencies), sentAt: all.flatMap((reply) => reply.echoes.sentAt) },
        clientLoopDelay: { p99: Math.max(...all.map((reply) => reply.loopDelay.p99)), max: Math.max(...all.map((reply) => reply.loopDelay.max)) },
        duringClientGc: all.flatMap((reply) => reply.duringClientGc),
      };
    },
    async close() {
      const live = workers.filter((worker) => !exited.has(worker));
      const closed = live.map((worker) => next(worker, 'closed'));
      for (const worker of live) worker.postMessage({ type: 'close' } satisfies ToEchoWorker);
      try {
        await Promise.all(closed);
      } finally {
        await Promise.all(workers.map((worker) => worker.terminate()));
      }
    },
  };
}
