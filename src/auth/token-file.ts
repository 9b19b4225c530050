// Bearer tokens of many users, read from a file and reloaded (on request or on change) without
// ever dropping the entries in use: a file that fails to read or parse leaves the previous set active.
//
// File format, one entry per line; blank lines and lines whose first non-blank character is `#` are
// ignored (there are no trailing comments, so a `#` inside a token is part of the token):
//
//   TOKEN_OR_HASH USER [GROUP[,GROUP...]]
//
// TOKEN_OR_HASH is the token itself or `sha256:<64 lowercase hex>` of its UTF-8 bytes. Fields are
// separated by whitespace; user and group names are any non-blank strings but the local token's
// (execlet:local, which without a policy grants node shells). Each token may appear
// once (a token listed both in plain and in hashed form is a duplicate too).
//
// Only SHA-256 digests are kept in memory, and no error message ever contains a token or a hash.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { watchFiles } from '../config/watch-files.js';
import { isReservedName, LOCAL_USER } from './authenticate.js';
import { isBearerTokenText } from './bearer-token.js';

export interface TokenIdentity {
  user: string;
  groups: string[];
}

export class TokenFileError extends Error {
  /** `source` is the file (or other origin) the text came from; `line` is 1-based, null when not about one line. */
  constructor(
    message: string,
    readonly source: string,
    readonly line: number | null = null,
  ) {
    super(line === null ? `${source}: ${message}` : `${source} line ${line}: ${message}`);
    this.name = 'TokenFileError';
  }
}

const HASH_PREFIX = 'sha256:';
const HEX_DIGEST = /^[0-9a-f]{64}$/;

function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/**
 * Parses the token file text. Returns SHA-256 hex of each token → identity.
 * Throws TokenFileError naming `source` and the line; the message never includes the token or hash.
 */
export function parseTokenFile(text: string, source: string): Map<string, TokenIdentity> {
  const entries = new Map<string, TokenIdentity>();
  const firstLineOf = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const lineNumber = index + 1;
    const line = lines[index]!.trim();
    if (line === '' || line.startsWith('#')) continue;

    const fields = line.split(/\s+/);
    if (fields.length < 2 || fields.length > 3) {
      throw new TokenFileError(`expected "TOKEN USER [GROUPS]", found ${fields.length} field${fields.length === 1 ? '' : 's'}`, source, lineNumber);
    }
    const [tokenOrHash, user, groupList] = fields as [string, string, string | undefined];

    let digest: string;
    if (tokenOrHash.startsWith(HASH_PREFIX)) {
      digest = tokenOrHash.slice(HASH_PREFIX.length);
      if (!HEX_DIGEST.test(digest)) {
        throw new TokenFileError(`a "${HASH_PREFIX}" entry must be followed by exactly 64 lowercase hex digits`, source, lineNumber);
      }
    } else {
      if (!isBearerTokenText(tokenOrHash)) {
        throw new TokenFileError('the token holds a character other than printable ASCII, which no "Authorization: Bearer" header carries as written', source, lineNumber);
      }
      digest = sha256Hex(tokenOrHash);
    }

    const groups = groupList === undefined ? [] : groupList.split(',');
    if (groups.some((group) => group === '')) {
      // Not naming the user: with the fields swapped by mistake, that is the token.
      throw new TokenFileError('empty group name in the group list (groups are separated by single commas)', source, lineNumber);
    }
    if (isReservedName(user) || groups.some(isReservedName)) {
      throw new TokenFileError(`the name ${LOCAL_USER} is the agent's local token's; no token-file user or group may take it`, source, lineNumber);
    }

    const earlier = firstLineOf.get(digest);
    if (earlier !== undefined) throw new TokenFileError(`duplicate token (already on line ${earlier})`, source, lineNumber);
    firstLineOf.set(digest, lineNumber);
    entries.set(digest, { user, groups });
  }
  return entries;
}

function readAndParse(file: string): Map<string, TokenIdentity> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenFileError(`cannot read the token file: ${(err as Error).message}`, file);
  }
  return parseTokenFile(text, file);
}

function asTokenFileError(err: unknown, file: string): TokenFileError {
  return err instanceof TokenFileError ? err : new TokenFileError(`unexpected error: ${String((err as Error)?.message ?? err)}`, file);
}

export class TokenFile {
  readonly #file: string;
  #entries: Map<string, TokenIdentity>;

  private constructor(file: string, entries: Map<string, TokenIdentity>) {
    this.#file = file;
    this.#entries = entries;
  }

  /** Reads and parses `file`; throws TokenFileError when it cannot. */
  static load(file: string): TokenFile {
    return new TokenFile(file, readAndParse(file));
  }

  /** The file this set was loaded from. */
  get file(): string {
    return this.#file;
  }

  /** Number of tokens currently accepted. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * The identity the presented token belongs to, or null.
   *
   * Why a Map lookup is safe here without timingSafeEqual: the presented token is hashed first and the
   * map is keyed by the hex SHA-256 digest, so the only thing whose comparison time can vary is the
   * digest. Learning how many leading digest characters of a guess match a stored digest tells an
   * attacker nothing usable about any token (they would need a SHA-256 preimage), and the token itself
   * is never compared, so there is no byte-by-byte timing oracle on it.
   */
  lookup(token: string): TokenIdentity | null {
    if (typeof token !== 'string' || token.length === 0) return null;
    const identity = this.#entries.get(sha256Hex(token));
    // A copy, so a caller cannot change what the next lookup returns.
    return identity === undefined ? null : { user: identity.user, groups: [...identity.groups] };
  }

  /** The identity whose token has this SHA-256 (hex), or null: for an identity looked up before (Authenticator.reconfirm). */
  lookupDigest(tokenDigest: string): TokenIdentity | null {
    const identity = this.#entries.get(tokenDigest);
    return identity === undefined ? null : { user: identity.user, groups: [...identity.groups] };
  }

  /** Re-reads the file. On error the previous entries stay in force and the error is returned (never thrown). */
  reload(): TokenFileError | null {
    try {
      this.#entries = readAndParse(this.#file);
      return null;
    } catch (err) {
      return asTokenFileError(err, this.#file);
    }
  }

  /**
   * Watches the file (as watch-files.ts does: replaced by a rename, or a mounted secret updated)
   * and reloads it on change; calls `onReload(error | null)` after each reload, and — when the
   * watcher itself fails later — `onUnwatched` with the error (`onReload`, when not given). Throws
   * TokenFileError when its directory cannot be watched. Returns a function that stops watching
   * (safe to call more than once).
   */
  watch(onReload: (error: TokenFileError | null) => void, onUnwatched: (error: TokenFileError) => void = onReload): () => void {
    try {
      return watchFiles([this.#file], () => onReload(this.reload()), (err) => onUnwatched(new TokenFileError(err.message, this.#file)));
    } catch (err) {
      throw new TokenFileError((err as Error).message, this.#file);
    }
  }
}
