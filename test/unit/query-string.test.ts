// The agent's query-string parser: fastify's semantics for what decodes, and a refusal naming the
// parameter (never its value) for percent-encoding that is not UTF-8 text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { malformedQueryProblem, parseQueryString } from '../../src/server/query-string.js';

const plain = (raw: string) => ({ ...parseQueryString(raw) });

describe('parseQueryString', () => {
  it('decodes as fastify does: + is a space, a repeated key is an array, a bare key is empty', () => {
    assert.deepEqual(plain('command=sh&command=-c&command=echo+a%20b%2Bc&tty=1&stdin'), { command: ['sh', '-c', 'echo a b+c'], tty: '1', stdin: '' });
    assert.deepEqual(plain('command=caf%C3%A9&x=%F0%9F%98%80'), { command: 'café', x: '😀' });
    assert.deepEqual(plain('a=1&&b=&=c'), { a: '1', b: '', '': 'c' });
    assert.deepEqual(plain(''), {});
    assert.deepEqual(plain('%63ommand=ls'), { command: 'ls' });
    assert.deepEqual(plain('a=x=y'), { a: 'x=y' });
  });

  it('has no prototype: __proto__ is a key like any other', () => {
    const query = parseQueryString('__proto__=x&constructor=y');
    assert.equal(Object.getPrototypeOf(query), null);
    assert.deepEqual({ ...query }, { ['__proto__']: 'x', constructor: 'y' });
  });

  it('a valid query has no problem', () => {
    assert.equal(malformedQueryProblem(parseQueryString('command=ls&container=app')), null);
    assert.equal(malformedQueryProblem({ command: 'ls' }), null);
    assert.equal(malformedQueryProblem(undefined), null);
  });

  it('names a value that is not UTF-8 (Latin-1 é, a cut-off sequence, a surrogate, a bad escape), and not the value', () => {
    for (const value of ['caf%E9', '%E0%A4%A', '%ED%A0%80', '%zz', 'secret%']) {
      assert.equal(malformedQueryProblem(parseQueryString(`container=app&command=${value}`)), 'query parameter "command" is not valid percent-encoding of UTF-8 text', value);
    }
  });

  it('names which of a repeated parameter, and every one that is malformed', () => {
    assert.equal(
      malformedQueryProblem(parseQueryString('command=echo&command=caf%E9&command=ok')),
      'the 2nd query parameter "command" is not valid percent-encoding of UTF-8 text',
    );
    assert.equal(
      malformedQueryProblem(parseQueryString('command=%ff&container=%fe&command=x&%zz=1')),
      'the name of query parameter 4, the 1st query parameter "command", query parameter "container" are not valid percent-encoding of UTF-8 text',
    );
    const many = Array.from({ length: 12 }, () => 'command=%ff').join('&');
    assert.match(malformedQueryProblem(parseQueryString(many))!, /the 1st query parameter "command", the 2nd query parameter "command", the 3rd query parameter "command", 9 more are not valid/);
    assert.match(malformedQueryProblem(parseQueryString(Array.from({ length: 13 }, () => 'c=%ff').join('&')))!, /the 1st .*, the 2nd .*, the 3rd .*, 10 more are/);
  });

  it('keeps a long parameter name short in the refusal', () => {
    const problem = malformedQueryProblem(parseQueryString(`${'k'.repeat(500)}=%ff`))!;
    assert.ok(problem.length < 150, problem);
    assert.match(problem, /^query parameter "k{64}…" is not valid/);
  });
});
