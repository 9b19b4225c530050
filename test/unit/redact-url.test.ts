// Request URLs as the agent logs them: stream tokens and a command's arguments cut out.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { redactUrl } from '../../src/server/app.js';

it("cuts out stream tokens and every command argument, however the key is spelled, and leaves the rest", () => {
  assert.equal(redactUrl('/v1/streams/abcdef'), '/v1/streams/[redacted]');
  // Other spellings of the same route: percent-encoded, absolute-form (the router takes both).
  assert.equal(redactUrl('/v1/%73treams/abcdef'), '/v1/streams/[redacted]');
  assert.equal(redactUrl('/v1%2Fstreams/abcdef'), '/v1/streams/[redacted]');
  assert.equal(redactUrl('https://agent:10350/v1/streams/abcdef?x=1'), '/v1/streams/[redacted]');
  assert.equal(redactUrl('/v1/%zzstreams/abcdef'), '/v1/%zzstreams/abcdef', 'invalid encoding: compared as it is');
  assert.equal(
    redactUrl('/api/v1/namespaces/n/pods/p/exec?command=env&command=PGPASSWORD%3Dx&container=app&stdout=true'),
    '/api/v1/namespaces/n/pods/p/exec?command=[redacted]&command=[redacted]&container=app&stdout=true',
  );
  assert.equal(redactUrl('/exec/n/p/c?%63ommand=secret&output=1'), '/exec/n/p/c?%63ommand=[redacted]&output=1');
  assert.equal(redactUrl('/exec/n/p/c?commandx=1&%zz=2'), '/exec/n/p/c?commandx=1&%zz=2');
  assert.equal(redactUrl('/api/v1/namespaces/n/pods'), '/api/v1/namespaces/n/pods');
});

it('cuts out a token sent where Kubernetes once took one (access_token), though execlet does not take it there', () => {
  assert.equal(redactUrl('/api/v1/pods?access_token=secret&limit=5'), '/api/v1/pods?access_token=[redacted]&limit=5');
  assert.equal(redactUrl('/api/v1/pods?access%5Ftoken=secret'), '/api/v1/pods?access%5Ftoken=[redacted]');
});
