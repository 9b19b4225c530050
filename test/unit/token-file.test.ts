// Unit tests for the multi-user token file (src/auth/token-file.ts): parsing (plain and sha256
// entries, groups, comments), errors that name the line but never the token, duplicates, lookups,
// reloads that keep the old entries on error, and watching a file that is replaced by rename.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseTokenFile, TokenFile, TokenFileError, type TokenIdentity } from '../../src/auth/token-file.js';

const ALICE_TOKEN = 'alice-Token-0123456789abcdefXYZ';
const BOB_TOKEN = 'bob-Secret_9876543210zyxwvuABC';
const CAROL_TOKEN = 'carol-Another-token-555555555';

function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'execlet-token-file-test-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

let fileCounter = 0;
function freshFile(content: string): string {
  const file = join(dir, `tokens-${++fileCounter}.txt`);
  writeFileSync(file, content);
  return file;
}

/** Replaces `file` the way editors and config tools do: write a temporary file, then rename it over. */
function replaceFile(file: string, content: string): void {
  const tmp = `${file}.tmp-${++fileCounter}`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/** Resolves with the next onReload argument. */
function nextReload(): { onReload: (error: TokenFileError | null) => void; next: () => Promise<TokenFileError | null> } {
  const queue: (TokenFileError | null)[] = [];
  const waiters: ((error: TokenFileError | null) => void)[] = [];
  return {
    onReload: (error) => {
      const waiter = waiters.shift();
      if (waiter) waiter(error);
      else queue.push(error);
    },
    next: () =>
      new Promise((resolve) => {
        if (queue.length > 0) resolve(queue.shift()!);
        else waiters.push(resolve);
      }),
  };
}

function parseError(text: string, source = 'tokens.txt'): TokenFileError {
  try {
    parseTokenFile(text, source);
  } catch (err) {
    assert.ok(err instanceof TokenFileError, `expected a TokenFileError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected parseTokenFile to throw');
}

describe('parseTokenFile', () => {
  it('parses plain and sha256 entries, with and without groups', () => {
    const text = [
      `${ALICE_TOKEN} alice system:masters,devs`,
      `sha256:${sha256(BOB_TOKEN)}\tbob`,
      `  ${CAROL_TOKEN}   carol@example.com   ops  `,
    ].join('\n');
    const entries = parseTokenFile(text, 'tokens.txt');
    assert.equal(entries.size, 3);
    assert.deepEqual(entries.get(sha256(ALICE_TOKEN)), { user: 'alice', groups: ['system:masters', 'devs'] });
    assert.deepEqual(entries.get(sha256(BOB_TOKEN)), { user: 'bob', groups: [] });
    assert.deepEqual(entries.get(sha256(CAROL_TOKEN)), { user: 'carol@example.com', groups: ['ops'] });
  });

  it('the keys are SHA-256 hex digests, never the tokens', () => {
    const entries = parseTokenFile(`${ALICE_TOKEN} alice\n`, 'tokens.txt');
    assert.deepEqual([...entries.keys()], [sha256(ALICE_TOKEN)]);
  });

  it('ignores comments, blank lines, CRLF line ends and a final line without a newline', () => {
    const text = `# the tokens\r\n\r\n   \r\n  # indented comment\r\n${ALICE_TOKEN} alice\r\n\t\r\n${BOB_TOKEN} bob`;
    const entries = parseTokenFile(text, 'tokens.txt');
    assert.equal(entries.size, 2);
    assert.equal(entries.get(sha256(BOB_TOKEN))?.user, 'bob');
  });

  it("refuses the local token's name as a user or a group, naming the line", () => {
    const asUser = parseError(`${ALICE_TOKEN} alice\n${BOB_TOKEN} execlet:local\n`);
    assert.equal(asUser.line, 2);
    assert.match(asUser.message, /tokens\.txt line 2: the name execlet:local is the agent's local token's/);
    assert.equal(parseError(`${ALICE_TOKEN} alice devs,execlet:local\n`).line, 1);
  });

  it('an empty file has no entries', () => {
    assert.equal(parseTokenFile('', 'tokens.txt').size, 0);
    assert.equal(parseTokenFile('# nothing yet\n', 'tokens.txt').size, 0);
  });

  it('a line with too few or too many fields is an error naming the file and line, not the token', () => {
    const tooFew = parseError(`# header\n${ALICE_TOKEN} alice\n${BOB_TOKEN}\n`);
    assert.match(tooFew.message, /^tokens\.txt line 3: expected "TOKEN USER \[GROUPS\]"/);
    assert.equal(tooFew.source, 'tokens.txt');
    assert.equal(tooFew.line, 3);
    assert.ok(!tooFew.message.includes(BOB_TOKEN));

    const tooMany = parseError(`${ALICE_TOKEN} alice devs extra\n`);
    assert.match(tooMany.message, /^tokens\.txt line 1: expected "TOKEN USER \[GROUPS\]"/);
    assert.ok(!tooMany.message.includes(ALICE_TOKEN));
  });

  it('a malformed sha256 entry is an error that does not echo the hash', () => {
    const cases = [
      `sha256:${sha256(ALICE_TOKEN).slice(1)}`,
      `sha256:${sha256(ALICE_TOKEN).toUpperCase()}`,
      `sha256:${sha256(ALICE_TOKEN)}0`,
      `sha256:${'g'.repeat(64)}`,
      'sha256:',
    ];
    for (const entry of cases) {
      const err = parseError(`\n${entry} alice\n`);
      assert.match(err.message, /^tokens\.txt line 2: .*64 lowercase hex/, entry);
      assert.ok(!err.message.includes(entry.slice('sha256:'.length) || '\0'), entry);
    }
  });

  it('empty group names are an error', () => {
    for (const groups of ['a,,b', ',a', 'a,']) {
      const err = parseError(`${ALICE_TOKEN} alice ${groups}\n`);
      assert.match(err.message, /^tokens\.txt line 1: empty group name/);
      assert.ok(!err.message.includes(ALICE_TOKEN));
    }
  });

  it('fields swapped by mistake (USER TOKEN GROUPS): the error does not repeat the token from the user field', () => {
    const err = parseError(`alice ${ALICE_TOKEN} team-a,\n`);
    assert.match(err.message, /^tokens\.txt line 1: empty group name in the group list/);
    assert.ok(!err.message.includes(ALICE_TOKEN), err.message);
  });

  it('a token that is not printable ASCII (which no Authorization header carries as written) is an error, without the token', () => {
    for (const token of ['café-token', 'tok€n', 'tok\ufffden', 'τoken']) {
      const err = parseError(`${token} bob team-b\n`);
      assert.match(err.message, /^tokens\.txt line 1: the token holds a character other than printable ASCII/, token);
      assert.ok(!err.message.includes(token), err.message);
    }
    // Names are not tokens: a user or group may be any text.
    assert.deepEqual(parseTokenFile(`${ALICE_TOKEN} zoë équipe\n`, 'tokens.txt').get(sha256(ALICE_TOKEN)), { user: 'zoë', groups: ['équipe'] });
  });

  it('a duplicate token is an error, also when one copy is hashed', () => {
    const plain = parseError(`${ALICE_TOKEN} alice\n${BOB_TOKEN} bob\n${ALICE_TOKEN} mallory\n`);
    assert.match(plain.message, /^tokens\.txt line 3: duplicate token \(already on line 1\)/);
    assert.ok(!plain.message.includes(ALICE_TOKEN));

    const mixed = parseError(`sha256:${sha256(ALICE_TOKEN)} alice\n\n${ALICE_TOKEN} alice2\n`);
    assert.match(mixed.message, /^tokens\.txt line 3: duplicate token \(already on line 1\)/);
    assert.ok(!mixed.message.includes(sha256(ALICE_TOKEN)));
  });

  it('the same user may have several tokens', () => {
    const entries = parseTokenFile(`${ALICE_TOKEN} alice\n${BOB_TOKEN} alice\n`, 'tokens.txt');
    assert.equal(entries.size, 2);
  });
});

describe('TokenFile', () => {
  it('looks up plain and hashed tokens; misses give null', () => {
    const tokens = TokenFile.load(freshFile(`${ALICE_TOKEN} alice devs\nsha256:${sha256(BOB_TOKEN)} bob\n`));
    assert.equal(tokens.size, 2);
    assert.deepEqual(tokens.lookup(ALICE_TOKEN), { user: 'alice', groups: ['devs'] });
    assert.deepEqual(tokens.lookup(BOB_TOKEN), { user: 'bob', groups: [] });
    assert.equal(tokens.lookup(CAROL_TOKEN), null);
    assert.equal(tokens.lookup(''), null);
    assert.equal(tokens.lookup(ALICE_TOKEN.slice(0, -1)), null);
    assert.equal(tokens.lookup(`${ALICE_TOKEN} `), null);
    assert.equal(tokens.lookup(`sha256:${sha256(BOB_TOKEN)}`), null, 'the hash is not itself a token');
  });

  it('a looked-up identity cannot be changed by the caller', () => {
    const tokens = TokenFile.load(freshFile(`${ALICE_TOKEN} alice devs\n`));
    const identity = tokens.lookup(ALICE_TOKEN) as TokenIdentity;
    identity.groups.push('system:masters');
    identity.user = 'root';
    assert.deepEqual(tokens.lookup(ALICE_TOKEN), { user: 'alice', groups: ['devs'] });
  });

  it('load throws a TokenFileError naming the file when it is missing or invalid', () => {
    const missing = join(dir, 'no-such-file.txt');
    assert.throws(() => TokenFile.load(missing), (err: unknown) => {
      assert.ok(err instanceof TokenFileError);
      assert.ok(err.message.startsWith(`${missing}: cannot read the token file`), err.message);
      return true;
    });
    const broken = freshFile(`${ALICE_TOKEN}\n`);
    assert.throws(() => TokenFile.load(broken), (err: unknown) => {
      assert.ok(err instanceof TokenFileError);
      assert.ok(err.message.startsWith(`${broken} line 1: `), err.message);
      assert.ok(!err.message.includes(ALICE_TOKEN));
      return true;
    });
  });

  it('reload picks up a rewrite: new tokens work, removed ones do not', () => {
    const file = freshFile(`${ALICE_TOKEN} alice\n${BOB_TOKEN} bob\n`);
    const tokens = TokenFile.load(file);
    writeFileSync(file, `${ALICE_TOKEN} alice admins\n${CAROL_TOKEN} carol\n`);
    assert.equal(tokens.reload(), null);
    assert.equal(tokens.size, 2);
    assert.deepEqual(tokens.lookup(ALICE_TOKEN), { user: 'alice', groups: ['admins'] });
    assert.deepEqual(tokens.lookup(CAROL_TOKEN), { user: 'carol', groups: [] });
    assert.equal(tokens.lookup(BOB_TOKEN), null);
  });

  it('reload of a broken or missing file keeps the previous entries and returns the error', () => {
    const file = freshFile(`${ALICE_TOKEN} alice\n`);
    const tokens = TokenFile.load(file);

    writeFileSync(file, `${CAROL_TOKEN} carol\n${BOB_TOKEN}\n`);
    const broken = tokens.reload();
    assert.ok(broken instanceof TokenFileError);
    assert.ok(broken.message.startsWith(`${file} line 2: `), broken.message);
    assert.ok(!broken.message.includes(BOB_TOKEN));
    assert.equal(tokens.lookup(ALICE_TOKEN)?.user, 'alice');
    assert.equal(tokens.lookup(CAROL_TOKEN), null, 'nothing from a broken file is applied');

    rmSync(file);
    const missing = tokens.reload();
    assert.ok(missing instanceof TokenFileError);
    assert.match(missing.message, /cannot read the token file/);
    assert.equal(tokens.lookup(ALICE_TOKEN)?.user, 'alice');
    assert.equal(tokens.size, 1);
  });

  it('watch reloads when the file is replaced by rename, and reports a broken replacement', { timeout: 10_000 }, async () => {
    const file = freshFile(`${ALICE_TOKEN} alice\n`);
    const tokens = TokenFile.load(file);
    const reloads = nextReload();
    const stop = tokens.watch(reloads.onReload);
    try {
      replaceFile(file, `${BOB_TOKEN} bob\n`);
      assert.equal(await reloads.next(), null);
      assert.equal(tokens.lookup(BOB_TOKEN)?.user, 'bob');
      assert.equal(tokens.lookup(ALICE_TOKEN), null);

      // Still watching after the first replacement (the old inode is gone; the directory is watched).
      replaceFile(file, `${BOB_TOKEN} bob\n${CAROL_TOKEN}\n`);
      const error = await reloads.next();
      assert.ok(error instanceof TokenFileError);
      assert.ok(error.message.startsWith(`${file} line 2: `), error.message);
      assert.ok(!error.message.includes(CAROL_TOKEN));
      assert.equal(tokens.lookup(BOB_TOKEN)?.user, 'bob', 'the old entries stay in force');

      replaceFile(file, `${CAROL_TOKEN} carol\n`);
      assert.equal(await reloads.next(), null);
      assert.equal(tokens.lookup(CAROL_TOKEN)?.user, 'carol');
    } finally {
      stop();
      stop();
    }
  });

  it('watch follows an in-place rewrite too', { timeout: 10_000 }, async () => {
    const file = freshFile(`${ALICE_TOKEN} alice\n`);
    const tokens = TokenFile.load(file);
    const reloads = nextReload();
    const stop = tokens.watch(reloads.onReload);
    try {
      writeFileSync(file, `${ALICE_TOKEN} alice\n${BOB_TOKEN} bob\n`);
      // Wait until the reload has seen the new content (a write may be reported before it is complete).
      while ((await reloads.next()) !== null || tokens.lookup(BOB_TOKEN) === null) {
        /* next event */
      }
      assert.equal(tokens.size, 2);
    } finally {
      stop();
    }
  });

  it('watch follows a Kubernetes-style secret volume update (..data symlink swap)', { timeout: 10_000 }, async () => {
    const volume = join(dir, 'secret-volume');
    mkdirSync(join(volume, '..2024_01'), { recursive: true });
    writeFileSync(join(volume, '..2024_01', 'tokens.txt'), `${ALICE_TOKEN} alice\n`);
    symlinkSync('..2024_01', join(volume, '..data'));
    symlinkSync(join('..data', 'tokens.txt'), join(volume, 'tokens.txt'));

    const tokens = TokenFile.load(join(volume, 'tokens.txt'));
    assert.equal(tokens.lookup(ALICE_TOKEN)?.user, 'alice');
    const reloads = nextReload();
    const stop = tokens.watch(reloads.onReload);
    try {
      mkdirSync(join(volume, '..2024_02'));
      writeFileSync(join(volume, '..2024_02', 'tokens.txt'), `${BOB_TOKEN} bob\n`);
      symlinkSync('..2024_02', join(volume, '..data_tmp'));
      renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
      assert.equal(await reloads.next(), null);
      assert.equal(tokens.lookup(BOB_TOKEN)?.user, 'bob');
      assert.equal(tokens.lookup(ALICE_TOKEN), null);
    } finally {
      stop();
    }
  });

  it('watch throws a TokenFileError when the directory cannot be watched', () => {
    const sub = join(dir, 'vanishing');
    mkdirSync(sub);
    writeFileSync(join(sub, 'tokens.txt'), `${ALICE_TOKEN} alice\n`);
    const tokens = TokenFile.load(join(sub, 'tokens.txt'));
    rmSync(sub, { recursive: true });
    assert.throws(() => tokens.watch(() => {}), (err: unknown) => {
      assert.ok(err instanceof TokenFileError);
      assert.match(err.message, /cannot watch the directory/);
      return true;
    });
    assert.equal(tokens.lookup(ALICE_TOKEN)?.user, 'alice');
  });
});
