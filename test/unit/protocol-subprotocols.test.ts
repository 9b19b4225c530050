// Unit tests for subprotocol names, traits and client-order negotiation.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  CHANNEL,
  SUPPORTED_SUBPROTOCOLS,
  negotiateSubprotocol,
  parseOfferedSubprotocols,
  protocolTraits,
  type Subprotocol,
} from '../../src/protocol/subprotocols.js';

describe('CHANNEL', () => {
  it('matches the upstream channel ids', () => {
    assert.deepEqual(CHANNEL, { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 });
  });
});

describe('SUPPORTED_SUBPROTOCOLS', () => {
  it('lists exactly the five WebSocket protocols execlet serves', () => {
    assert.deepEqual(
      [...SUPPORTED_SUBPROTOCOLS],
      ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v4.base64.channel.k8s.io', 'channel.k8s.io', 'base64.channel.k8s.io'],
    );
  });
});

describe('protocolTraits', () => {
  const expected: Record<Subprotocol, { base64: boolean; statusJson: boolean; closeSignal: boolean }> = {
    'v5.channel.k8s.io': { base64: false, statusJson: true, closeSignal: true },
    'v4.channel.k8s.io': { base64: false, statusJson: true, closeSignal: false },
    'v4.base64.channel.k8s.io': { base64: true, statusJson: true, closeSignal: false },
    'channel.k8s.io': { base64: false, statusJson: false, closeSignal: false },
    'base64.channel.k8s.io': { base64: true, statusJson: false, closeSignal: false },
  };
  for (const name of SUPPORTED_SUBPROTOCOLS) {
    it(`describes ${name}`, () => {
      assert.deepEqual(protocolTraits(name), { name, ...expected[name] });
    });
  }

  it('only v5 carries the close signal', () => {
    const withClose = SUPPORTED_SUBPROTOCOLS.filter((name) => protocolTraits(name).closeSignal);
    assert.deepEqual(withClose, ['v5.channel.k8s.io']);
  });

  it('throws for a name that is not supported (untyped callers)', () => {
    assert.throws(() => protocolTraits('v3.channel.k8s.io' as Subprotocol), RangeError);
  });

  it('returns shared traits that cannot be mutated', () => {
    const traits = protocolTraits('v4.channel.k8s.io');
    assert.throws(() => {
      traits.base64 = true;
    }, TypeError);
    assert.equal(protocolTraits('v4.channel.k8s.io').base64, false);
  });
});

describe('parseOfferedSubprotocols', () => {
  it('returns [] when the header is absent', () => {
    assert.deepEqual(parseOfferedSubprotocols(undefined), []);
  });

  it('returns [] for an empty or blank header', () => {
    assert.deepEqual(parseOfferedSubprotocols(''), []);
    assert.deepEqual(parseOfferedSubprotocols('  ,  , '), []);
    assert.deepEqual(parseOfferedSubprotocols([]), []);
  });

  it('splits client-node’s comma-joined header, keeping order', () => {
    assert.deepEqual(
      parseOfferedSubprotocols('v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io'),
      ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'],
    );
  });

  it('trims whitespace and drops empty entries', () => {
    assert.deepEqual(parseOfferedSubprotocols(' v4.channel.k8s.io ,, \tchannel.k8s.io,'), [
      'v4.channel.k8s.io',
      'channel.k8s.io',
    ]);
  });

  it('concatenates several header lines in order', () => {
    assert.deepEqual(parseOfferedSubprotocols(['v4.channel.k8s.io, x', 'v5.channel.k8s.io', '', 'y ,z']), [
      'v4.channel.k8s.io',
      'x',
      'v5.channel.k8s.io',
      'y',
      'z',
    ]);
  });

  it('keeps case and duplicates as sent', () => {
    assert.deepEqual(parseOfferedSubprotocols('V5.Channel.K8s.io, a, a'), ['V5.Channel.K8s.io', 'a', 'a']);
  });
});

describe('negotiateSubprotocol', () => {
  it('picks v5 from client-node’s offer', () => {
    const offered = parseOfferedSubprotocols(
      'v5.channel.k8s.io,v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io',
    );
    assert.equal(negotiateSubprotocol(offered), 'v5.channel.k8s.io');
  });

  it('picks v5 when kubectl offers only v5', () => {
    assert.equal(negotiateSubprotocol(['v5.channel.k8s.io']), 'v5.channel.k8s.io');
  });

  it('returns null for v3 alone (SPDY-only protocol)', () => {
    assert.equal(negotiateSubprotocol(['v3.channel.k8s.io']), null);
  });

  it('follows the client order, not ours: v4 before v5 gives v4', () => {
    assert.equal(negotiateSubprotocol(['v4.channel.k8s.io', 'v5.channel.k8s.io']), 'v4.channel.k8s.io');
  });

  it('skips unsupported entries before the first supported one', () => {
    assert.equal(
      negotiateSubprotocol(['v3.channel.k8s.io', 'v2.channel.k8s.io', 'base64.channel.k8s.io', 'v5.channel.k8s.io']),
      'base64.channel.k8s.io',
    );
  });

  it('returns null for no offer at all (no "" protocol is served)', () => {
    assert.equal(negotiateSubprotocol([]), null);
    assert.equal(negotiateSubprotocol(parseOfferedSubprotocols(undefined)), null);
    assert.equal(negotiateSubprotocol(['']), null);
  });

  it('matches exactly and case-sensitively', () => {
    assert.equal(negotiateSubprotocol(['V5.channel.k8s.io']), null);
    assert.equal(negotiateSubprotocol([' v5.channel.k8s.io']), null);
    assert.equal(negotiateSubprotocol(['v5.base64.channel.k8s.io']), null);
  });

  it('works across several header lines', () => {
    const offered = parseOfferedSubprotocols(['v3.channel.k8s.io', 'v4.base64.channel.k8s.io, v5.channel.k8s.io']);
    assert.equal(negotiateSubprotocol(offered), 'v4.base64.channel.k8s.io');
  });

  it('accepts any iterable (e.g. a Set)', () => {
    assert.equal(negotiateSubprotocol(new Set(['x', 'channel.k8s.io'])), 'channel.k8s.io');
  });

  it('each supported name negotiates to itself', () => {
    for (const name of SUPPORTED_SUBPROTOCOLS) {
      assert.equal(negotiateSubprotocol(['nope', name]), name);
    }
  });
});
