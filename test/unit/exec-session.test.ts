// Unit tests for one exec session (src/session/exec-session.ts) with a fake ClientChannels and a fake
// Backend/ExecProcess built on PassThrough streams: stdin before start, the TTY size wait, resize,
// output pumping with backpressure, the final Status (exactly once), start failures, the client
// leaving at each stage, byte counts; and statusForExit / statusForStartError directly.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

import { BackendError, type Backend, type ExecProcess, type ExecSpec, type ExitStatus, type TerminalSize } from '../../src/backend/types.js';
import type { ChannelHandlers, ClientChannels, OutputStreamName } from '../../src/protocol/channel-connection.js';
import type { Status } from '../../src/protocol/status.js';
import { runExecSession, statusForExit, statusForStartError, type ExecSessionOptions, type SessionResult } from '../../src/session/exec-session.js';

// ---------------------------------------------------------------------------------------------
// Fakes

class FakeChannels implements ClientChannels {
  readonly protocol = 'v5.channel.k8s.io';
  handlers: ChannelHandlers | null = null;
  readyCount = 0;
  readonly writes: Array<{ stream: OutputStreamName; data: string }> = [];
  /** What write() answers: false = the client is behind. */
  writeResult = true;
  drainWaiters: Array<() => void> = [];
  /** ws pause()/resume() are a state, not a counter: the last call wins. */
  inputPaused = false;
  pauseCalls = 0;
  resumeCalls = 0;
  readonly finishes: Status[] = [];
  closed = false;
  /** Event order across channels and process, for ordering assertions. */
  readonly events: string[];

  constructor(events: string[] = []) {
    this.events = events;
  }

  attach(handlers: ChannelHandlers): void {
    this.handlers = handlers;
  }
  sendReady(): void {
    this.readyCount++;
    this.events.push('ready');
  }
  write(stream: OutputStreamName, data: Buffer): boolean {
    this.writes.push({ stream, data: data.toString() });
    this.events.push(`write:${stream}:${data.toString()}`);
    return this.writeResult;
  }
  onceDrained(callback: () => void): void {
    this.drainWaiters.push(callback);
  }
  pauseInput(): void {
    this.pauseCalls++;
    this.inputPaused = true;
  }
  resumeInput(): void {
    this.resumeCalls++;
    this.inputPaused = false;
  }
  finish(status: Status): void {
    this.finishes.push(status);
    this.events.push('finish');
    this.closed = true;
  }

  /** The client catches up. */
  drain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter();
  }
  /** The client leaves; like WebSocketChannels, waiting writers are released. */
  leave(reason = 'test'): void {
    this.closed = true;
    this.h.clientGone(reason);
    this.drain();
  }
  get h(): ChannelHandlers {
    assert.ok(this.handlers, 'the session attached its handlers');
    return this.handlers;
  }
  text(stream: OutputStreamName): string {
    return this.writes
      .filter((w) => w.stream === stream)
      .map((w) => w.data)
      .join('');
  }
}

class FakeProcess implements ExecProcess {
  readonly stdin: Writable | null;
  readonly stdout = new PassThrough();
  readonly stderr: PassThrough | null;
  readonly exit: Promise<ExitStatus>;
  readonly resizes: TerminalSize[] = [];
  kills = 0;
  /** What the process read from its stdin, and whether stdin was closed. */
  stdinText = '';
  stdinEnded = false;
  #resolveExit!: (status: ExitStatus) => void;
  #ended = false;

  constructor(
    spec: ExecSpec,
    private readonly events: string[],
    stdin?: Writable,
  ) {
    if (stdin) {
      this.stdin = stdin;
    } else if (spec.stdin) {
      const pass = new PassThrough();
      pass.on('data', (chunk: Buffer) => {
        this.stdinText += chunk.toString();
      });
      pass.on('end', () => {
        this.stdinEnded = true;
      });
      this.stdin = pass;
    } else {
      this.stdin = null;
    }
    this.stderr = spec.stderr && !spec.tty ? new PassThrough() : null;
    this.exit = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
  }

  async resize(size: TerminalSize): Promise<void> {
    this.resizes.push(size);
  }

  async kill(): Promise<void> {
    this.kills++;
    this.events.push('kill');
    this.end({ code: null, signal: 'SIGKILL' });
  }

  /**
   * The process ends: its output streams end, and exit resolves once they are read to the end, as
   * with the real backends (whose exit waits for the output to be drained).
   */
  end(status: ExitStatus): void {
    if (this.#ended) return;
    this.#ended = true;
    this.stdout.end();
    this.stderr?.end();
    // Read to the end, or failed or destroyed: what the real backends' 'close' waits for.
    const readToEnd = (stream: PassThrough | null) => (stream ? finished(stream).catch(() => undefined) : Promise.resolve());
    void Promise.all([readToEnd(this.stdout), readToEnd(this.stderr)]).then(() => this.#resolveExit(status));
  }
}

class FakeBackend implements Backend {
  readonly name = 'fake';
  readonly specs: ExecSpec[] = [];
  readonly processes: FakeProcess[] = [];
  /** When set, start() waits for release() (or fails with the given error). */
  #gate: { promise: Promise<void>; release: () => void; fail: (err: unknown) => void } | null = null;
  failWith: unknown = null;
  makeStdin: (() => Writable) | null = null;

  constructor(private readonly events: string[] = []) {}

  hold(): void {
    let release!: () => void;
    let fail!: (err: unknown) => void;
    const promise = new Promise<void>((resolve, reject) => {
      release = resolve;
      fail = reject;
    });
    this.#gate = { promise, release, fail };
  }
  release(): void {
    this.#gate?.release();
  }
  fail(err: unknown): void {
    this.#gate?.fail(err);
  }

  async start(spec: ExecSpec): Promise<ExecProcess> {
    this.specs.push(spec);
    this.events.push('start');
    if (this.#gate) await this.#gate.promise;
    if (this.failWith) throw this.failWith;
    const process = new FakeProcess(spec, this.events, this.makeStdin?.() ?? undefined);
    this.processes.push(process);
    return process;
  }

  get process(): FakeProcess {
    assert.equal(this.processes.length, 1, 'one process started');
    return this.processes[0]!;
  }
}

interface Harness {
  channels: FakeChannels;
  backend: FakeBackend;
  session: Promise<SessionResult>;
  logs: Array<{ level: string; msg: string; obj: object }>;
}

function spec(overrides: Partial<Omit<ExecSpec, 'initialSize'>> = {}): Omit<ExecSpec, 'initialSize'> {
  return { place: { kind: 'container', containerId: 'c0ffee' }, command: ['sh'], tty: false, stdin: false, stdout: true, stderr: true, ...overrides };
}

function startSession(
  specOverrides: Partial<Omit<ExecSpec, 'initialSize'>> = {},
  options: Partial<Pick<ExecSessionOptions, 'initialSizeWaitMs' | 'maxPendingStdin' | 'stop'>> & {
    hold?: boolean;
    setup?: (backend: FakeBackend) => void;
    /** Start the process before the session runs and hand it over as `started`, as the agent does without a TTY. */
    startedBefore?: boolean;
  } = {},
): Harness {
  const events: string[] = [];
  const channels = new FakeChannels(events);
  const backend = new FakeBackend(events);
  if (options.hold) backend.hold();
  options.setup?.(backend);
  const logs: Harness['logs'] = [];
  const log = {
    info: (obj: object, msg: string) => logs.push({ level: 'info', msg, obj }),
    warn: (obj: object, msg: string) => logs.push({ level: 'warn', msg, obj }),
  };
  const started = options.startedBefore ? backend.start(spec(specOverrides)) : undefined;
  const session = runExecSession({
    channels,
    backend,
    spec: spec(specOverrides),
    log,
    ...(started ? { started } : {}),
    ...(options.stop ? { stop: options.stop } : {}),
    ...(options.initialSizeWaitMs !== undefined ? { initialSizeWaitMs: options.initialSizeWaitMs } : {}),
    ...(options.maxPendingStdin !== undefined ? { maxPendingStdin: options.maxPendingStdin } : {}),
  });
  return { channels, backend, session, logs };
}

/** Lets pending promise callbacks and stream events run. */
async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves to 'pending' if `promise` has not settled after a few turns. */
async function stateOf(promise: Promise<unknown>): Promise<'settled' | 'pending'> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await settle();
  return settled ? 'settled' : 'pending';
}

const b = (text: string) => Buffer.from(text);

// ---------------------------------------------------------------------------------------------

describe('runExecSession: start-up', () => {
  it('attaches, sends the ready frame, and starts a non-TTY process at once', async () => {
    const { channels, backend, session } = startSession();
    assert.ok(channels.handlers, 'attached synchronously');
    assert.equal(channels.readyCount, 1);
    assert.equal(backend.specs.length, 1, 'no waiting without a TTY');
    assert.deepEqual(backend.specs[0]!.place, { kind: 'container', containerId: 'c0ffee' });
    assert.equal('initialSize' in backend.specs[0]!, false);
    await settle();
    backend.process.end({ code: 0, signal: null });
    await session;
    assert.deepEqual(channels.events.slice(0, 2), ['ready', 'start']);
  });
});

describe('runExecSession: stdin', () => {
  it('stdin arriving before the process starts is delivered in order once it runs', async () => {
    const { channels, backend, session } = startSession({ stdin: true }, { hold: true });
    channels.h.stdin(b('one '));
    channels.h.stdin(b('two '));
    await settle();
    assert.equal(backend.processes.length, 0, 'still starting');
    backend.release();
    await settle();
    channels.h.stdin(b('three'));
    await settle();
    assert.equal(backend.process.stdinText, 'one two three');
    assert.equal(backend.process.stdinEnded, false);
    backend.process.end({ code: 0, signal: null });
    const result = await session;
    assert.equal(result.bytesIn, 13);
  });

  it('stdinEnd before start ends the process stdin after the pending data', async () => {
    const { channels, backend, session } = startSession({ stdin: true }, { hold: true });
    channels.h.stdin(b('a'));
    channels.h.stdin(b('b'));
    channels.h.stdinEnd();
    backend.release();
    await settle();
    assert.equal(backend.process.stdinText, 'ab');
    assert.equal(backend.process.stdinEnded, true);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('stdinEnd after start ends the process stdin', async () => {
    const { channels, backend, session } = startSession({ stdin: true });
    await settle();
    channels.h.stdin(b('x'));
    channels.h.stdinEnd();
    await settle();
    assert.equal(backend.process.stdinText, 'x');
    assert.equal(backend.process.stdinEnded, true);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('without stdin in the spec, input is counted but dropped', async () => {
    const { channels, backend, session } = startSession({ stdin: false }, { hold: true });
    channels.h.stdin(b('ignored'));
    channels.h.stdinEnd();
    backend.release();
    await settle();
    assert.equal(backend.process.stdin, null);
    channels.h.stdin(b('more'));
    backend.process.end({ code: 0, signal: null });
    const result = await session;
    assert.equal(result.bytesIn, 11);
  });

  it('pending stdin beyond maxPendingStdin pauses input until the process runs', async () => {
    const { channels, backend, session } = startSession({ stdin: true }, { hold: true, maxPendingStdin: 4 });
    channels.h.stdin(b('abc'));
    assert.equal(channels.inputPaused, false, 'within the limit');
    channels.h.stdin(b('def'));
    assert.equal(channels.inputPaused, true, 'over the limit');
    backend.release();
    await settle();
    assert.equal(channels.inputPaused, false, 'resumed once written to the process');
    assert.equal(backend.process.stdinText, 'abcdef');
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('a full process stdin pauses client input until it drains', async () => {
    const sink = new HeldWritable();
    const { channels, backend, session } = startSession({ stdin: true }, { setup: (be) => (be.makeStdin = () => sink) });
    await settle();
    channels.h.stdin(b('12345678'));
    assert.equal(channels.inputPaused, true);
    sink.releaseAll();
    await settle();
    assert.equal(channels.inputPaused, false);
    assert.equal(sink.received, '12345678');
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it(
    'pending stdin written into a full process stdin keeps input paused until it drains',

    async () => {
      const sink = new HeldWritable();
      const { channels, backend, session } = startSession({ stdin: true }, { hold: true, maxPendingStdin: 4, setup: (be) => (be.makeStdin = () => sink) });
      try {
        channels.h.stdin(b('0123456789'));
        assert.equal(channels.inputPaused, true);
        backend.release();
        await settle();
        assert.equal(sink.writableNeedDrain, true, 'the process stdin is full');
        assert.equal(channels.inputPaused, true, 'so client input stays paused');
      } finally {
        sink.releaseAll();
        await settle();
        backend.processes[0]?.end({ code: 0, signal: null });
        await session;
      }
    },
  );

  it(
    'many pending chunks into a full process stdin add one drain listener, not one per chunk',

    async () => {
      const sink = new HeldWritable();
      sink.setMaxListeners(100); // the count is asserted below; keep the warning out of the test output
      const { channels, backend, session } = startSession({ stdin: true }, { hold: true, setup: (be) => (be.makeStdin = () => sink) });
      try {
        for (let i = 0; i < 12; i++) channels.h.stdin(b(`chunk-${i};`));
        backend.release();
        await settle();
        assert.ok(sink.listenerCount('drain') <= 1, `${sink.listenerCount('drain')} drain listeners`);
      } finally {
        sink.releaseAll();
        await settle();
        backend.processes[0]?.end({ code: 0, signal: null });
        await session;
      }
    },
  );

  it('a failing process stdin is logged, not thrown', async () => {
    const { backend, session, logs } = startSession({ stdin: true });
    await settle();
    backend.process.stdin!.destroy(new Error('EPIPE'));
    await settle();
    assert.ok(logs.some((l) => l.level === 'warn' && l.msg.includes('stdin')));
    backend.process.end({ code: 0, signal: null });
    await session;
  });
});

/** A Writable with a tiny buffer that only accepts writes when told: a process not reading its stdin. */
class HeldWritable extends Writable {
  received = '';
  #held: Array<() => void> = [];
  constructor() {
    super({ highWaterMark: 4 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.received += chunk.toString();
    this.#held.push(() => callback());
  }
  releaseAll(): void {
    // Each released write lets the next buffered one through, so loop until nothing is held.
    for (let guard = 0; guard < 1000 && this.#held.length > 0; guard++) {
      const held = this.#held;
      this.#held = [];
      for (const done of held) done();
    }
  }
}

describe('runExecSession: TTY size', () => {
  it('with a TTY, waits for the first resize and starts with it as initialSize', async () => {
    const { channels, backend, session } = startSession({ tty: true, stdin: true, stderr: false }, { initialSizeWaitMs: 10_000 });
    await settle();
    assert.equal(backend.specs.length, 0, 'waiting for the size');
    channels.h.resize({ width: 120, height: 40 });
    await settle();
    assert.equal(backend.specs.length, 1);
    assert.deepEqual(backend.specs[0]!.initialSize, { width: 120, height: 40 });
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('starts anyway after initialSizeWaitMs, without an initialSize', async () => {
    const waitMs = 1000; // so that the check before it, a few turns later, comes first even on a busy machine
    const started = performance.now();
    const { backend, session } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: waitMs });
    await settle();
    assert.equal(backend.specs.length, 0);
    while (backend.specs.length === 0 && performance.now() - started < 10_000) await sleep(10);
    assert.equal(backend.specs.length, 1);
    assert.ok(performance.now() - started >= waitMs - 1, 'not before initialSizeWaitMs');
    assert.equal('initialSize' in backend.specs[0]!, false);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('stdin typed during the size wait is delivered after start', async () => {
    const { channels, backend, session } = startSession({ tty: true, stdin: true, stderr: false }, { initialSizeWaitMs: 10_000 });
    channels.h.stdin(b('ls\r'));
    channels.h.resize({ width: 80, height: 24 });
    await settle();
    assert.equal(backend.process.stdinText, 'ls\r');
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('a resize after start reaches the process', async () => {
    const { channels, backend, session } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: 10_000 });
    channels.h.resize({ width: 80, height: 24 });
    await settle();
    channels.h.resize({ width: 100, height: 30 });
    channels.h.resize({ width: 101, height: 31 });
    assert.deepEqual(backend.process.resizes, [
      { width: 100, height: 30 },
      { width: 101, height: 31 },
    ]);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('a resize message that is not valid is logged and said on the terminal once the process runs', async () => {
    const { channels, backend, session, logs } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: 50 });
    channels.h.resizeRefused!('resize: Width must be an integer in 0-65535, got -1');
    while (backend.specs.length === 0) await sleep(10);
    await settle();
    const warned = logs.find((l) => l.level === 'warn' && /resize message that is not valid/.test(l.msg));
    assert.deepEqual(warned?.obj, { problem: 'resize: Width must be an integer in 0-65535, got -1' });
    const said = channels.writes.filter((w) => w.stream === 'stdout').map((w) => w.data);
    assert.deepEqual(said, ['\r\n[execlet] The terminal size the client sent is not valid (resize: Width must be an integer in 0-65535, got -1): the terminal keeps its size, and later sizes are ignored.\r\n']);
    // What the client sent may be quoted in the problem: its control characters do not reach the terminal.
    channels.h.resizeRefused!('resize: invalid JSON: Unexpected token \u001b in "{\u001b[2J"');
    assert.match(channels.writes.at(-1)!.data, /\(resize: invalid JSON: Unexpected token \? in "\{\?\[2J"\)/);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it('a size with no rows or no columns is no size: it neither ends the wait nor reaches the process', async () => {
    const { channels, backend, session } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: 10_000 });
    channels.h.resize({ width: 0, height: 0 });
    channels.h.resize({ width: 100, height: 0 });
    await settle();
    assert.equal(backend.specs.length, 0, 'still waiting for a size');
    channels.h.resize({ width: 80, height: 24 });
    await settle();
    assert.deepEqual(backend.specs[0]!.initialSize, { width: 80, height: 24 });
    channels.h.resize({ width: 0, height: 30 });
    channels.h.resize({ width: 90, height: 30 });
    assert.deepEqual(backend.process.resizes, [{ width: 90, height: 30 }]);
    backend.process.end({ code: 0, signal: null });
    await session;
  });

  it(
    'a resize that arrives while the backend is starting the process is not lost',

    async () => {
      const { channels, backend, session } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: 10_000, hold: true });
      channels.h.resize({ width: 80, height: 24 });
      await settle();
      assert.equal(backend.specs.length, 1, 'start is under way');
      channels.h.resize({ width: 132, height: 50 });
      backend.release();
      await settle();
      try {
        assert.deepEqual(backend.process.resizes.at(-1), { width: 132, height: 50 });
      } finally {
        backend.process.end({ code: 0, signal: null });
        await session;
      }
    },
  );

  it('without a TTY, resizes are not forwarded', async () => {
    const { channels, backend, session } = startSession({ tty: false });
    await settle();
    channels.h.resize({ width: 80, height: 24 });
    assert.deepEqual(backend.process.resizes, []);
    backend.process.end({ code: 0, signal: null });
    await session;
  });
});

describe('runExecSession: output', () => {
  it('pumps stdout and stderr to the channels under their names, counting bytes', async () => {
    const { channels, backend, session } = startSession({ stdout: true, stderr: true });
    await settle();
    const p = backend.process;
    p.stdout.write('out-1 ');
    p.stderr!.write('err-1 ');
    p.stdout.write('out-2');
    p.stderr!.write('err-2');
    await settle();
    assert.equal(channels.text('stdout'), 'out-1 out-2');
    assert.equal(channels.text('stderr'), 'err-1 err-2');
    p.end({ code: 0, signal: null });
    const result = await session;
    assert.equal(result.bytesOut, 22);
  });

  it('all output is written before the final status', async () => {
    const { channels, backend, session } = startSession();
    await settle();
    backend.process.stdout.write('last words');
    backend.process.end({ code: 0, signal: null });
    await session;
    const events = channels.events.filter((e) => e.startsWith('write') || e === 'finish');
    assert.deepEqual(events, ['write:stdout:last words', 'finish']);
  });

  it('backpressure: a refused write pauses the stream until onceDrained fires', async () => {
    const { channels, backend, session } = startSession({ stderr: false });
    await settle();
    const p = backend.process;
    channels.writeResult = false;
    p.stdout.write('first');
    await settle();
    assert.equal(channels.writes.length, 1);
    assert.equal(p.stdout.isPaused(), true);
    assert.equal(channels.drainWaiters.length, 1);
    p.stdout.write('second');
    await settle();
    assert.equal(channels.writes.length, 1, 'nothing more while the client is behind');
    channels.writeResult = true;
    channels.drain();
    await settle();
    assert.equal(channels.text('stdout'), 'firstsecond');
    assert.equal(p.stdout.isPaused(), false);
    p.end({ code: 0, signal: null });
    await session;
  });

  it('backpressure: the status waits until the paused output is delivered', async () => {
    const { channels, backend, session } = startSession({ stderr: false });
    await settle();
    const p = backend.process;
    channels.writeResult = false;
    p.stdout.write('a');
    await settle();
    p.stdout.write('b');
    p.end({ code: 0, signal: null });
    assert.equal(await stateOf(session), 'pending');
    assert.equal(channels.finishes.length, 0);
    channels.writeResult = true;
    channels.drain();
    await session;
    assert.equal(channels.text('stdout'), 'ab');
    assert.equal(channels.finishes.length, 1);
  });

  it('an output stream error is logged and the session still finishes', async () => {
    const { channels, backend, session, logs } = startSession();
    await settle();
    backend.process.stderr!.destroy(new Error('read failed'));
    backend.process.end({ code: 0, signal: null });
    const result = await session;
    assert.equal(result.outcome, 'exited');
    assert.equal(channels.finishes.length, 1);
    assert.ok(logs.some((l) => l.level === 'warn' && JSON.stringify(l.obj).includes('read failed')));
  });
});

describe('runExecSession: the final status', () => {
  const cases: Array<{ name: string; exit: ExitStatus; check: (s: Status) => void }> = [
    { name: 'exit 0 → Success', exit: { code: 0, signal: null }, check: (s) => assert.deepEqual(s, { metadata: {}, status: 'Success' }) },
    {
      name: 'exit 3 → NonZeroExitCode carrying 3',
      exit: { code: 3, signal: null },
      check: (s) => {
        assert.equal(s.status, 'Failure');
        assert.equal(s.reason, 'NonZeroExitCode');
        assert.deepEqual(s.details?.causes, [{ reason: 'ExitCode', message: '3' }]);
      },
    },
    {
      name: 'no code, an error → InternalError 500 with the error',
      exit: { code: null, signal: null, error: 'engine lost track' },
      check: (s) => {
        assert.equal(s.reason, 'InternalError');
        assert.equal(s.code, 500);
        assert.ok(s.message?.includes('engine lost track'));
      },
    },
    {
      name: 'killed by SIGKILL → exit code 137',
      exit: { code: null, signal: 'SIGKILL' },
      check: (s) => assert.deepEqual(s.details?.causes, [{ reason: 'ExitCode', message: '137' }]),
    },
  ];
  for (const c of cases) {
    it(`finishes exactly once: ${c.name}`, async () => {
      const { channels, backend, session } = startSession();
      await settle();
      backend.process.end(c.exit);
      const result = await session;
      await settle();
      assert.equal(channels.finishes.length, 1);
      c.check(channels.finishes[0]!);
      assert.equal(result.outcome, 'exited');
      assert.deepEqual(result.exit, c.exit);
      assert.deepEqual(result.status, channels.finishes[0]);
    });
  }
});

describe('runExecSession: start failures', () => {
  const cases: Array<[string, unknown, number, string]> = [
    ['BackendError NotFound', new BackendError('no such container', 'NotFound'), 404, 'NotFound'],
    ['BackendError Conflict', new BackendError('container is paused', 'Conflict'), 409, 'Conflict'],
    ['BackendError Unavailable', new BackendError('engine unreachable', 'Unavailable'), 503, 'ServiceUnavailable'],
    ['BackendError Internal', new BackendError('odd', 'Internal'), 500, 'InternalError'],
    ['a plain Error', new Error('kaboom'), 500, 'InternalError'],
  ];
  for (const [name, err, code, reason] of cases) {
    it(`${name} → finishes with ${code} ${reason}`, async () => {
      const { channels, backend, session } = startSession({}, { setup: (be) => (be.failWith = err) });
      const result = await session;
      assert.equal(backend.processes.length, 0);
      assert.equal(channels.finishes.length, 1);
      const status = channels.finishes[0]!;
      assert.equal(status.status, 'Failure');
      assert.equal(status.code, code);
      assert.equal(status.reason, reason);
      assert.equal(status.message, `error executing command in container: ${(err as Error).message}`);
      assert.equal(result.outcome, 'error');
      assert.deepEqual(result.status, status);
      assert.equal(result.exit, null);
    });
  }

  it('statusForStartError maps directly too', () => {
    assert.equal(statusForStartError(new BackendError('x', 'NotFound')).code, 404);
    assert.equal(statusForStartError(new BackendError('x', 'Unavailable')).reason, 'ServiceUnavailable');
    assert.equal(statusForStartError(new TypeError('y')).code, 500);
  });
});

describe('runExecSession: a process started before the session ran (started)', () => {
  it('is used instead of starting another, and reported like any other', async () => {
    const { channels, backend, session } = startSession({}, { startedBefore: true });
    await settle();
    assert.equal(backend.specs.length, 1, 'started once, before the session');
    backend.process.stdout.write('out');
    backend.process.end({ code: 3, signal: null });
    const result = await session;
    assert.equal(channels.text('stdout'), 'out');
    assert.deepEqual(result.exit, { code: 3, signal: null });
    assert.equal(backend.specs.length, 1);
  });

  it('the client left while it was starting: it is killed once it runs, no finish', async () => {
    const { channels, backend, session } = startSession({}, { startedBefore: true, hold: true });
    channels.leave();
    backend.release();
    const result = await session;
    assert.equal(backend.process.kills, 1);
    assert.equal(channels.finishes.length, 0);
    assert.equal(result.outcome, 'disconnect');
  });

  it('stopped before the session ran (the stop signal had fired already): killed, and the stop\'s Status sent', async () => {
    const stopper = new AbortController();
    stopper.abort({ outcome: 'shutdown', message: 'the agent is shutting down' });
    const { channels, backend, session } = startSession({}, { startedBefore: true, stop: stopper.signal });
    const result = await session;
    assert.equal(backend.process.kills, 1);
    assert.equal(result.outcome, 'shutdown');
    assert.equal(channels.finishes.length, 1);
    assert.equal(channels.finishes[0]!.message, 'the agent is shutting down');
    assert.equal(channels.finishes[0]!.code, 503);
  });

  it('that failed to start: the start error\'s Status', async () => {
    const { channels, session } = startSession({}, { startedBefore: true, setup: (backend) => (backend.failWith = new BackendError('container c0ffee is not running', 'Conflict')) });
    const result = await session;
    assert.equal(result.outcome, 'error');
    assert.equal(channels.finishes.length, 1);
    assert.match(channels.finishes[0]!.message ?? '', /container c0ffee is not running/);
  });
});

describe('runExecSession: the client leaves', () => {
  it('during the TTY size wait: the process is never started and nothing is finished', async () => {
    const { channels, backend, session } = startSession({ tty: true, stderr: false }, { initialSizeWaitMs: 10_000 });
    await settle();
    channels.leave('closed by client');
    const started = Date.now();
    const result = await session;
    assert.ok(Date.now() - started < 1000, 'no wait for the size timeout');
    assert.equal(backend.specs.length, 0);
    assert.equal(channels.finishes.length, 0);
    assert.equal(result.outcome, 'disconnect');
    assert.equal(result.exit, null);
    assert.equal(result.status, null);
  });

  it('while the backend is starting: the process is killed right after start, no finish', async () => {
    const { channels, backend, session } = startSession({ stdin: true }, { hold: true });
    channels.h.stdin(b('never delivered'));
    channels.leave();
    backend.release();
    const result = await session;
    assert.equal(backend.process.kills, 1);
    assert.equal(backend.process.stdinText, '', 'pending stdin is not written to a process being killed');
    assert.equal(channels.finishes.length, 0);
    assert.equal(result.outcome, 'disconnect');
    assert.deepEqual(result.exit, { code: null, signal: 'SIGKILL' });
    assert.equal(result.status, null);
  });

  it('mid-run: kill() is called once, no finish, outcome disconnect', async () => {
    const { channels, backend, session } = startSession({ stdin: true });
    await settle();
    backend.process.stdout.write('partial');
    await settle();
    channels.leave();
    const result = await session;
    assert.equal(backend.process.kills, 1);
    assert.equal(channels.finishes.length, 0);
    assert.equal(result.outcome, 'disconnect');
    assert.equal(result.status, null);
    assert.equal(result.bytesOut, 7);
  });

  it('mid-run while output is paused for backpressure: still ends', async () => {
    const { channels, backend, session } = startSession({ stderr: false });
    await settle();
    channels.writeResult = false;
    backend.process.stdout.write('stuck');
    await settle();
    channels.leave();
    const result = await session;
    assert.equal(result.outcome, 'disconnect');
    assert.equal(backend.process.kills, 1);
  });
});

describe('statusForExit', () => {
  const exitCode = (s: Status) => (s.status === 'Success' ? 0 : Number(s.details?.causes?.[0]?.message));

  it('code 0 is Success, any other code NonZeroExitCode', () => {
    assert.deepEqual(statusForExit({ code: 0, signal: null }), { metadata: {}, status: 'Success' });
    assert.equal(exitCode(statusForExit({ code: 1, signal: null })), 1);
    assert.equal(exitCode(statusForExit({ code: 255, signal: null })), 255);
  });

  it('a code that would wrap to 0 never reads as success', () => {
    assert.equal(exitCode(statusForExit({ code: 256, signal: null })), 255);
  });

  it('a code wins over a signal, and over an error note', () => {
    assert.equal(exitCode(statusForExit({ code: 2, signal: 'SIGKILL' })), 2);
    assert.equal(statusForExit({ code: 0, signal: null, error: 'stderr of the engine' }).status, 'Success');
  });

  it('a signal is reported as 128+n', () => {
    assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGHUP' })), 129);
    assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGINT' })), 130);
    assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGKILL' })), 137);
    assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGTERM' })), 143);
  });

  it(
    'every signal is reported as 128+n, not only the listed ones',

    () => {
      assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGUSR1' })), 138);
      assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGALRM' })), 142);
      assert.equal(exitCode(statusForExit({ code: null, signal: 'SIGBUS' })), 135);
    },
  );

  it('neither code nor signal: InternalError, never success', () => {
    const withError = statusForExit({ code: null, signal: null, error: 'inspect failed' });
    assert.equal(withError.status, 'Failure');
    assert.equal(withError.reason, 'InternalError');
    assert.equal(withError.code, 500);
    assert.equal(withError.message, 'error executing command in container: inspect failed');
    const bare = statusForExit({ code: null, signal: null });
    assert.equal(bare.status, 'Failure');
    assert.ok(bare.message?.includes('without an exit status'));
  });
});

describe('runExecSession: timeouts and the one-minute notice', () => {
  function timed(options: { idleTimeoutMs?: number; maxDurationMs?: number }) {
    const events: string[] = [];
    const channels = new FakeChannels(events);
    const backend = new FakeBackend(events);
    const log = { info: () => undefined, warn: () => undefined };
    const session = runExecSession({ channels, backend, spec: spec({ tty: true, stdin: true, stderr: false }), log, initialSize: { width: 80, height: 24 }, ...options });
    return { channels, backend, session };
  }

  it('max duration: a TTY notice a minute before, then the process is ended with a Timeout status', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const { channels, backend, session } = timed({ maxDurationMs: 3 * 60_000 });
    await settle();
    backend.process.stdout.write('prompt$ ');
    await settle();
    t.mock.timers.tick(2 * 60_000 - 1);
    assert.ok(!channels.writes.some((w) => w.data.includes('[execlet]')), 'no notice yet');
    t.mock.timers.tick(1);
    assert.deepEqual(channels.writes.at(-1), { stream: 'stdout', data: '\r\n[execlet] This session will be ended in 1 minute: it reaches its maximum duration of 3m.\r\n' });
    t.mock.timers.tick(60_000);
    await settle();
    const result = await session;
    assert.equal(result.outcome, 'maxDuration');
    assert.deepEqual(channels.finishes, [{ metadata: {}, status: 'Failure', reason: 'Timeout', message: 'session ended: it reached its maximum duration of 3m', code: 504 }]);
  });

  it('idle: the notice does not count as activity; input before the end starts the wait over', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const { channels, backend, session } = timed({ idleTimeoutMs: 5 * 60_000 });
    await settle();
    t.mock.timers.tick(4 * 60_000);
    assert.match(channels.writes.at(-1)?.data ?? '', /ended in 1 minute: no input or output for 4m \(idle timeout 5m\)/);
    t.mock.timers.tick(30_000);
    channels.h.stdin(Buffer.from('ls\n')); // the user is back
    t.mock.timers.tick(60_000);
    await settle();
    assert.equal(channels.finishes.length, 0, 'still running: the input reset the idle clock');
    t.mock.timers.tick(5 * 60_000);
    await settle();
    const result = await session;
    assert.equal(result.outcome, 'idle');
    assert.equal(channels.finishes[0]?.message, 'session ended: no input or output for 5m (idle timeout)');
    assert.equal(backend.processes.length, 1);
  });

  /** Counts the timers the session sets, and the longest delay asked for (Node.js runs one over 2^31 - 1 ms after 1 ms). */
  function countTimers(t: { after(fn: () => void): void }) {
    const mocked = globalThis.setTimeout;
    const seen = { calls: 0, longest: 0 };
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      seen.calls++;
      seen.longest = Math.max(seen.longest, ms ?? 0);
      return mocked(fn, ms);
    }) as typeof setTimeout;
    t.after(() => (globalThis.setTimeout = mocked));
    return seen;
  }

  it('idle, 2 minutes or less (no notice): an active session is checked again at its limit, not every millisecond', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const timers = countTimers(t);
    const { channels, session } = timed({ idleTimeoutMs: 60_000 });
    await settle();
    t.mock.timers.tick(30_000);
    channels.h.stdin(Buffer.from('ls\n'));
    t.mock.timers.tick(30_000); // the first check: quiet for 30 s, next one at 90 s
    t.mock.timers.tick(29_999);
    await settle();
    assert.equal(channels.finishes.length, 0, 'still running');
    assert.ok(timers.calls < 10, `${timers.calls} timers`);
    assert.ok(timers.longest <= 2 ** 31 - 1, `a delay of ${timers.longest} ms`);
    t.mock.timers.tick(1);
    await settle();
    assert.equal((await session).outcome, 'idle');
  });

  it('limits past 24.8 days wait in steps Node.js keeps, and end the session on time', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const timers = countTimers(t);
    const thirtyDays = 30 * 24 * 3_600_000;
    const { channels, session } = timed({ maxDurationMs: thirtyDays });
    await settle();
    // The mock clock runs a timer set inside a tick from that tick's end: tick to the first step's end exactly.
    t.mock.timers.tick(2 ** 31 - 1);
    await settle();
    assert.equal(channels.finishes.length, 0, 'still running after the first step (24.8 days)');
    t.mock.timers.tick(thirtyDays - 60_000 - (2 ** 31 - 1) - 1);
    assert.ok(!channels.writes.some((w) => w.data.includes('[execlet]')), 'no notice yet');
    t.mock.timers.tick(1);
    assert.match(channels.writes.at(-1)?.data ?? '', /ended in 1 minute: it reaches its maximum duration of 720h/);
    t.mock.timers.tick(60_000);
    await settle();
    assert.equal((await session).outcome, 'maxDuration');
    assert.ok(timers.longest <= 2 ** 31 - 1, `a delay of ${timers.longest} ms`);
  });
});
