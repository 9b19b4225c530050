// Unit tests for the engine's multiplexed-stream demuxer (src/backend/stdcopy.ts): frames whole,
// batched, and split at every byte of the header and payload; stream mapping; zero-copy payloads;
// atFrameBoundary; and a seeded randomized round trip.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { StdcopyDemuxer, STDCOPY_STDERR, STDCOPY_STDIN, STDCOPY_STDOUT, STDCOPY_SYSTEMERR } from '../../src/backend/stdcopy.js';

/** One engine frame: stream type, 3 zero bytes, uint32 BE length, payload. */
function frame(stream: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

interface Delivery {
  stream: number;
  payload: Buffer;
}

function collector(): { demuxer: StdcopyDemuxer; deliveries: Delivery[]; text(stream: number): string } {
  const deliveries: Delivery[] = [];
  const demuxer = new StdcopyDemuxer((stream, payload) => deliveries.push({ stream, payload }));
  return {
    demuxer,
    deliveries,
    text: (stream) => Buffer.concat(deliveries.filter((d) => d.stream === stream).map((d) => d.payload)).toString(),
  };
}

describe('StdcopyDemuxer: whole frames', () => {
  it('delivers one whole frame as one payload', () => {
    const { demuxer, deliveries } = collector();
    demuxer.push(frame(STDCOPY_STDOUT, 'hello'));
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0]!.stream, STDCOPY_STDOUT);
    assert.equal(deliveries[0]!.payload.toString(), 'hello');
    assert.equal(demuxer.atFrameBoundary, true);
  });

  it('delivers many frames of one chunk in order, per stream', () => {
    const { demuxer, deliveries } = collector();
    demuxer.push(Buffer.concat([frame(1, 'a'), frame(2, 'bb'), frame(1, 'ccc'), frame(2, 'dddd')]));
    assert.deepEqual(
      deliveries.map((d) => [d.stream, d.payload.toString()]),
      [
        [1, 'a'],
        [2, 'bb'],
        [1, 'ccc'],
        [2, 'dddd'],
      ],
    );
    assert.equal(demuxer.atFrameBoundary, true);
  });

  it("maps stream 0 (stdin) to stdout, as Docker's StdCopy does", () => {
    const { demuxer, deliveries } = collector();
    demuxer.push(frame(STDCOPY_STDIN, 'x'));
    assert.equal(deliveries[0]!.stream, STDCOPY_STDOUT);
  });

  it('delivers stream 3 (systemerr) as 3', () => {
    const { demuxer, deliveries } = collector();
    demuxer.push(frame(STDCOPY_SYSTEMERR, 'exec failed'));
    assert.deepEqual(deliveries.map((d) => [d.stream, d.payload.toString()]), [[STDCOPY_SYSTEMERR, 'exec failed']]);
  });

  it('throws on a stream type above 3, whole or with a split header', () => {
    assert.throws(() => collector().demuxer.push(frame(4, 'x')), /unexpected stream type 4/);
    assert.throws(() => collector().demuxer.push(frame(255, '')), /unexpected stream type 255/);
    const { demuxer } = collector();
    const bad = frame(7, 'x');
    demuxer.push(bad.subarray(0, 3));
    assert.throws(() => demuxer.push(bad.subarray(3)), /unexpected stream type 7/);
  });

  it('ignores the three padding bytes of the header', () => {
    const { demuxer, text } = collector();
    const f = frame(STDCOPY_STDERR, 'pad');
    f[1] = 0xff;
    f[2] = 0xee;
    f[3] = 0xdd;
    demuxer.push(f);
    assert.equal(text(STDCOPY_STDERR), 'pad');
  });

  it('reads the length as unsigned 32-bit big-endian (a 300-byte frame)', () => {
    const { demuxer, text } = collector();
    const payload = 'x'.repeat(300);
    demuxer.push(Buffer.concat([frame(1, payload), frame(2, 'after')]));
    assert.equal(text(1), payload);
    assert.equal(text(2), 'after');
  });
});

describe('StdcopyDemuxer: zero-length frames', () => {
  it('are consumed without delivering empty payloads, between other frames', () => {
    const { demuxer, deliveries, text } = collector();
    demuxer.push(Buffer.concat([frame(1, ''), frame(2, 'e'), frame(1, ''), frame(1, 'o'), frame(2, '')]));
    assert.equal(text(1), 'o');
    assert.equal(text(2), 'e');
    assert.ok(deliveries.every((d) => d.payload.length > 0), 'no empty payloads');
    assert.equal(demuxer.atFrameBoundary, true);
  });

  it('a zero-length frame whose header is split across chunks', () => {
    const { demuxer, text } = collector();
    const bytes = Buffer.concat([frame(1, ''), frame(1, 'z')]);
    demuxer.push(bytes.subarray(0, 5));
    assert.equal(demuxer.atFrameBoundary, false);
    demuxer.push(bytes.subarray(5, 8));
    assert.equal(demuxer.atFrameBoundary, true, 'an empty frame completes with its header');
    demuxer.push(bytes.subarray(8));
    assert.equal(text(1), 'z');
  });
});

describe('StdcopyDemuxer: split input', () => {
  it('a header split at every possible byte', () => {
    const bytes = Buffer.concat([frame(2, 'first'), frame(1, 'second')]);
    const secondHeader = frame(2, 'first').length;
    for (let cut = secondHeader + 1; cut < secondHeader + 8; cut++) {
      for (const firstCut of [1, 2, 3, 4, 5, 6, 7]) {
        const { demuxer, deliveries, text } = collector();
        demuxer.push(bytes.subarray(0, firstCut));
        assert.equal(demuxer.atFrameBoundary, false);
        assert.equal(deliveries.length, 0, 'nothing before the header is complete');
        demuxer.push(bytes.subarray(firstCut, cut));
        assert.equal(demuxer.atFrameBoundary, false, `cut ${cut}: inside the second header`);
        demuxer.push(bytes.subarray(cut));
        assert.equal(text(2), 'first', `cuts ${firstCut}/${cut}`);
        assert.equal(text(1), 'second', `cuts ${firstCut}/${cut}`);
        assert.equal(demuxer.atFrameBoundary, true);
      }
    }
  });

  it('a header delivered one byte at a time', () => {
    const { demuxer, text } = collector();
    const bytes = frame(2, 'bytewise');
    for (let i = 0; i < bytes.length; i++) demuxer.push(bytes.subarray(i, i + 1));
    assert.equal(text(2), 'bytewise');
    assert.equal(demuxer.atFrameBoundary, true);
  });

  it('a payload split across chunks arrives in pieces whose concatenation is right, per stream', () => {
    const out = Buffer.from('0123456789abcdef');
    const err = Buffer.from('ERRORS!');
    const bytes = Buffer.concat([frame(1, out), frame(2, err), frame(1, 'tail')]);
    // Every pair of cut points.
    for (let a = 1; a < bytes.length; a++) {
      for (let b = a; b < bytes.length; b++) {
        const { demuxer, deliveries, text } = collector();
        demuxer.push(bytes.subarray(0, a));
        demuxer.push(bytes.subarray(a, b));
        demuxer.push(bytes.subarray(b));
        assert.equal(text(1), `${out}tail`, `cuts ${a}/${b}`);
        assert.equal(text(2), err.toString(), `cuts ${a}/${b}`);
        assert.ok(deliveries.every((d) => d.payload.length > 0), 'no empty payloads');
        assert.equal(demuxer.atFrameBoundary, true);
      }
    }
  });

  it('is not at a frame boundary mid-payload, and is again once the payload is complete', () => {
    const { demuxer, deliveries } = collector();
    const bytes = frame(1, 'abcdef');
    demuxer.push(bytes.subarray(0, 10));
    assert.equal(demuxer.atFrameBoundary, false);
    assert.equal(deliveries.at(-1)!.payload.toString(), 'ab', 'the bytes that arrived are delivered at once');
    demuxer.push(bytes.subarray(10));
    assert.equal(demuxer.atFrameBoundary, true);
    assert.equal(deliveries.at(-1)!.payload.toString(), 'cdef');
  });

  it('an empty chunk changes nothing', () => {
    const { demuxer, deliveries } = collector();
    demuxer.push(Buffer.alloc(0));
    assert.equal(deliveries.length, 0);
    assert.equal(demuxer.atFrameBoundary, true);
    const bytes = frame(1, 'ab');
    demuxer.push(bytes.subarray(0, 4));
    demuxer.push(Buffer.alloc(0));
    demuxer.push(bytes.subarray(4));
    assert.equal(deliveries.length, 1);
  });
});

describe('StdcopyDemuxer: zero-copy', () => {
  it('payloads are views of the input chunk when the header is in the same chunk', () => {
    const { demuxer, deliveries } = collector();
    const chunk = Buffer.concat([frame(1, 'one'), frame(2, 'two')]);
    demuxer.push(chunk);
    assert.equal(deliveries.length, 2);
    assert.equal(deliveries[0]!.payload.buffer, chunk.buffer);
    assert.equal(deliveries[0]!.payload.byteOffset, chunk.byteOffset + 8);
    assert.equal(deliveries[1]!.payload.buffer, chunk.buffer);
    assert.equal(deliveries[1]!.payload.byteOffset, chunk.byteOffset + 8 + 3 + 8);
    // Sharing memory, not equal copies: a write through the chunk shows in the payload.
    chunk[8] = 'O'.charCodeAt(0);
    assert.equal(deliveries[0]!.payload.toString(), 'One');
  });

  it('after a split header, the payload is a view of the chunk that carries it', () => {
    const { demuxer, deliveries } = collector();
    const bytes = frame(1, 'payload');
    const first = Buffer.from(bytes.subarray(0, 6));
    const second = Buffer.from(bytes.subarray(6));
    demuxer.push(first);
    demuxer.push(second);
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0]!.payload.buffer, second.buffer);
    assert.equal(deliveries[0]!.payload.byteOffset, second.byteOffset + 2);
  });

  it('continuation pieces of a split payload are views of their own chunks', () => {
    const { demuxer, deliveries } = collector();
    const bytes = frame(1, 'abcdefgh');
    const chunks = [bytes.subarray(0, 11), bytes.subarray(11, 13), bytes.subarray(13)].map((c) => Buffer.from(c));
    for (const c of chunks) demuxer.push(c);
    assert.equal(deliveries.length, 3);
    deliveries.forEach((d, i) => assert.equal(d.payload.buffer, chunks[i]!.buffer));
  });
});

/** mulberry32: a small seeded PRNG, so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('StdcopyDemuxer: randomized', () => {
  it('random frames, random chunking: reassembled streams equal the originals', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = prng(seed);
      const int = (n: number) => Math.floor(random() * n);
      const expected: Record<number, Buffer[]> = { 1: [], 2: [], 3: [] };
      const frames: Buffer[] = [];
      const frameCount = 1 + int(30);
      for (let i = 0; i < frameCount; i++) {
        const stream = int(4); // 0..3; 0 reads as stdout
        // Mostly small payloads, some empty, some large.
        const size = random() < 0.15 ? 0 : random() < 0.1 ? 1000 + int(70_000) : int(64);
        const payload = Buffer.alloc(size);
        for (let j = 0; j < size; j++) payload[j] = int(256);
        frames.push(frame(stream, payload));
        expected[stream === 0 ? 1 : stream]!.push(payload);
      }
      const all = Buffer.concat(frames);
      const { demuxer, deliveries } = collector();
      let offset = 0;
      while (offset < all.length) {
        const size = random() < 0.3 ? 1 + int(9) : 1 + int(4096);
        const end = Math.min(all.length, offset + size);
        demuxer.push(all.subarray(offset, end));
        offset = end;
      }
      for (const stream of [1, 2, 3]) {
        const got = Buffer.concat(deliveries.filter((d) => d.stream === stream).map((d) => d.payload));
        assert.ok(got.equals(Buffer.concat(expected[stream]!)), `seed ${seed}: stream ${stream} differs`);
      }
      assert.ok(deliveries.every((d) => d.payload.length > 0 && [1, 2, 3].includes(d.stream)), `seed ${seed}: bad delivery`);
      assert.equal(demuxer.atFrameBoundary, true, `seed ${seed}`);
    }
  });
});
