// One execlet-nsenter helper started ahead of the session that will use it (`--standby`), so a
// session without a TTY does not wait for posix_spawn and the helper's own exec (~0.5 ms of the
// agent's event loop and ~0.5 ms more before the helper can start work): the session writes its
// arguments, environment and the streams it does not want to the waiting helper's stdin, and the
// next standby is started on a worker thread, so the event loop does not pause for it. The first is started after the first nsenter
// session, so an agent whose nsenter modes are never used keeps none. The standby waits in read(2)
// with PR_SET_PDEATHSIG, like every helper: if the agent dies, so does it; close() lets it go.
import { closeSync, writeSync } from 'node:fs';
import { streamsOf, type PosixSpawner, type SpawnedFds, type SpawnedProcess } from './posix-spawn.js';

/**
 * Spaces the standby is started with, over which it writes the arguments it is sent, so that ps
 * shows them as for a helper started for the session; longer ones are cut short there (only there).
 */
const ARGUMENT_ROOM = ' '.repeat(4096);

export interface StandbyStreams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** What a standby helper reads on its stdin before it starts work (native/execlet-nsenter.c, --standby). */
export function standbyRequest(argv: string[], env: Record<string, string>, streams: StandbyStreams): Buffer {
  const nulls = `${streams.stdin ? '' : '0'}${streams.stdout ? '' : '1'}${streams.stderr ? '' : '2'}`;
  const strings = [nulls, String(argv.length), ...argv, ...Object.entries(env).map(([key, value]) => `${key}=${value}`)];
  const payload = Buffer.from(`${strings.join('\0')}\0`, 'utf8');
  const request = Buffer.allocUnsafe(4 + payload.length);
  request.writeUInt32BE(payload.length, 0);
  payload.copy(request, 4);
  return request;
}

/**
 * Requests larger than this go to a helper started for the session instead: the request is written
 * on the event loop, at once, and must fit the socket's buffer (~200 KB) whatever the standby does.
 */
const MAX_REQUEST_BYTES = 64 * 1024;

/** The longest a standby waits to be started for a session's command to end (see #prepare). */
const PREPARE_WAIT_MS = 20;

/** Every string a request carries ends at its NUL: one inside would move the boundaries. */
const hasNul = (strings: Iterable<string>) => {
  for (const text of strings) if (text.includes('\0')) return true;
  return false;
};

export class StandbyHelper {
  #ready: SpawnedFds | null = null;
  #preparing = false;
  #closed = false;

  constructor(
    private readonly spawner: PosixSpawner,
    private readonly helper: string,
    private readonly env: Record<string, string>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** The waiting helper's pid, or null when none waits. */
  get pid(): number | null {
    return this.#ready?.pid ?? null;
  }

  /**
   * The standby, started on `argv` (helper first) with `env` and the streams asked for, or null
   * when none is waiting (the caller spawns one itself). Another standby is prepared either way.
   */
  take(argv: string[], env: Record<string, string>, streams: StandbyStreams): SpawnedProcess | null {
    // What a NUL would split, a helper started for the session refuses (its argv cannot hold one).
    if (hasNul(argv) || hasNul(Object.keys(env)) || hasNul(Object.values(env))) return null;
    const request = standbyRequest(argv, env, streams);
    if (request.length > MAX_REQUEST_BYTES) return null;
    const ready = this.#ready;
    this.#ready = null;
    if (!ready) {
      this.#prepare();
      return null;
    }
    try {
      // At most 64 KiB into an empty socket buffer: written whole, at once. The helper reads
      // exactly this much, so what the client sends next is the command's.
      if (writeSync(ready.fds[0], request) !== request.length) throw new Error('the request was written in part');
    } catch (err) {
      // It died meanwhile (EPIPE): its exit is reaped as it comes; the caller starts one itself.
      this.#release(ready);
      this.onError(new Error(`the standby nsenter helper (pid ${ready.pid}) could not be given its session: ${(err as Error).message}`));
      this.#prepare();
      return null;
    }
    this.#prepare(ready.exited);
    const [stdin, stdout, stderr] = ready.fds;
    const keep = (fd: number, wanted: boolean) => {
      if (wanted) return fd;
      closeSync(fd);
      return -1;
    };
    return streamsOf({ pid: ready.pid, exited: ready.exited, fds: [keep(stdin, streams.stdin), keep(stdout, streams.stdout), keep(stderr, streams.stderr)] });
  }

  /**
   * Starts the next standby, off the event loop (posix_spawn on a worker thread): once the session
   * being set up has been (setImmediate), or — when `after` is the command of the session that took
   * the last one — once that command has ended, or PREPARE_WAIT_MS after it began if it runs
   * longer. A standby started while a short command runs competes with it for the CPU (measured
   * on 2 cores: 0.3 ms more per nsenter round trip).
   */
  #prepare(after?: Promise<unknown>): void {
    if (this.#ready || this.#preparing || this.#closed) return;
    this.#preparing = true;
    if (!after) {
      setImmediate(() => this.#start());
      return;
    }
    let begun = false;
    const startOnce = () => {
      if (begun) return;
      begun = true;
      clearTimeout(timer);
      this.#start();
    };
    const timer = setTimeout(startOnce, PREPARE_WAIT_MS).unref();
    void after.then(startOnce, startOnce);
  }

  /** Spawns the standby #prepare decided on, unless one waits already or the helper was closed. */
  #start(): void {
    if (this.#ready || this.#closed) {
      this.#preparing = false;
      return;
    }
    const argv = [this.helper, '--standby', ARGUMENT_ROOM];
    this.spawner.spawnWithFdsAsync(argv, { env: this.env, cwd: '/', stdin: true, stdout: true, stderr: true }).then(
      (started) => {
        this.#preparing = false;
        this.#wait(started);
      },
      (err: Error) => {
        this.#preparing = false;
        this.onError(new Error(`cannot start a standby nsenter helper: ${err.message}`));
      },
    );
  }

  /** Keeps a started standby for the next session, and says so if it dies before one takes it. */
  #wait(started: SpawnedFds): void {
    // Closed meanwhile: its stdin ends, and it exits.
    if (this.#ready || this.#closed) return this.#release(started);
    this.#ready = started;
    void started.exited.then((outcome) => {
      if (this.#ready !== started) return;
      this.#ready = null;
      this.#release(started);
      if (!this.#closed) this.onError(new Error(`the standby nsenter helper (pid ${started.pid}) ended before it was used (code ${outcome.code}, signal ${outcome.signal})`));
    });
  }

  /** Lets the waiting helper go: its stdin ends, and it exits 0. */
  close(): void {
    this.#closed = true;
    const ready = this.#ready;
    this.#ready = null;
    if (ready) this.#release(ready);
  }

  #release(process: SpawnedFds): void {
    for (const fd of process.fds) if (fd >= 0) closeSync(fd);
  }
}
