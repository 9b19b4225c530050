// Unit tests for the in-place channel prefix (src/backend/prefix-room.ts) as the demuxer and the
// WebSocket channels use it: which payloads get the free header byte, that the payload survives,
// and that everything else is copied.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { markPrefixRoom, prefixed } from '../../src/prefix-room.js';
import { StdcopyDemuxer, STDCOPY_STDERR, STDCOPY_STDOUT } from '../../src/backend/stdcopy.js';

function frame(stream: number, payload: string): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(Buffer.byteLength(payload), 4);
  return Buffer.concat([header, Buffer.from(payload)]);
}

/** True when `message` is `payload`'s own memory starting one byte earlier (the in-place prefix). */
function inPlace(message: Buffer, payload: Buffer): boolean {
  return message.buffer === payload.buffer && message.byteOffset === payload.byteOffset - 1;
}

function demux(...chunks: Buffer[]): Buffer[] {
  const payloads: Buffer[] = [];
  const demuxer = new StdcopyDemuxer((_stream, payload) => payloads.push(payload));
  for (const chunk of chunks) demuxer.push(chunk);
  return payloads;
}

describe('prefixed', () => {
  it('writes the prefix into the free byte of a payload that follows its header: same memory, no copy', () => {
    const chunk = Buffer.concat([frame(STDCOPY_STDOUT, 'hello'), frame(STDCOPY_STDERR, 'world')]);
    const [first, second] = demux(chunk);
    const a = prefixed(1, first!);
    const b = prefixed(2, second!);
    assert.ok(inPlace(a, first!) && inPlace(b, second!));
    assert.deepEqual([a.toString('latin1', 1), a[0]], ['hello', 1]);
    assert.deepEqual([b.toString('latin1', 1), b[0]], ['world', 2]);
    // The first payload is untouched by the second prefix (it went into the second header).
    assert.equal(first!.toString(), 'hello');
  });

  it('copies a payload that continues a frame from an earlier chunk (its first byte starts the chunk)', () => {
    const whole = frame(STDCOPY_STDOUT, 'abcdef');
    const [head, tail] = demux(whole.subarray(0, 11), Buffer.from(whole.subarray(11)));
    assert.ok(inPlace(prefixed(1, head!), head!), 'the part after the header is in place');
    const copied = prefixed(1, tail!);
    assert.ok(!inPlace(copied, tail!));
    assert.equal(copied.toString('latin1', 1), 'def');
  });

  it('copies a payload whose header arrived split (the header was gathered elsewhere)', () => {
    const whole = frame(STDCOPY_STDOUT, 'xyz');
    const [payload] = demux(Buffer.from(whole.subarray(0, 5)), Buffer.from(whole.subarray(5)));
    const message = prefixed(1, payload!);
    assert.ok(!inPlace(message, payload!));
    assert.equal(message.toString('latin1', 1), 'xyz');
  });

  it('uses the free byte once: prefixing the same payload again copies', () => {
    const [payload] = demux(frame(STDCOPY_STDOUT, 'once'));
    const first = prefixed(1, payload!);
    const second = prefixed(2, payload!);
    assert.ok(inPlace(first, payload!));
    assert.ok(!inPlace(second, payload!));
    assert.equal(first[0], 1, 'the first message keeps its prefix');
    assert.deepEqual([second[0], second.toString('latin1', 1)], [2, 'once']);
  });

  it('copies any buffer nobody marked, and never marks one at offset 0', () => {
    const plain = Buffer.from('plain');
    const message = prefixed(3, plain);
    assert.deepEqual([message[0], message.toString('latin1', 1)], [3, 'plain']);
    const unpooled = Buffer.alloc(7, 'x'); // its own memory: byteOffset 0
    markPrefixRoom(unpooled);
    const message2 = prefixed(1, unpooled);
    assert.ok(!inPlace(message2, unpooled));
    assert.equal(message2.toString('latin1', 1), 'xxxxxxx');
  });
});
