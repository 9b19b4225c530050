// Unit tests for the exec_die watcher (src/backend/exec-exits.ts) on the agent's event stream
// (src/backend/engine-events.ts) over a fake engine: an event before or after the wait, a late one,
// a stream that drops or never connected, reconnects, and one that ends before it was handed over.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import type { EngineEvent } from '../../src/backend/engine-client.js';
import { EngineEventStream } from '../../src/backend/engine-events.js';
import { ExecExitEvents } from '../../src/backend/exec-exits.js';

interface FakeStream {
  opens: number;
  send(event: EngineEvent): void;
  end(): void;
  /** Makes the next open fail (the engine is down). */
  failNext: boolean;
}

function watcher(): { exits: ExecExitEvents; events: EngineEventStream; stream: FakeStream; states: boolean[]; opened(): Promise<void> } {
  let onEvent: (event: EngineEvent) => void = () => undefined;
  let onEnd: (err: Error) => void = () => undefined;
  let notifyOpened: () => void = () => undefined;
  const stream: FakeStream = {
    opens: 0,
    failNext: false,
    send: (event) => onEvent(event),
    end: () => onEnd(new Error('stream ended')),
  };
  const states: boolean[] = [];
  const events = new EngineEventStream((eventHandler, endHandler) => {
    stream.opens++;
    if (stream.failNext) {
      stream.failNext = false;
      return Promise.reject(new Error('engine down'));
    }
    onEvent = eventHandler;
    onEnd = endHandler;
    setImmediate(notifyOpened);
    return Promise.resolve({ close() {} });
  });
  events.listen({ stateChange: (connected) => states.push(connected) });
  const exits = new ExecExitEvents(events);
  return {
    exits,
    events,
    stream,
    states,
    // The stream's retry timer is unref'd (it must not hold an agent up): hold the loop while waiting.
    opened: () =>
      new Promise<void>((resolve) => {
        const hold = setTimeout(() => undefined, 10_000);
        notifyOpened = () => {
          clearTimeout(hold);
          resolve();
        };
      }),
  };
}

const die = (execID: string, exitCode: string): EngineEvent => ({ Type: 'container', Action: 'exec_die', Actor: { ID: 'c1', Attributes: { execID, exitCode } } });

describe('ExecExitEvents', () => {
  it('cannot vouch for anything before the stream is connected', async () => {
    const { exits, events, opened } = watcher();
    assert.equal(exits.expect('a'), null);
    const ready = opened();
    events.start();
    await ready;
    assert.notEqual(exits.expect('a'), null);
    events.close();
  });

  it('an event that came before the wait, and one that comes during it', async () => {
    const { exits, events, stream, opened } = watcher();
    const ready = opened();
    events.start();
    await ready;
    const early = exits.expect('early')!;
    const late = exits.expect('late')!;
    stream.send(die('early', '3'));
    stream.send(die('someone-else', '9'));
    assert.equal(await early.exitCode(1000), 3);
    const waiting = late.exitCode(1000);
    stream.send(die('late', '0'));
    assert.equal(await waiting, 0);
    events.close();
  });

  it('no event within the grace: unknown (the caller inspects); other actions and bad codes are ignored', async () => {
    const { exits, events, stream, opened } = watcher();
    const ready = opened();
    events.start();
    await ready;
    const expectation = exits.expect('x')!;
    stream.send({ Action: 'exec_start', Actor: { Attributes: { execID: 'x', exitCode: '1' } } });
    stream.send(die('x', 'not-a-number'));
    assert.equal(await expectation.exitCode(20), null);
    events.close();
  });

  it('a stream that drops makes every pending wait unknown at once, then reconnects', async () => {
    const { exits, events, stream, states, opened } = watcher();
    let ready = opened();
    events.start();
    await ready;
    const waiting = exits.expect('w')!.exitCode(60_000);
    const notYetWaiting = exits.expect('n')!;
    ready = opened();
    stream.end();
    assert.equal(await waiting, null);
    assert.equal(await notYetWaiting.exitCode(60_000), null, 'an event it might have missed');
    assert.equal(events.connected, false);
    assert.equal(exits.expect('during'), null);
    await ready; // reconnected after the first back-off step
    assert.equal(events.connected, true);
    assert.deepEqual(states, [true, false, true]);
    assert.equal(stream.opens, 2);
    events.close();
  });

  it('keeps retrying an engine that is down, and stops for good on close()', async () => {
    const { exits, events, stream, opened } = watcher();
    stream.failNext = true;
    const ready = opened();
    events.start();
    await ready;
    assert.equal(stream.opens, 2, 'one failed open, one that worked');
    events.close();
    stream.end();
    assert.equal(events.connected, false);
    assert.equal(exits.expect('after-close'), null);
  });

  it('cancel() drops the wait: a later event for it is ignored', async () => {
    const { exits, events, stream, opened } = watcher();
    const ready = opened();
    events.start();
    await ready;
    const expectation = exits.expect('c')!;
    expectation.cancel();
    stream.send(die('c', '4'));
    assert.equal(await expectation.exitCode(10), null);
    events.close();
  });
  it('close() tells every listener the stream is gone, and what waited is unknown', async () => {
    const { exits, events, states, opened } = watcher();
    const ready = opened();
    events.start();
    await ready;
    const waiting = exits.expect('w')!.exitCode(60_000);
    events.close();
    assert.equal(await waiting, null);
    assert.deepEqual(states, [true, false]);
  });

  it('a stream that ends before it is handed over is not taken for connected: it is opened again', async () => {
    let opens = 0;
    let reopened: () => void = () => undefined;
    const events = new EngineEventStream((_onEvent, onEnd) => {
      opens++;
      if (opens === 1) {
        onEnd(new Error('ended at once'));
        return Promise.resolve({ close() {} });
      }
      setImmediate(reopened);
      return Promise.resolve({ close() {} });
    });
    const states: boolean[] = [];
    events.listen({ stateChange: (connected) => states.push(connected) });
    const hold = setTimeout(() => undefined, 10_000);
    await new Promise<void>((resolve) => {
      reopened = resolve;
      events.start();
    });
    clearTimeout(hold);
    assert.equal(opens, 2);
    assert.equal(events.connected, true);
    assert.deepEqual(states, [true], 'the first, dead stream was never reported connected');
    events.close();
  });
});
