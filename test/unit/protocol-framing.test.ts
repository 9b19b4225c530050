// Unit tests for client message decoding and base64 server message encoding.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { decodeClientMessage, encodeBase64Message, type ClientMessage } from '../../src/protocol/framing.js';
import { protocolTraits } from '../../src/protocol/subprotocols.js';

const v5 = protocolTraits('v5.channel.k8s.io');
const v4 = protocolTraits('v4.channel.k8s.io');
const v1 = protocolTraits('channel.k8s.io');
const v4base64 = protocolTraits('v4.base64.channel.k8s.io');
const v1base64 = protocolTraits('base64.channel.k8s.io');
const binaryProtocols = [v5, v4, v1];
const base64Protocols = [v4base64, v1base64];

function text(message: string): Buffer {
  return Buffer.from(message, 'utf8');
}

function assertInvalid(message: ClientMessage): void {
  assert.equal(message.kind, 'invalid');
  if (message.kind === 'invalid') assert.ok(message.reason.length > 0, 'invalid needs a reason');
}

function assertData(message: ClientMessage, channel: number, payload: Buffer): void {
  assert.equal(message.kind, 'data');
  if (message.kind !== 'data') return;
  assert.equal(message.channel, channel);
  assert.ok(Buffer.isBuffer(message.payload), 'payload must be a Buffer');
  assert.deepEqual([...message.payload], [...payload]);
}

describe('decodeClientMessage: binary protocols', () => {
  for (const traits of binaryProtocols) {
    describe(traits.name, () => {
      it('decodes stdin data', () => {
        assertData(decodeClientMessage(Buffer.from([0, 0x6c, 0x73, 0x0d]), true, traits), 0, text('ls\r'));
      });

      it('decodes kubectl’s resize frame on channel 4', () => {
        const frame = Buffer.concat([Buffer.from([4]), text('{"Width":100,"Height":30}\n')]);
        assertData(decodeClientMessage(frame, true, traits), 4, text('{"Width":100,"Height":30}\n'));
      });

      it('returns the payload as a subarray (no copy)', () => {
        const frame = Buffer.from([0, 1, 2, 3]);
        const message = decodeClientMessage(frame, true, traits);
        assert.equal(message.kind, 'data');
        if (message.kind !== 'data') return;
        assert.equal(message.payload.buffer, frame.buffer);
        assert.equal(message.payload.byteOffset, frame.byteOffset + 1);
        frame[1] = 99;
        assert.equal(message.payload[0], 99);
      });

      it('a lone channel byte is data with an empty payload', () => {
        assertData(decodeClientMessage(Buffer.from([0]), true, traits), 0, Buffer.alloc(0));
      });

      it('an empty message is empty', () => {
        assert.deepEqual(decodeClientMessage(Buffer.alloc(0), true, traits), { kind: 'empty' });
      });

      it('passes unknown channels through for the caller to drop', () => {
        assertData(decodeClientMessage(Buffer.from([7, 0x61]), true, traits), 7, text('a'));
      });

      it('rejects a text message', () => {
        assertInvalid(decodeClientMessage(Buffer.from([0, 0x61]), false, traits));
        assertInvalid(decodeClientMessage(text('0aGkK'), false, traits));
      });

      it('rejects an empty text message too (wrong message type)', () => {
        assertInvalid(decodeClientMessage(Buffer.alloc(0), false, traits));
      });
    });
  }

  describe('v5 close signal', () => {
    it('FF 00 closes stdin', () => {
      assert.deepEqual(decodeClientMessage(Buffer.from([0xff, 0x00]), true, v5), { kind: 'close', channel: 0 });
    });

    it('reports whatever channel is named (caller validates it)', () => {
      assert.deepEqual(decodeClientMessage(Buffer.from([0xff, 0x04]), true, v5), { kind: 'close', channel: 4 });
      assert.deepEqual(decodeClientMessage(Buffer.from([0xff, 0xff]), true, v5), { kind: 'close', channel: 255 });
    });

    it('rejects FF alone', () => {
      assertInvalid(decodeClientMessage(Buffer.from([0xff]), true, v5));
    });

    it('rejects FF with more than one channel byte', () => {
      assertInvalid(decodeClientMessage(Buffer.from([0xff, 0x00, 0x00]), true, v5));
      assertInvalid(decodeClientMessage(Buffer.from([0xff, 0x00, 0x61, 0x62]), true, v5));
    });

    it('rejects FF 00 sent as a text message', () => {
      assertInvalid(decodeClientMessage(Buffer.from([0xff, 0x00]), false, v5));
    });

    it('before v5, 255 is just an unknown data channel', () => {
      for (const traits of [v4, v1]) {
        assertData(decodeClientMessage(Buffer.from([0xff, 0x00]), true, traits), 255, Buffer.from([0]));
        assertData(decodeClientMessage(Buffer.from([0xff]), true, traits), 255, Buffer.alloc(0));
        assertData(decodeClientMessage(Buffer.from([0xff, 1, 2]), true, traits), 255, Buffer.from([1, 2]));
      }
    });
  });
});

describe('decodeClientMessage: base64 protocols', () => {
  for (const traits of base64Protocols) {
    describe(traits.name, () => {
      it('decodes the 1aGkK example', () => {
        assertData(decodeClientMessage(text('1aGkK'), false, traits), 1, text('hi\n'));
      });

      it('decodes upstream’s stdin example ("0Zm9vCg==" is "foo\\n")', () => {
        assertData(decodeClientMessage(text('0Zm9vCg=='), false, traits), 0, text('foo\n'));
      });

      it('decodes one and two padding characters', () => {
        assertData(decodeClientMessage(text('0aGk='), false, traits), 0, text('hi'));
        assertData(decodeClientMessage(text('0aA=='), false, traits), 0, text('h'));
      });

      it('decodes + and / from the standard alphabet', () => {
        assertData(decodeClientMessage(text('0+/8='), false, traits), 0, Buffer.from([0xfb, 0xff]));
      });

      it('decodes every channel digit 0-9', () => {
        for (let channel = 0; channel <= 9; channel++) {
          assertData(decodeClientMessage(text(`${channel}YQ==`), false, traits), channel, text('a'));
        }
      });

      it('a lone digit is data with an empty payload', () => {
        assertData(decodeClientMessage(text('0'), false, traits), 0, Buffer.alloc(0));
      });

      it('an empty message is empty', () => {
        assert.deepEqual(decodeClientMessage(Buffer.alloc(0), false, traits), { kind: 'empty' });
      });

      it('rejects a binary message', () => {
        assertInvalid(decodeClientMessage(Buffer.from([0, 0x61]), true, traits));
        assertInvalid(decodeClientMessage(text('1aGkK'), true, traits));
      });

      it('rejects a first character that is not a digit', () => {
        assertInvalid(decodeClientMessage(text('aGkK'), false, traits));
        assertInvalid(decodeClientMessage(text(':aGkK'), false, traits)); // ':' is '9' + 1
        assertInvalid(decodeClientMessage(text('/aGkK'), false, traits)); // '/' is '0' - 1
        assertInvalid(decodeClientMessage(Buffer.from([0x00, 0x61]), false, traits));
      });

      it('rejects missing padding / wrong length', () => {
        assertInvalid(decodeClientMessage(text('1aGkKa'), false, traits)); // 5 chars
        assertInvalid(decodeClientMessage(text('1aGk'), false, traits)); // 3 chars, unpadded "hi"
        assertInvalid(decodeClientMessage(text('1a'), false, traits));
      });

      it('rejects misplaced or excess padding', () => {
        assertInvalid(decodeClientMessage(text('1a==='), false, traits));
        assertInvalid(decodeClientMessage(text('1===='), false, traits));
        assertInvalid(decodeClientMessage(text('1aG=k'), false, traits));
        assertInvalid(decodeClientMessage(text('1=aGk'), false, traits));
        assertInvalid(decodeClientMessage(text('1aA==YQ=='), false, traits)); // padding mid-stream
      });

      it('rejects characters outside the standard alphabet', () => {
        assertInvalid(decodeClientMessage(text('1aGk*'), false, traits));
        assertInvalid(decodeClientMessage(text('1-_8='), false, traits)); // URL-safe alphabet
        assertInvalid(decodeClientMessage(text('1aG-K'), false, traits));
        assertInvalid(decodeClientMessage(text('1aG_K'), false, traits));
        assertInvalid(decodeClientMessage(text('1aGkK\n'), false, traits));
        assertInvalid(decodeClientMessage(text('1aG kK'), false, traits));
        assertInvalid(decodeClientMessage(text('1aGkK aGkK'), false, traits));
        assertInvalid(decodeClientMessage(text('1aGé='), false, traits)); // non-ASCII
      });

      it('treats 255 like any other non-digit first byte', () => {
        assertInvalid(decodeClientMessage(Buffer.from([0xff, 0x00]), false, traits));
      });
    });
  }
});

describe('encodeBase64Message', () => {
  it('encodes the 1aGkK example', () => {
    assert.equal(encodeBase64Message(1, text('hi\n')), '1aGkK');
  });

  it('pads like standard base64', () => {
    assert.equal(encodeBase64Message(2, text('hi')), '2aGk=');
    assert.equal(encodeBase64Message(3, text('h')), '3aA==');
    assert.equal(encodeBase64Message(0, Uint8Array.from([0xfb, 0xff])), '0+/8=');
  });

  it('encodes an empty payload as just the digit', () => {
    assert.equal(encodeBase64Message(1, new Uint8Array(0)), '1');
  });

  it('respects the view of a Uint8Array into a larger buffer', () => {
    const backing = new Uint8Array([0x78, 0x68, 0x69, 0x0a, 0x78]);
    assert.equal(encodeBase64Message(1, backing.subarray(1, 4)), '1aGkK');
  });

  it('round-trips through decodeClientMessage', () => {
    const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const encoded = encodeBase64Message(3, payload);
    assertData(decodeClientMessage(text(encoded), false, v4base64), 3, payload);
  });

  it('refuses channels that do not fit one digit', () => {
    assert.throws(() => encodeBase64Message(10, text('x')), RangeError);
    assert.throws(() => encodeBase64Message(-1, text('x')), RangeError);
    assert.throws(() => encodeBase64Message(255, text('x')), RangeError);
    assert.throws(() => encodeBase64Message(1.5, text('x')), RangeError);
  });
});
