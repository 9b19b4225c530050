// Unit tests for the channel-4 streaming resize decoder.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { MAX_RESIZE_OBJECT_BYTES, ResizeDecoder, type TerminalSize } from '../../src/protocol/resize.js';

function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** Pushes each chunk, asserts no error, and returns all sizes in order. */
function decodeAll(decoder: ResizeDecoder, chunks: Buffer[]): TerminalSize[] {
  const sizes: TerminalSize[] = [];
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    assert.equal(result.error, undefined, `unexpected error: ${result.error}`);
    sizes.push(...result.sizes);
  }
  return sizes;
}

function byteByByte(text: string): Buffer[] {
  return [...bytes(text)].map((byte) => Buffer.from([byte]));
}

/** Pushes `text` into a fresh decoder and returns the result of that single push. */
function pushOnce(text: string): ReturnType<ResizeDecoder['push']> {
  return new ResizeDecoder().push(bytes(text));
}

describe('ResizeDecoder: what real clients send', () => {
  it('kubectl: {"Width":100,"Height":30}\\n in one frame', () => {
    assert.deepEqual(pushOnce('{"Width":100,"Height":30}\n'), { sizes: [{ width: 100, height: 30 }] });
  });

  it('client-node: {"height":30,"width":100}, lowercase, no newline', () => {
    assert.deepEqual(pushOnce('{"height":30,"width":100}'), { sizes: [{ width: 100, height: 30 }] });
  });

  it('a session of kubectl frames', () => {
    const decoder = new ResizeDecoder();
    const sizes = decodeAll(decoder, [
      bytes('{"Width":100,"Height":30}\n'),
      bytes('{"Width":120,"Height":30}\n'),
      bytes('{"Width":120,"Height":40}\n'),
    ]);
    assert.deepEqual(sizes, [
      { width: 100, height: 30 },
      { width: 120, height: 30 },
      { width: 120, height: 40 },
    ]);
  });
});

describe('ResizeDecoder: stream handling', () => {
  it('concatenated objects in one chunk', () => {
    assert.deepEqual(pushOnce('{"Width":1,"Height":2}{"Width":3,"Height":4}'), {
      sizes: [
        { width: 1, height: 2 },
        { width: 3, height: 4 },
      ],
    });
  });

  it('objects separated by any JSON whitespace', () => {
    assert.deepEqual(pushOnce(' \r\n\t{"Width":1,"Height":2} \n\n\t\r {"Width":3,"Height":4}  \n').sizes, [
      { width: 1, height: 2 },
      { width: 3, height: 4 },
    ]);
  });

  it('whitespace inside objects', () => {
    assert.deepEqual(pushOnce('{ "Width" :\n 7 ,\t"Height": 8 }').sizes, [{ width: 7, height: 8 }]);
  });

  it('split byte by byte', () => {
    const text = '{"Width":100,"Height":30}\n{"height":40,"width":120}';
    const decoder = new ResizeDecoder();
    const chunks = byteByByte(text);
    const sizes: TerminalSize[] = [];
    chunks.forEach((chunk, index) => {
      const result = decoder.push(chunk);
      assert.equal(result.error, undefined);
      sizes.push(...result.sizes);
      // The first size appears exactly when its closing brace arrives.
      if (index === text.indexOf('}')) assert.deepEqual(result.sizes, [{ width: 100, height: 30 }]);
      else if (index === text.lastIndexOf('}')) assert.deepEqual(result.sizes, [{ width: 120, height: 40 }]);
      else assert.deepEqual(result.sizes, []);
    });
    assert.deepEqual(sizes, [
      { width: 100, height: 30 },
      { width: 120, height: 40 },
    ]);
  });

  it('split at every possible point into two chunks', () => {
    const text = '{"Width":100,"Height":30}{"Width":5,"Height":6}';
    for (let cut = 0; cut <= text.length; cut++) {
      const sizes = decodeAll(new ResizeDecoder(), [bytes(text.slice(0, cut)), bytes(text.slice(cut))]);
      assert.deepEqual(
        sizes,
        [
          { width: 100, height: 30 },
          { width: 5, height: 6 },
        ],
        `cut at ${cut}`,
      );
    }
  });

  it('a chunk ending one object and starting the next', () => {
    const decoder = new ResizeDecoder();
    assert.deepEqual(decoder.push(bytes('{"Width":1,')).sizes, []);
    assert.deepEqual(decoder.push(bytes('"Height":2}{"Width"')).sizes, [{ width: 1, height: 2 }]);
    assert.deepEqual(decoder.push(bytes(':3,"Height":4}')).sizes, [{ width: 3, height: 4 }]);
  });

  it('empty chunks are harmless', () => {
    const decoder = new ResizeDecoder();
    assert.deepEqual(decoder.push(Buffer.alloc(0)), { sizes: [] });
    assert.deepEqual(decodeAll(decoder, [bytes('{"Width":1,'), Buffer.alloc(0), bytes('"Height":2}')]), [
      { width: 1, height: 2 },
    ]);
  });

  it('braces and quotes inside strings do not confuse the scanner', () => {
    const text = '{"note":"}{\\"}\\\\","Width":9,"x{":"{{","Height":10}';
    assert.deepEqual(pushOnce(text).sizes, [{ width: 9, height: 10 }]);
    assert.deepEqual(decodeAll(new ResizeDecoder(), byteByByte(text)), [{ width: 9, height: 10 }]);
  });

  it('nested objects and arrays in unknown keys are skipped', () => {
    const text = '{"meta":{"a":{"b":[1,{"c":2}]}},"Width":11,"Height":12}';
    assert.deepEqual(decodeAll(new ResizeDecoder(), byteByByte(text)), [{ width: 11, height: 12 }]);
  });

  it('multi-byte UTF-8 split across chunks', () => {
    const sizes = decodeAll(new ResizeDecoder(), byteByByte('{"ключ":"значение","Width":1,"Height":2}'));
    assert.deepEqual(sizes, [{ width: 1, height: 2 }]);
  });

  it('does not keep a reference to caller buffers', () => {
    const decoder = new ResizeDecoder();
    const first = bytes('{"Width":12');
    decoder.push(first);
    first.fill(0x20); // caller reuses its buffer
    assert.deepEqual(decoder.push(bytes(',"Height":34}')).sizes, [{ width: 12, height: 34 }]);
  });
});

describe('ResizeDecoder: keys and values', () => {
  it('keys match case-insensitively', () => {
    assert.deepEqual(pushOnce('{"WIDTH":1,"HEIGHT":2}').sizes, [{ width: 1, height: 2 }]);
    assert.deepEqual(pushOnce('{"wIdTh":3,"hEiGhT":4}').sizes, [{ width: 3, height: 4 }]);
  });

  it('unknown keys are ignored whatever their value', () => {
    assert.deepEqual(pushOnce('{"Width":5,"Height":6,"Depth":-1,"x":"y","n":null,"f":1.5}').sizes, [
      { width: 5, height: 6 },
    ]);
  });

  it('missing keys leave 0 (as Go does)', () => {
    assert.deepEqual(pushOnce('{}').sizes, [{ width: 0, height: 0 }]);
    assert.deepEqual(pushOnce('{"Width":80}').sizes, [{ width: 80, height: 0 }]);
  });

  it('the last duplicate key wins, whatever its case', () => {
    assert.deepEqual(pushOnce('{"Width":1,"width":2,"Height":3}').sizes, [{ width: 2, height: 3 }]);
    assert.deepEqual(pushOnce('{"width":2,"Width":1,"Height":3}').sizes, [{ width: 1, height: 3 }]);
  });

  it('accepts the uint16 bounds', () => {
    assert.deepEqual(pushOnce('{"Width":0,"Height":65535}').sizes, [{ width: 0, height: 65535 }]);
  });

  it('a key that only looks similar is not matched', () => {
    assert.deepEqual(pushOnce('{"Widths":7,"Height ":8}').sizes, [{ width: 0, height: 0 }]);
  });

  for (const [label, text] of [
    ['65536', '{"Width":65536,"Height":1}'],
    ['negative', '{"Width":-1,"Height":1}'],
    ['fraction', '{"Width":1.5,"Height":1}'],
    ['string', '{"Width":"100","Height":1}'],
    ['null', '{"Width":null,"Height":1}'],
    ['boolean', '{"Width":true,"Height":1}'],
    ['object', '{"Width":{},"Height":1}'],
    ['huge', '{"Width":1e400,"Height":1}'],
    ['lowercase key out of range', '{"height":70000,"width":1}'],
  ] as const) {
    it(`rejects a ${label} value`, () => {
      const result = pushOnce(text);
      assert.deepEqual(result.sizes, []);
      assert.equal(typeof result.error, 'string');
    });
  }
});

describe('ResizeDecoder: errors kill the decoder', () => {
  it('garbage between objects', () => {
    const decoder = new ResizeDecoder();
    const result = decoder.push(bytes('hello'));
    assert.deepEqual(result.sizes, []);
    assert.ok(result.error);
  });

  for (const [label, text] of [
    ['a bare number', '42'],
    ['an array', '[{"Width":1,"Height":2}]'],
    ['a string', '"x"'],
    ['a stray closing brace', '}'],
    ['a JSON null', 'null'],
    ['invalid JSON inside braces', '{"Width" 1}'],
    ['a trailing comma', '{"Width":1,}'],
    ['an unquoted key', '{Width:1}'],
    ['single quotes', "{'Width':1}"],
  ] as const) {
    it(`rejects ${label}`, () => {
      const result = pushOnce(text);
      assert.deepEqual(result.sizes, []);
      assert.equal(typeof result.error, 'string');
    });
  }

  it('keeps sizes decoded before the error in the same chunk, then dies', () => {
    const decoder = new ResizeDecoder();
    const result = decoder.push(bytes('{"Width":1,"Height":2} junk {"Width":3,"Height":4}'));
    assert.deepEqual(result.sizes, [{ width: 1, height: 2 }]);
    assert.ok(result.error);
    const later = decoder.push(bytes('{"Width":5,"Height":6}'));
    assert.deepEqual(later, { sizes: [], error: result.error });
  });

  it('every later push returns the same error and no sizes', () => {
    const decoder = new ResizeDecoder();
    const first = decoder.push(bytes('{"Width":-5,"Height":1}'));
    assert.ok(first.error);
    for (const chunk of ['{"Width":1,"Height":2}', '\n', '', '{"Width":1,"Height":2}{"Width":3,"Height":4}']) {
      assert.deepEqual(decoder.push(bytes(chunk)), { sizes: [], error: first.error });
    }
  });

  it('an error in the middle of a split object kills the decoder', () => {
    const decoder = new ResizeDecoder();
    assert.deepEqual(decoder.push(bytes('{"Width":1,')), { sizes: [] });
    const result = decoder.push(bytes('"Height":x}'));
    assert.deepEqual(result.sizes, []);
    assert.ok(result.error);
    assert.deepEqual(decoder.push(bytes('{"Width":1,"Height":2}')).sizes, []);
  });
});

describe('ResizeDecoder: bounded buffering', () => {
  function objectOfLength(length: number): string {
    const prefix = '{"Width":1,"Height":2,"pad":"';
    const suffix = '"}';
    const padding = length - prefix.length - suffix.length;
    assert.ok(padding >= 0);
    const text = prefix + 'x'.repeat(padding) + suffix;
    assert.equal(Buffer.byteLength(text), length);
    return text;
  }

  it('the limit is 4 KiB', () => {
    assert.equal(MAX_RESIZE_OBJECT_BYTES, 4096);
  });

  it('accepts an object of exactly the limit', () => {
    assert.deepEqual(pushOnce(objectOfLength(MAX_RESIZE_OBJECT_BYTES)), { sizes: [{ width: 1, height: 2 }] });
  });

  it('refuses an object one byte over the limit', () => {
    const result = pushOnce(objectOfLength(MAX_RESIZE_OBJECT_BYTES + 1));
    assert.deepEqual(result.sizes, []);
    assert.match(result.error ?? '', /larger than 4096 bytes/);
  });

  it('refuses an oversize object split across many chunks, before it ends', () => {
    const decoder = new ResizeDecoder();
    assert.deepEqual(decoder.push(bytes('{"pad":"')), { sizes: [] });
    let error: string | undefined;
    let pushed = 0;
    while (error === undefined && pushed < 100) {
      error = decoder.push(bytes('x'.repeat(1000))).error;
      pushed++;
    }
    assert.match(error ?? '', /larger than 4096 bytes/);
    assert.ok(pushed <= 5, `error should come once the object passes 4 KiB, came after ${pushed} chunks`);
  });

  it('refuses an unterminated deeply nested object', () => {
    const result = pushOnce('{"a":'.repeat(2000));
    assert.ok(result.error);
  });

  it('whitespace between objects is not limited (not buffered)', () => {
    const text = ' '.repeat(100_000) + '{"Width":1,"Height":2}' + '\n'.repeat(100_000);
    assert.deepEqual(pushOnce(text), { sizes: [{ width: 1, height: 2 }] });
  });

  it('many small objects are fine (the limit is per object)', () => {
    const text = '{"Width":1,"Height":2}'.repeat(1000);
    const result = pushOnce(text);
    assert.equal(result.error, undefined);
    assert.equal(result.sizes.length, 1000);
  });

  it('handles a large stream in linear time', () => {
    const text = '{"Width":80,"Height":24}\n'.repeat(40_000); // ~1 MB
    const started = process.hrtime.bigint();
    const result = pushOnce(text);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(result.sizes.length, 40_000);
    assert.ok(elapsedMs < 2000, `took ${elapsedMs} ms`);
  });
});
