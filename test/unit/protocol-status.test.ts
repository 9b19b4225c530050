// Unit tests for metav1.Status construction and the channel-3 encoding per subprotocol.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  encodeStatusForChannel,
  exitCodeStatus,
  failureStatus,
  httpStatus,
  normalizeExitCode,
  successStatus,
  type Status,
} from '../../src/protocol/status.js';
import { protocolTraits, SUPPORTED_SUBPROTOCOLS } from '../../src/protocol/subprotocols.js';

const v5 = protocolTraits('v5.channel.k8s.io');
const v4 = protocolTraits('v4.channel.k8s.io');
const v4base64 = protocolTraits('v4.base64.channel.k8s.io');
const v1 = protocolTraits('channel.k8s.io');
const v1base64 = protocolTraits('base64.channel.k8s.io');

function nonZeroExit(code: number): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** What client-go's errorDecoderV4 does with the exit-code cause: parse as uint8. */
function clientGoExitCode(status: Status): number {
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  assert.ok(cause?.message !== undefined, 'ExitCode cause required');
  assert.match(cause.message, /^\d+$/);
  const code = Number(cause.message);
  assert.ok(code >= 0 && code <= 255, `exit code ${code} is not a uint8`);
  return code;
}

describe('successStatus', () => {
  it('is the bare upstream success object', () => {
    assert.deepEqual(successStatus(), { metadata: {}, status: 'Success' });
    assert.equal(JSON.stringify(successStatus()), '{"metadata":{},"status":"Success"}');
  });

  it('returns a fresh object each time', () => {
    assert.notEqual(successStatus(), successStatus());
  });
});

describe('exitCodeStatus', () => {
  it('0 is Success', () => {
    assert.deepEqual(exitCodeStatus(0), { metadata: {}, status: 'Success' });
  });

  it('3 is NonZeroExitCode with an ExitCode cause', () => {
    assert.deepEqual(exitCodeStatus(3), nonZeroExit(3));
    assert.equal(clientGoExitCode(exitCodeStatus(3)), 3);
  });

  it('uses "reason" (not "type") for the cause on the wire', () => {
    const json = JSON.stringify(exitCodeStatus(3));
    assert.ok(json.includes('"causes":[{"reason":"ExitCode","message":"3"}]'), json);
    assert.ok(!json.includes('"type"'), json);
  });

  it('has no kind/apiVersion (channel-3 form)', () => {
    const status = exitCodeStatus(3);
    assert.equal('kind' in status, false);
    assert.equal('apiVersion' in status, false);
  });

  it('1 and 255 are kept', () => {
    assert.deepEqual(exitCodeStatus(1), nonZeroExit(1));
    assert.deepEqual(exitCodeStatus(255), nonZeroExit(255));
  });

  it('256 (low byte 0) never becomes Success: 255', () => {
    assert.deepEqual(exitCodeStatus(256), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(512), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(-256), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(2 ** 32), nonZeroExit(255));
  });

  it('-1 becomes 255 (two’s complement low byte)', () => {
    assert.deepEqual(exitCodeStatus(-1), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(-2), nonZeroExit(254));
  });

  it('values above 255 keep their low byte', () => {
    assert.deepEqual(exitCodeStatus(300), nonZeroExit(44));
    assert.deepEqual(exitCodeStatus(257), nonZeroExit(1));
  });

  it('non-integer codes are failures (255)', () => {
    assert.deepEqual(exitCodeStatus(Number.NaN), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(Number.POSITIVE_INFINITY), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(0.5), nonZeroExit(255));
    assert.deepEqual(exitCodeStatus(3.7), nonZeroExit(255)); // not truncated to 3
  });

  it('always yields a uint8 cause that matches the message', () => {
    for (const code of [1, 2, 127, 128, 255, 256, 300, 1000, 65535, 65536, -1, -128, -255, -257, 2 ** 31, -(2 ** 31)]) {
      const status = exitCodeStatus(code);
      assert.equal(status.status, 'Failure', `code ${code}`);
      const wire = clientGoExitCode(status);
      assert.notEqual(wire, 0, `code ${code} must not become 0`);
      assert.equal(status.message, `command terminated with non-zero exit code: exit status ${wire}`);
    }
  });
});

describe('normalizeExitCode', () => {
  it('documents the mapping', () => {
    assert.equal(normalizeExitCode(0), 0);
    assert.equal(normalizeExitCode(-0), 0);
    assert.equal(normalizeExitCode(3), 3);
    assert.equal(normalizeExitCode(255), 255);
    assert.equal(normalizeExitCode(256), 255);
    assert.equal(normalizeExitCode(259), 3);
    assert.equal(normalizeExitCode(-1), 255);
    assert.equal(normalizeExitCode(Number.NaN), 255);
    assert.equal(normalizeExitCode(1.5), 255);
  });
});

describe('failureStatus', () => {
  it('builds a channel-3 Failure with a code', () => {
    assert.deepEqual(failureStatus('InternalError', 'Internal error occurred: boom', 500), {
      metadata: {},
      status: 'Failure',
      message: 'Internal error occurred: boom',
      reason: 'InternalError',
      code: 500,
    });
  });

  it('omits code when not given and has no kind/apiVersion', () => {
    const status = failureStatus('Timeout', 'too slow');
    assert.deepEqual(status, { metadata: {}, status: 'Failure', message: 'too slow', reason: 'Timeout' });
    assert.equal('code' in status, false);
    assert.equal('kind' in status, false);
    assert.equal('apiVersion' in status, false);
  });
});

describe('httpStatus', () => {
  it('builds a full Status with kind/apiVersion', () => {
    assert.deepEqual(httpStatus(404, 'NotFound', 'pods "x" not found'), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "x" not found',
      reason: 'NotFound',
      code: 404,
    });
  });

  it('includes details only when given', () => {
    const withDetails = httpStatus(404, 'NotFound', 'pods "x" not found', { name: 'x', kind: 'pods' });
    assert.deepEqual(withDetails.details, { name: 'x', kind: 'pods' });
    assert.equal('details' in httpStatus(400, 'BadRequest', 'bad'), false);
  });

  it('serializes in the upstream field order', () => {
    assert.equal(
      JSON.stringify(httpStatus(403, 'Forbidden', 'no')),
      '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"no","reason":"Forbidden","code":403}',
    );
  });

  for (const [code, reason] of [
    [400, 'BadRequest'],
    [401, 'Unauthorized'],
    [405, 'MethodNotAllowed'],
    [429, 'TooManyRequests'],
    [500, 'InternalError'],
  ] as const) {
    it(`carries ${code} ${reason}`, () => {
      const status = httpStatus(code, reason, 'm');
      assert.equal(status.code, code);
      assert.equal(status.reason, reason);
      assert.equal(status.status, 'Failure');
    });
  }
});

describe('encodeStatusForChannel', () => {
  it('v4/v5 send Success as JSON', () => {
    for (const traits of [v5, v4, v4base64]) {
      const payload = encodeStatusForChannel(successStatus(), traits);
      assert.ok(payload !== null);
      assert.equal(payload.toString('utf8'), '{"metadata":{},"status":"Success"}');
    }
  });

  it('v4/v5 send a non-zero exit as JSON that round-trips', () => {
    for (const traits of [v5, v4, v4base64]) {
      const payload = encodeStatusForChannel(exitCodeStatus(3), traits);
      assert.ok(payload !== null);
      const decoded: unknown = JSON.parse(payload.toString('utf8'));
      assert.deepEqual(decoded, nonZeroExit(3));
    }
  });

  it('pre-v4 sends nothing on Success', () => {
    assert.equal(encodeStatusForChannel(successStatus(), v1), null);
    assert.equal(encodeStatusForChannel(successStatus(), v1base64), null);
    assert.equal(encodeStatusForChannel(exitCodeStatus(0), v1), null);
  });

  it('pre-v4 sends the plain message text on failure', () => {
    for (const traits of [v1, v1base64]) {
      const payload = encodeStatusForChannel(exitCodeStatus(3), traits);
      assert.ok(payload !== null);
      assert.equal(payload.toString('utf8'), 'command terminated with non-zero exit code: exit status 3');
    }
    const internal = encodeStatusForChannel(failureStatus('InternalError', 'container not found', 500), v1);
    assert.equal(internal?.toString('utf8'), 'container not found');
  });

  it('pre-v4 never sends an empty failure (that would read as success)', () => {
    const noMessage: Status = { metadata: {}, status: 'Failure', reason: 'InternalError' };
    assert.equal(encodeStatusForChannel(noMessage, v1)?.toString('utf8'), 'InternalError');
    const bare: Status = { metadata: {}, status: 'Failure', message: '' };
    const payload = encodeStatusForChannel(bare, v1);
    assert.ok(payload !== null && payload.length > 0);
  });

  it('encodes UTF-8 text', () => {
    const payload = encodeStatusForChannel(failureStatus('InternalError', 'héllo'), v1);
    assert.deepEqual(payload, Buffer.from('héllo', 'utf8'));
  });

  it('JSON for every statusJson protocol, text/null for the rest', () => {
    for (const name of SUPPORTED_SUBPROTOCOLS) {
      const traits = protocolTraits(name);
      const payload = encodeStatusForChannel(successStatus(), traits);
      assert.equal(payload !== null, traits.statusJson, name);
    }
  });
});
