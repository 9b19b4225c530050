// One negotiated channel.k8s.io WebSocket as a set of channels: decodes what the client sends
// (stdin, v5 close signal, resize) and frames what the process writes, with backpressure. It knows
// nothing about processes; a session drives it through the ClientChannels interface.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { metrics } from '../metrics.js';
import { prefixed } from '../prefix-room.js';
import { decodeClientMessage, encodeBase64Message } from './framing.js';
import { kernelPeerJudge, type PeerJudge } from './peer-liveness.js';
import { ResizeDecoder, type TerminalSize } from './resize.js';
import { encodeStatusForChannel, type Status } from './status.js';
import { CHANNEL, type ProtocolTraits } from './subprotocols.js';

export type OutputStreamName = 'stdout' | 'stderr';

export interface ChannelHandlers {
  stdin(data: Buffer): void;
  /** The client finished stdin (v5 close signal for channel 0). */
  stdinEnd(): void;
  resize(size: TerminalSize): void;
  /**
   * A resize message was not valid (named by `problem`): the client's resizes are ignored from then
   * on, as the kubelet ignores them. Called once.
   */
  resizeRefused?(problem: string): void;
  /** The client went away (close frame or dropped connection) before finish(). */
  clientGone(reason: string): void;
  /** Something the client sent is not valid for this protocol; the connection is being closed. */
  protocolError?(message: string): void;
}

/** What a session needs from a client connection; implemented over a WebSocket here. */
export interface ClientChannels {
  readonly protocol: string;
  attach(handlers: ChannelHandlers): void;
  /** The zero-length "connection established" frame on the lowest writable channel. */
  sendReady(): void;
  /** Returns false when the client is behind; wait for onceDrained before writing more. */
  write(stream: OutputStreamName, data: Buffer): boolean;
  onceDrained(callback: () => void): void;
  /** Stop/resume reading client input (stdin backpressure). */
  pauseInput(): void;
  resumeInput(): void;
  /** Writes the final status on the error channel (as the protocol wants it) and closes normally. */
  finish(status: Status): void;
  readonly closed: boolean;
}

export interface ChannelOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  /** Bytes buffered towards the client above which write() asks the producer to wait. */
  highWaterMark: number;
  /**
   * Ping the client this often. One that has not answered the previous ping by then is dropped if
   * its kernel has stopped answering too (peer-liveness.ts), or, where the kernel cannot be asked,
   * unless it is still taking output queued before the ping.
   */
  pingIntervalMs?: number;
  /**
   * Whether a client that misses a pong is judged by its kernel (default: where it can be asked —
   * a TCP connection, with execlet-tcp.node built); false: by its pongs and its output alone.
   */
  kernelLiveness?: boolean;
  /** How long a client whose receive buffer is full may answer no window probe (default WINDOW_PROBE_SILENCE_MS). */
  windowProbeSilenceMs?: number;
  /**
   * A client behind a backlog of output (its pong waits behind it) is dropped only once it has
   * taken none of it for this long (default BEHIND_WITHOUT_PROGRESS_MS).
   */
  behindWithoutProgressMs?: number;
  /**
   * How long a finished session's backlog (output still queued in the agent) may take to leave
   * before the connection is closed (default CLOSE_WAIT_MS), and the close handshake after it (the
   * WebSocket server's close timeout, which app.ts sets to the same, where the kernel cannot be
   * asked); longer for a client that is there, up to maxCloseWaitMs.
   */
  closeWaitMs?: number;
  /**
   * Where the kernel can be asked: how long, at most, a finished session's connection is kept past
   * closeWaitMs for a client that is there (its kernel answers) while output for it is still on
   * this side — in the agent or in the kernel's send queue — so that a client that reads it late
   * (piped into `less`) loses none of it (default closeWaitMs: not past it).
   */
  maxCloseWaitMs?: number;
}

/** Upstream servers copy with 32 KiB buffers; client-go's reader is sized for that. */
const MAX_MESSAGE_PAYLOAD = 32 * 1024;
const PREFIX = [Buffer.from([0]), Buffer.from([1]), Buffer.from([2]), Buffer.from([3])];
/**
 * How long a finished session's client is given to take what is still on its way to it and answer
 * the close (pings stop at the end: its pongs would wait behind that output); then the connection
 * is closed as the client is gone — unless its kernel says it is there while output for it is
 * still on the agent's side (finish()). The WebSocket server's close timeout too (app.ts): ws's
 * default of 30 s destroyed the connection of a slow client still reading the kernel's buffers,
 * and the reset that its next ping then met threw away the output's tail and the Status.
 */
export const CLOSE_WAIT_MS = 120_000;
/**
 * Where the kernel cannot be asked: how long a client with output queued for it may take none of
 * it before it is taken for gone. Output leaves in whole writes, as the kernel makes room (after a
 * good part of its send buffer has drained), so a slow client's progress shows only now and then;
 * and a vanished peer with output queued for it is otherwise noticed only when TCP gives up
 * retransmitting (~15 minutes).
 */
const BEHIND_WITHOUT_PROGRESS_MS = 120_000;
/** The least time data in flight may go unacknowledged before the client's kernel is taken for gone (delayed ACKs, retransmissions). */
const MIN_IN_FLIGHT_SILENCE_MS = 1000;
/** Queued for the client at its end, at most this much lets the close handshake start at once. */
const CLOSE_AT_ONCE_BYTES = 64 * 1024;

export class WebSocketChannels implements ClientChannels {
  readonly protocol: string;
  #handlers: ChannelHandlers | null = null;
  #finished = false;
  #gone = false;
  #stdinOpen: boolean;
  readonly #resize = new ResizeDecoder();
  #resizeRefused = false;
  #drainWaiters: Array<() => void> = [];
  #drainArmed = false;
  #corked = false;
  /** Reading the client is paused: the process does not read its stdin (pings wait meanwhile). */
  #inputPaused = false;
  readonly #socket: Socket | undefined;
  /**
   * Bytes queued towards the client above which write() asks the producer to wait: the option, or
   * the socket's own high-water mark when that is higher. The producer waits for the socket's
   * 'drain', which comes only after a write the socket refused (at its own mark: 16 KiB by default
   * in Node.js 20, 64 KiB from 22); below that mark the wait would never end.
   */
  readonly #highWaterMark: number;

  constructor(
    private readonly ws: WebSocket,
    private readonly traits: ProtocolTraits,
    private readonly options: ChannelOptions,
  ) {
    this.protocol = traits.name;
    this.#stdinOpen = options.stdin;
    // ws keeps its net.Socket private; corking it batches all frames of one event-loop turn.
    this.#socket = (ws as unknown as { _socket?: Socket })._socket;
    this.#highWaterMark = Math.max(options.highWaterMark, this.#socket?.writableHighWaterMark ?? 0);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('close', (code: number) => {
      this.#stopPinging();
      this.#onGone(`connection closed by the client (code ${code})`);
    });
    ws.on('error', (err: Error) => this.#onGone(`connection error: ${err.message}`));
    // What was sent at a ping or a close check is judged an interval later: a live peer has long
    // acknowledged it by then, even through a few retransmissions.
    const checkEveryMs = options.pingIntervalMs ?? options.closeWaitMs ?? CLOSE_WAIT_MS;
    this.#inFlightSilenceMs = Math.max(checkEveryMs / 2, MIN_IN_FLIGHT_SILENCE_MS);
    this.#kernelJudge =
      options.kernelLiveness === false || !this.#socket
        ? null
        : kernelPeerJudge(this.#socket, { inFlightSilenceMs: this.#inFlightSilenceMs, windowProbeSilenceMs: options.windowProbeSilenceMs });
    if (options.pingIntervalMs) this.#startPinging(options.pingIntervalMs);
  }

  /** What the client's kernel says of it (peer-liveness.ts); null where it cannot be asked. */
  readonly #kernelJudge: PeerJudge | null;
  /** Data in flight with nothing acknowledged since a ping sent this long ago: the client is gone. */
  readonly #inFlightSilenceMs: number;

  #pinger: NodeJS.Timeout | null = null;

  #startPinging(intervalMs: number): void {
    const graceMs = this.options.behindWithoutProgressMs ?? BEHIND_WITHOUT_PROGRESS_MS;
    const kernelJudge = this.#kernelJudge;
    let answered = true;
    // When the last pings were sent, newest last: the kernel is asked whether anything was
    // acknowledged since the newest one sent at least #inFlightSilenceMs ago (pinged on every
    // interval, a client that is there has acknowledged it long since, whether or not it reads).
    const pingTimes: number[] = [];
    const keepPings = Math.ceil(this.#inFlightSilenceMs / intervalMs) + 2;
    const ping = () => {
      pingTimes.push(Date.now());
      if (pingTimes.length > keepPings) pingTimes.shift();
      this.ws.ping();
    };
    const pingedLongEnoughAgo = (): number | null => {
      const before = Date.now() - this.#inFlightSilenceMs;
      for (let i = pingTimes.length - 1; i >= 0; i--) if (pingTimes[i]! <= before) return pingTimes[i]!;
      return null;
    };
    /** Output that had left this process as of the last ping or check, and whether more was waiting then. */
    let takenAtCheck = 0;
    let waitingAtCheck = false;
    /** Whether the client was seen taking output since the ping, and when it last was (until then: the ping's time). */
    let tookSincePing = false;
    let lastTookAt = 0;
    this.ws.on('pong', () => {
      answered = true;
    });
    this.#pinger = setInterval(() => {
      // Without a pong to show for the last ping, or while none can come (the input is paused),
      // the client's kernel says whether it is there. A client that stopped reading is: it is
      // pinged again, so that there is always something recent for its kernel to acknowledge.
      if (kernelJudge && (!answered || this.#inputPaused)) {
        const verdict = kernelJudge(pingedLongEnoughAgo());
        if (verdict?.there === false) {
          this.#dropAsGone(verdict.kind, verdict.reason);
          return;
        }
        if (verdict) {
          ping();
          return;
        }
      }
      // While the client's input is paused (the process does not read its stdin), nothing of the
      // client is read — its pongs neither: a client that is there cannot be told from one that is
      // not by its answer, so none is expected until the input flows again. The ping is sent all
      // the same: writing it is what finds a connection the client has closed (a reset, then an
      // error), which is not read either.
      if (this.#inputPaused) {
        answered = true;
        ping();
        return;
      }
      if (!answered) {
        // The ping waits behind the output queued before it. A client still taking that output is
        // slow (a thin link, a busy terminal), not gone: its pong comes once it reaches the ping.
        // Output leaving counts only while more was waiting: then the kernel's buffer was full, and
        // room in it means the client took some; before that, the kernel takes output from anyone.
        const taken = this.#bytesTakenByClient();
        const now = Date.now();
        const tookSome = taken > takenAtCheck && waitingAtCheck;
        takenAtCheck = taken;
        waitingAtCheck = this.#outputWaiting();
        if (tookSome) {
          tookSincePing = true;
          lastTookAt = now;
          return;
        }
        // Behind a backlog (or just through one: its ping may still sit in the kernel's buffers),
        // it has the grace from the last time it took any.
        const behind = this.#outputWaiting();
        if ((behind || tookSincePing) && now - lastTookAt < graceMs) return;
        // A peer that vanished without a close (network drop, sleeping laptop) is noticed here.
        if (behind) this.#dropAsGone('no_progress', `no pong, and none of the output queued for it taken for ${Math.round((now - lastTookAt) / 1000)} s: the client is gone`);
        else this.#dropAsGone('no_pong', `no pong within ${intervalMs} ms: the client is gone`);
        return;
      }
      answered = false;
      takenAtCheck = this.#bytesTakenByClient();
      waitingAtCheck = this.#outputWaiting();
      const sentBefore = this.#socket?.bytesWritten ?? 0;
      ping();
      // The ping's own bytes leaving (at once, or later over TLS) are no sign of the client.
      takenAtCheck += (this.#socket?.bytesWritten ?? 0) - sentBefore;
      tookSincePing = false;
      lastTookAt = Date.now();
    }, intervalMs);
    this.#pinger.unref();
  }

  /**
   * Bytes written to the connection that have left this process (handed to the kernel), counted
   * since it opened: Node's count of bytes written includes those still queued, which its
   * writable length holds until each write completes.
   */
  #bytesTakenByClient(): number {
    const socket = this.#socket;
    return socket ? socket.bytesWritten - socket.writableLength : 0;
  }

  /**
   * Output is waiting in this process for the kernel to take it: the socket's buffer towards the
   * client is full (a write was refused at its high-water mark). A few bytes not yet handed over —
   * held by this turn's cork, or by a TLS write still completing — are not: the kernel takes them a
   * moment later, from anyone.
   */
  #outputWaiting(): boolean {
    return this.#socket?.writableNeedDrain ?? false;
  }

  /** Gives up on a client taken for gone: pings stop, the session is told, the connection is destroyed. */
  #dropAsGone(why: 'unacknowledged' | 'window_probes' | 'no_progress' | 'no_pong', reason: string): void {
    this.#stopPinging();
    metrics.clientsDropped.inc({ reason: why });
    this.#onGone(reason);
    this.ws.terminate();
  }

  #stopPinging(): void {
    if (this.#pinger) clearInterval(this.#pinger);
    this.#pinger = null;
  }

  get closed(): boolean {
    return this.#finished || this.#gone;
  }

  attach(handlers: ChannelHandlers): void {
    this.#handlers = handlers;
  }

  sendReady(): void {
    const channel = this.options.stdout ? CHANNEL.stdout : this.options.stderr ? CHANNEL.stderr : CHANNEL.error;
    if (this.traits.base64) this.ws.send(String(channel));
    else this.ws.send(PREFIX[channel]!);
  }

  write(stream: OutputStreamName, data: Buffer): boolean {
    if (this.closed) return true; // nobody to deliver to: drop, never block the producer
    const channel = stream === 'stdout' ? CHANNEL.stdout : CHANNEL.stderr;
    this.#cork();
    if (data.length <= MAX_MESSAGE_PAYLOAD) {
      this.#sendFrame(channel, data); // the buffer itself: it may have a free byte in front
    } else {
      for (let offset = 0; offset < data.length; offset += MAX_MESSAGE_PAYLOAD) {
        this.#sendFrame(channel, data.subarray(offset, Math.min(data.length, offset + MAX_MESSAGE_PAYLOAD)));
      }
    }
    return this.ws.bufferedAmount < this.#highWaterMark;
  }

  onceDrained(callback: () => void): void {
    if (this.closed || this.ws.bufferedAmount < this.#highWaterMark) {
      callback();
      return;
    }
    this.#drainWaiters.push(callback);
    if (this.#drainArmed) return;
    this.#drainArmed = true;
    const socket = this.#socket;
    const onDrain = () => {
      if (!this.closed && this.ws.bufferedAmount >= this.#highWaterMark) {
        socket?.once('drain', onDrain);
        return;
      }
      this.#drainArmed = false;
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const waiter of waiters) waiter();
    };
    if (socket) socket.once('drain', onDrain);
    else setImmediate(onDrain);
  }

  pauseInput(): void {
    if (this.closed) return;
    this.#inputPaused = true;
    this.ws.pause();
  }

  resumeInput(): void {
    if (this.closed) return;
    this.#inputPaused = false;
    this.ws.resume();
  }

  finish(status: Status): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#gone) return;
    // What the client still sends is ignored from here; reading it lets its close frame through.
    this.#inputPaused = false;
    this.ws.resume();
    const payload = encodeStatusForChannel(status, this.traits);
    // Pings stop: a pong waits behind the output still on its way, in the agent or in the kernel.
    // The close handshake starts once the Status has been handed to the kernel, everything before
    // it with it. A client whose backlog in the agent (up to the high-water mark) has not left
    // within closeWaitMs, or that has not answered the close within closeWaitMs of it, is taken for
    // gone and its connection destroyed (where the kernel cannot be asked, ws's own close timer,
    // the server's closeTimeout, does the latter) — unless its kernel says it is there while output
    // for it is still on this side: a client that reads late (piped into `less`) would lose that
    // output to the destroyed socket. Then it waits on, checking every closeWaitMs, until
    // maxCloseWaitMs after the end (the close handshake gets its closeWaitMs even after that). Agent
    // shutdown ends such a wait (agent.ts).
    this.#stopPinging();
    const backlog = payload !== null && this.ws.bufferedAmount > CLOSE_AT_ONCE_BYTES;
    const judge = this.#kernelJudge;
    const closeWaitMs = this.options.closeWaitMs ?? CLOSE_WAIT_MS;
    const waitUntil = Date.now() + Math.max(closeWaitMs, this.options.maxCloseWaitMs ?? closeWaitMs);
    let deadline: NodeJS.Timeout | undefined;
    /** When the deadline was set: what was on its way then must have been acknowledged since. */
    let armedAt = Date.now();
    const armDeadline = (ms: number) => {
      clearTimeout(deadline);
      armedAt = Date.now();
      deadline = setTimeout(onDeadline, ms);
      deadline.unref();
    };
    const onDeadline = () => {
      if (this.ws.readyState === this.ws.CLOSED) return;
      const verdict = judge?.(armedAt);
      const remainingMs = waitUntil - Date.now();
      if (verdict?.there && (verdict.holding || this.ws.bufferedAmount > 0) && remainingMs > 0) {
        armDeadline(Math.min(closeWaitMs, remainingMs));
        return;
      }
      metrics.clientsDropped.inc({ reason: 'close_wait' });
      this.ws.terminate();
    };
    this.ws.once('close', () => clearTimeout(deadline));
    const close = () => {
      if (this.#gone) {
        clearTimeout(deadline);
        return;
      }
      this.ws.close(1000);
      if (!judge) {
        clearTimeout(deadline);
        return;
      }
      // The wait for the client's answer is this one, which asks the kernel first, not ws's.
      clearTimeout((this.ws as unknown as { _closeTimer?: NodeJS.Timeout })._closeTimer);
      armDeadline(closeWaitMs);
    };
    if (backlog) armDeadline(closeWaitMs);
    if (payload) {
      // One message: client-node parses the first error-channel frame as the whole status.
      const message = this.traits.base64 ? encodeBase64Message(CHANNEL.error, payload) : Buffer.concat([PREFIX[CHANNEL.error]!, payload]);
      if (backlog) this.ws.send(message, close);
      else this.ws.send(message);
    }
    if (!backlog) close();
    this.#releaseDrainWaiters();
  }

  #sendFrame(channel: number, payload: Buffer): void {
    if (this.traits.base64) {
      this.ws.send(encodeBase64Message(channel, payload));
      return;
    }
    // One message, one frame: the channel byte then the payload — written into the free byte in
    // front of an engine payload (no copy), or copied into a new buffer. (Sending the two as
    // fragments of one message would save the copy but makes every client reassemble the message.)
    const message = prefixed(channel, payload);
    this.ws.send(message);
  }

  #cork(): void {
    if (this.#corked || !this.#socket) return;
    this.#corked = true;
    this.#socket.cork();
    setImmediate(() => {
      this.#corked = false;
      this.#socket?.uncork();
    });
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed || !this.#handlers) return;
    const message = decodeClientMessage(data, isBinary, this.traits);
    switch (message.kind) {
      case 'empty':
        return;
      case 'invalid':
        this.#protocolError(message.reason);
        return;
      case 'close':
        if (message.channel === CHANNEL.stdin) {
          if (this.#stdinOpen) {
            this.#stdinOpen = false;
            this.#handlers.stdinEnd();
          }
        } else if (message.channel > CHANNEL.resize) {
          this.#protocolError(`close signal for unknown channel ${message.channel}`);
        }
        return;
      case 'data':
        if (message.channel === CHANNEL.stdin) {
          if (this.#stdinOpen && message.payload.length > 0) this.#handlers.stdin(message.payload);
        } else if (message.channel === CHANNEL.resize) {
          const { sizes, error } = this.#resize.push(message.payload);
          for (const size of sizes) this.#handlers.resize(size);
          if (error !== undefined && !this.#resizeRefused) {
            this.#resizeRefused = true;
            this.#handlers.resizeRefused?.(error);
          }
        }
        // Messages for other channels are dropped, as upstream does.
        return;
    }
  }

  #protocolError(reason: string): void {
    this.#handlers?.protocolError?.(reason);
    this.#onGone(`protocol error: ${reason}`);
    this.ws.close(1002, reason.slice(0, 120));
  }

  #onGone(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#releaseDrainWaiters();
    if (!this.#finished) this.#handlers?.clientGone(reason);
  }

  #releaseDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter();
  }
}
