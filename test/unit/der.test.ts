// Unit tests for the DER writer and reader behind the agent's certificates (src/auth/der.ts,
// src/auth/der-reader.ts) and the address encoding of x509.ts: known encodings of every type,
// short and long lengths, the UTCTime/GeneralizedTime switch at 2050, and what is refused.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';

import * as der from '../../src/auth/der.js';
import { childrenOf, readElement, readSingle } from '../../src/auth/der-reader.js';
import { ipAddressBytes } from '../../src/auth/x509.js';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

describe('DER writer: INTEGER', () => {
  it('encodes small numbers minimally, with a 0x00 before a set top bit', () => {
    assert.equal(hex(der.integer(0)), '020100');
    assert.equal(hex(der.integer(1)), '020101');
    assert.equal(hex(der.integer(127)), '02017f');
    assert.equal(hex(der.integer(128)), '02020080');
    assert.equal(hex(der.integer(255)), '020200ff');
    assert.equal(hex(der.integer(256)), '02020100');
    assert.equal(hex(der.integer(65535)), '020300ffff');
    assert.equal(hex(der.integer(Number.MAX_SAFE_INTEGER)), '02071fffffffffffff');
  });

  it('reads bytes as unsigned big-endian: strips redundant zeros, adds one before a high bit', () => {
    assert.equal(hex(der.integer(Buffer.from([0x80]))), '02020080');
    assert.equal(hex(der.integer(Buffer.from([0xff, 0x01]))), '020300ff01');
    assert.equal(hex(der.integer(Buffer.from([0x00, 0x00, 0x7f]))), '02017f');
    assert.equal(hex(der.integer(Buffer.from([0x00, 0x00, 0x80]))), '02020080');
    assert.equal(hex(der.integer(Buffer.from([0x00, 0x00]))), '020100');
    assert.equal(hex(der.integer(Buffer.alloc(0))), '020100');
    const serial = Buffer.from('c0ffee00112233445566778899aabbcc', 'hex');
    assert.equal(hex(der.integer(serial)), `021100${serial.toString('hex')}`);
  });

  it('does not touch the bytes it was given', () => {
    const bytes = Buffer.from([0x00, 0x01]);
    der.integer(bytes);
    assert.equal(hex(bytes), '0001');
  });

  it('refuses negative, fractional and unsafe numbers', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) assert.throws(() => der.integer(bad), RangeError, String(bad));
  });
});

describe('DER writer: OBJECT IDENTIFIER', () => {
  it('encodes known identifiers', () => {
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302'); // ecdsa-with-SHA256
    assert.equal(hex(der.oid('1.2.840.113549.1.1.11')), '06092a864886f70d01010b'); // sha256WithRSAEncryption
    assert.equal(hex(der.oid('2.5.29.17')), '0603551d11'); // subjectAltName
    assert.equal(hex(der.oid('2.5.4.3')), '0603550403'); // commonName
    assert.equal(hex(der.oid('1.3.6.1.5.5.7.3.2')), '06082b06010505070302'); // clientAuth
    assert.equal(hex(der.oid('2.999.3')), '0603883703'); // first subidentifier above 127 (X.690 8.19 example)
    assert.equal(hex(der.oid('0.0')), '060100');
  });

  it('matches the identifiers node:crypto writes into an EC public key', () => {
    const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    assert.ok(spki.includes(der.oid('1.2.840.10045.2.1')), 'id-ecPublicKey');
    assert.ok(spki.includes(der.oid('1.2.840.10045.3.1.7')), 'prime256v1');
  });

  it('encodes arcs beyond 32 and 53 bits', () => {
    assert.equal(hex(der.oid('1.2.4294967296')), '06062a9080808000');
    assert.equal(hex(der.oid('2.25.18446744073709551616')), `060b6982${'80'.repeat(8)}00`); // 2^64
  });

  it('refuses what is not a dotted identifier', () => {
    for (const bad of ['', '1', '3.1', '1.40', '0.40', '1.2.', '.1.2', '1..2', '01.2', '1.02', 'a.b', '1.2.-3', ' 1.2']) {
      assert.throws(() => der.oid(bad), Error, JSON.stringify(bad));
    }
  });
});

describe('DER writer: lengths', () => {
  /** Tag and length bytes of an OCTET STRING of `length` bytes. */
  const header = (length: number): string => {
    const element = der.octetString(Buffer.alloc(length));
    return hex(element.subarray(0, element.length - length));
  };

  it('short form up to 127, long form from 128 with the fewest length bytes', () => {
    assert.equal(header(0), '0400');
    assert.equal(header(127), '047f');
    assert.equal(header(128), '048180');
    assert.equal(header(255), '0481ff');
    assert.equal(header(256), '04820100');
    assert.equal(header(65535), '0482ffff');
    assert.equal(header(65536), '0483010000');
  });

  it('the element holds exactly header and contents', () => {
    for (const length of [0, 127, 128, 256, 65536]) {
      const element = der.octetString(Buffer.alloc(length, 7));
      const parsed = readSingle(element);
      assert.equal(parsed.contents.length, length);
      assert.equal(element.length, parsed.der.length);
    }
  });
});

describe('DER writer: times', () => {
  const decoded = (element: Buffer): [number, string] => [element[0]!, element.subarray(2).toString('ascii')];

  it('UTCTime up to the end of 2049, GeneralizedTime from 2050 (RFC 5280)', () => {
    assert.deepEqual(decoded(der.time(new Date(Date.UTC(2049, 11, 31, 23, 59, 59)))), [0x17, '491231235959Z']);
    assert.deepEqual(decoded(der.time(new Date(Date.UTC(2050, 0, 1, 0, 0, 0)))), [0x18, '20500101000000Z']);
    assert.deepEqual(decoded(der.time(new Date(Date.UTC(2036, 1, 29, 8, 5, 3)))), [0x17, '360229080503Z']);
  });

  it('UTCTime from 1950; before it, GeneralizedTime', () => {
    assert.deepEqual(decoded(der.time(new Date(Date.UTC(1950, 0, 1)))), [0x17, '500101000000Z']);
    assert.deepEqual(decoded(der.time(new Date(Date.UTC(1949, 11, 31, 23, 59, 59)))), [0x18, '19491231235959Z']);
  });

  it('has the right length byte and drops milliseconds', () => {
    assert.equal(hex(der.time(new Date('2030-06-15T12:34:56.789Z'))), `170d${Buffer.from('300615123456Z').toString('hex')}`);
    assert.equal(hex(der.time(new Date('2099-06-15T12:34:56.999Z'))), `180f${Buffer.from('20990615123456Z').toString('hex')}`);
  });

  it('refuses invalid dates and years beyond four digits', () => {
    assert.throws(() => der.time(new Date(Number.NaN)), RangeError);
    assert.throws(() => der.time(new Date(Date.UTC(10000, 0, 1))), RangeError);
  });
});

describe('DER writer: the other types', () => {
  it('BOOLEAN and NULL', () => {
    assert.equal(hex(der.boolean(true)), '0101ff');
    assert.equal(hex(der.boolean(false)), '010100');
    assert.equal(hex(der.nullValue()), '0500');
  });

  it('BIT STRING with its unused-bits byte', () => {
    assert.equal(hex(der.bitString(Buffer.from([0xab, 0xcd]))), '030300abcd');
    assert.equal(hex(der.bitString(Buffer.from([0x80]), 7)), '03020780');
    assert.equal(hex(der.bitString(Buffer.alloc(0))), '030100');
    assert.throws(() => der.bitString(Buffer.from([0]), 8), RangeError);
    assert.throws(() => der.bitString(Buffer.alloc(0), 1), RangeError);
  });

  it('named bit lists (KeyUsage) drop trailing zero bits', () => {
    assert.equal(hex(der.namedBits([0])), '03020780'); // digitalSignature
    assert.equal(hex(der.namedBits([0, 2])), '030205a0'); // digitalSignature, keyEncipherment
    assert.equal(hex(der.namedBits([6, 5, 0])), '03020186'); // digitalSignature, keyCertSign, cRLSign
    assert.equal(hex(der.namedBits([7])), '03020001');
    assert.equal(hex(der.namedBits([8])), '0303070080'); // decipherOnly
    assert.equal(hex(der.namedBits([])), '030100');
  });

  it('OCTET STRING and the string types', () => {
    assert.equal(hex(der.octetString(Buffer.from([1, 2, 3]))), '0403010203');
    assert.equal(hex(der.utf8String('é')), '0c02c3a9');
    assert.equal(hex(der.printableString('node-a')), '13066e6f64652d61');
    assert.equal(hex(der.ia5String('localhost')), `1609${Buffer.from('localhost').toString('hex')}`);
  });

  it('PrintableString and IA5String refuse characters they cannot hold', () => {
    for (const text of ['team_a', 'a@b', 'a*', 'é']) {
      assert.equal(der.isPrintable(text), false, text);
      assert.throws(() => der.printableString(text), Error, text);
    }
    assert.equal(der.isPrintable("Aa0 '()+,-./:=?"), true);
    assert.throws(() => der.ia5String('bücher.example'), Error);
  });

  it('SEQUENCE keeps order, SET sorts its elements', () => {
    assert.equal(hex(der.sequence(der.integer(2), der.integer(1))), '3006020102020101');
    assert.equal(hex(der.set(der.integer(2), der.integer(1))), '3106020101020102');
    assert.equal(hex(der.sequence()), '3000');
  });

  it('context-specific tags: explicit wraps, implicit replaces the tag', () => {
    assert.equal(hex(der.explicit(0, der.integer(2))), 'a003020102'); // the v3 version field
    assert.equal(hex(der.explicit(3, der.sequence())), 'a3023000');
    assert.equal(hex(der.implicit(2, der.ia5String('a'))), '820161'); // dNSName
    assert.equal(hex(der.implicit(7, der.octetString(Buffer.from([127, 0, 0, 1])))), '87047f000001'); // iPAddress
    assert.equal(hex(der.implicit(0, der.sequence(der.nullValue()))), 'a0020500'); // stays constructed
    assert.throws(() => der.explicit(31, der.nullValue()), RangeError);
  });
});

describe('DER reader', () => {
  it('walks nested elements with short and long lengths', () => {
    const inner = der.octetString(Buffer.alloc(300, 1));
    const outer = der.sequence(der.integer(5), inner, der.explicit(3, der.boolean(true)));
    const root = readSingle(outer);
    assert.equal(root.tag, 0x30);
    assert.ok(root.der.equals(outer));
    const [first, second, third] = childrenOf(root);
    assert.equal(hex(first!.der), '020105');
    assert.ok(second!.der.equals(inner));
    assert.equal(second!.contents.length, 300);
    assert.equal(third!.tag, 0xa3);
    assert.equal(hex(childrenOf(third!)[0]!.der), '0101ff');
  });

  it('readElement returns the rest', () => {
    const { element, rest } = readElement(Buffer.concat([der.integer(1), der.nullValue()]));
    assert.equal(hex(element.der), '020101');
    assert.equal(hex(rest), '0500');
  });

  it('refuses truncated, indefinite-length, trailing and primitive-as-constructed input', () => {
    assert.throws(() => readSingle(Buffer.from('02', 'hex')), /truncated/);
    assert.throws(() => readSingle(Buffer.from('020201', 'hex')), /longer than its input/);
    assert.throws(() => readSingle(Buffer.from('0482', 'hex')), /truncated length/);
    assert.throws(() => readSingle(Buffer.from('308002010000', 'hex')), /indefinite/);
    assert.throws(() => readSingle(Buffer.from('0201010500', 'hex')), /trailing/);
    assert.throws(() => childrenOf(readSingle(der.integer(1))), /primitive/);
  });
});

describe('IP addresses in subjectAltName (x509.ipAddressBytes)', () => {
  it('IPv4: 4 bytes', () => {
    assert.equal(hex(ipAddressBytes('127.0.0.1')), '7f000001');
    assert.equal(hex(ipAddressBytes('10.1.2.3')), '0a010203');
    assert.equal(hex(ipAddressBytes('255.255.255.255')), 'ffffffff');
  });

  it('IPv6: 16 bytes, "::" expanded wherever it stands', () => {
    assert.equal(hex(ipAddressBytes('::1')), '00000000000000000000000000000001');
    assert.equal(hex(ipAddressBytes('::')), '00000000000000000000000000000000');
    assert.equal(hex(ipAddressBytes('fe80::')), 'fe800000000000000000000000000000');
    assert.equal(hex(ipAddressBytes('2001:db8::ff00:42:8329')), '20010db8000000000000ff0000428329');
    assert.equal(hex(ipAddressBytes('2001:0db8:0000:0000:0000:ff00:0042:8329')), '20010db8000000000000ff0000428329');
    assert.equal(hex(ipAddressBytes('2001:DB8:1:2:3:4:5:6')), '20010db8000100020003000400050006');
  });

  it('IPv6 with a dotted IPv4 tail or a zone index', () => {
    assert.equal(hex(ipAddressBytes('::ffff:192.0.2.1')), '00000000000000000000ffffc0000201');
    assert.equal(hex(ipAddressBytes('64:ff9b::10.0.0.255')), '0064ff9b00000000000000000a0000ff');
    assert.equal(hex(ipAddressBytes('fe80::1%eth0')), 'fe800000000000000000000000000001');
  });

  it('refuses what is not an address', () => {
    for (const bad of ['localhost', '1.2.3', '1::2::3', '256.0.0.1', '']) assert.throws(() => ipAddressBytes(bad), /not an IP address/, bad);
  });
});
