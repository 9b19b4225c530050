// Redaction of a command's arguments before they reach the audit log: the built-in rules that keep
// passwords, tokens and credentials out of it (redactSecrets), then the operator's own patterns
// (redactArgv). Every built-in rule runs in time linear in the argument's length, whatever a caller
// sends: the audit record of a refused request is written synchronously, on the event loop.
// Shell code (the argument after `-c`, as in `sh -c CODE`) has only the secret itself redacted, so
// an assignment at its start cannot hide the commands after it.

export const REDACTED = '[REDACTED]';

const SECRET_WORDS = 'password|passwd|secret|token|key|credentials?';
/** A name holding one of these is a secret's name (case-insensitive; inside longer names too). */
const SECRET_NAME = new RegExp(SECRET_WORDS, 'i');
/** What a flag or variable name is made of. */
const NAME_CHAR = /[\w.-]/;
/** A bare long flag whose value is the next argument: `--password`, `--client-secret`. */
const SECRET_FLAG = new RegExp(`^--[\\w.-]*(?:${SECRET_WORDS})$`, 'i');
/** An HTTP credential: what follows the header and its scheme word, or `Bearer `, is the secret. */
const HTTP_CREDENTIAL = /^(.*?\b(?:(?:proxy-)?authorization:\s*(?:[a-z]+\s+)?|bearer\s+))\S.*$/is;
/** A URL with a password: `scheme://user:password@host`. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^\s/@:]*:)[^\s/@]*@.*$/is;
/** The option before an argument that is code (`sh -c CODE`, `bash -lc CODE`, `python -c CODE`, `perl -e CODE`). */
const CODE_OPTION = /^-[A-Za-z]*[ce][A-Za-z]*$/;

/**
 * Redacts secrets in an argv (a new array; the input is not changed). In an ordinary argument:
 *
 * 1. `NAME=value` where NAME (letters, digits, `_`, `.`, `-`: flags and variable names) holds one
 *    of the words password, passwd, secret, token, key, credential: `NAME=[REDACTED]`. Covers
 *    `--password=x`, `--api-key=x`, `TOKEN=abc`, `aws_secret_access_key=x` (as passed to `env`);
 *    `--keyfile=x` and `monkey=x` too: erring towards redaction.
 * 2. A long flag on its own whose name ends with one of those words (`--password`, `--api-key`): the
 *    NEXT argument is replaced whole, whatever it is. Short flags (`-p`) are left alone: their
 *    meaning differs per program.
 * 3. Everything after `Authorization:` / `Proxy-Authorization:` and its scheme word, and after
 *    `Bearer `.
 * 4. A URL with a password (`scheme://user:password@host…`): everything after `user:`.
 *
 * In shell code (the first argument not starting with `-` after an option such as `-c`, `-lc` or
 * `-e`), each word of the code is
 * looked at instead: a secret assignment anywhere (`export DB_PASSWORD="a b"; psql` →
 * `export DB_PASSWORD=[REDACTED]; psql`), the word after a secret flag, `Bearer` or
 * `Authorization:` (and its scheme word), a header value within a quoted word, and a URL's
 * password up to its `@`. The rest of the code is kept.
 *
 * Not redacted: short-flag values (`mysql -pSECRET`), other headers (`X-Api-Key: x`), secrets inside
 * structured values such as JSON.
 */
export function redactSecrets(argv: readonly string[]): string[] {
  const result: string[] = [];
  /** After `-c` (and any options or `--` between it and the code, as in `sh -c -- CODE`). */
  let codeNext = false;
  for (let index = 0; index < argv.length; index++) {
    const element = String(argv[index]);
    if (codeNext && !element.startsWith('-')) {
      result.push(redactCode(element));
      codeNext = false;
      continue;
    }
    if (CODE_OPTION.test(element)) codeNext = true;
    result.push(redactArgument(element));
    if (SECRET_FLAG.test(element) && index + 1 < argv.length) {
      result.push(REDACTED);
      index++;
    }
  }
  return result;
}

/** Rules 1, 3 and 4 on an ordinary argument: from the secret to the end of the argument. */
function redactArgument(element: string): string {
  const assignment = secretAssignmentPrefix(element);
  if (assignment !== null) return assignment + REDACTED;
  const credential = HTTP_CREDENTIAL.exec(element) ?? URL_PASSWORD.exec(element);
  return credential ? credential[1] + REDACTED : element;
}

/** `NAME=` when the argument is a secret's `NAME=value` (a value of at least one character), else null. */
function secretAssignmentPrefix(element: string): string | null {
  const equals = element.indexOf('=');
  if (equals <= 0 || equals === element.length - 1) return null;
  for (let i = 0; i < equals; i++) if (!NAME_CHAR.test(element[i]!)) return null;
  const name = element.slice(0, equals);
  return SECRET_NAME.test(name) ? `${name}=` : null;
}

/** Characters that end a shell word when not quoted. */
const WORD_END = new Set([' ', '\t', '\n', '\r', ';', '&', '|', '(', ')', '<', '>', '`']);
const QUOTES = new Set(["'", '"']);

/** The [start, end) of each shell word of `code`: quotes are part of a word and hold its separators. */
function* shellWords(code: string): Generator<[number, number]> {
  let i = 0;
  while (i < code.length) {
    while (i < code.length && WORD_END.has(code[i]!)) i++;
    if (i >= code.length) return;
    const start = i;
    let quote: string | null = null;
    for (; i < code.length; i++) {
      const ch = code[i]!;
      if (quote !== null) {
        if (ch === quote) quote = null;
        else if (ch === '\\' && quote === '"') i++;
      } else if (ch === '\\') i++;
      else if (QUOTES.has(ch)) quote = ch;
      else if (WORD_END.has(ch)) break;
    }
    yield [start, Math.min(i, code.length)];
  }
}

/** The word without the quotes around it, for telling what it is (`"--password"` is `--password`). */
const unquoted = (word: string) => word.replace(/^['"]+|['"]+$/g, '');

/**
 * Shell code, word by word: each word's own secrets (withinWord), and the whole word after a secret
 * flag, `Bearer`, or `Authorization:` (after its scheme word, when one follows).
 */
function redactCode(code: string): string {
  const replaced: Replacement[] = [];
  /** What the word before asked of this one. */
  let next: 'keep' | 'redact' | 'scheme-or-redact' = 'keep';
  for (const [start, end] of shellWords(code)) {
    const word = code.slice(start, end);
    const bare = unquoted(word);
    let replacement: string;
    if (next === 'redact' || (next === 'scheme-or-redact' && !/^[a-z]+$/i.test(bare))) {
      replacement = REDACTED;
      next = 'keep';
    } else {
      replacement = withinWord(word);
      if (next === 'scheme-or-redact') next = 'redact';
      else if (SECRET_FLAG.test(bare) || /^bearer$/i.test(bare)) next = 'redact';
      else if (/^(?:proxy-)?authorization:$/i.test(bare)) next = 'scheme-or-redact';
      else next = 'keep';
    }
    if (replacement !== word) replaced.push([start, end, replacement]);
  }
  return replaceRanges(code, replaced);
}

/** [from, to) of a text, and what it becomes. */
type Replacement = [number, number, string];

/** `text` with each range replaced; the ranges in order, none inside another. */
function replaceRanges(text: string, ranges: readonly Replacement[]): string {
  if (ranges.length === 0) return text;
  let out = '';
  let copiedTo = 0;
  for (const [from, to, replacement] of ranges) {
    out += text.slice(copiedTo, from) + replacement;
    copiedTo = to;
  }
  return out + text.slice(copiedTo);
}

/** Where a secret inside one shell word ends: at a space or a quote (or the word's end). */
function valueEnd(word: string, from: number): number {
  let i = from;
  while (i < word.length && !/[\s'"]/.test(word[i]!)) i++;
  return i;
}

/**
 * The secrets inside one shell word: each `NAME=value` with a secret's name (a quoted value whole),
 * a header's credential within a quoted word (`"Authorization: Bearer x"`), a URL's password.
 */
function withinWord(word: string): string {
  const cuts: Array<[number, number]> = [];
  // Assignments: each `=` after a run of name characters holding a secret word. Runs end at `=`, so
  // each character is looked at once or twice.
  for (let equals = word.indexOf('='); equals > 0; equals = word.indexOf('=', equals + 1)) {
    let nameStart = equals;
    while (nameStart > 0 && NAME_CHAR.test(word[nameStart - 1]!)) nameStart--;
    if (nameStart === equals || !SECRET_NAME.test(word.slice(nameStart, equals))) continue;
    const from = equals + 1;
    const quote = word[from];
    const to = quote !== undefined && QUOTES.has(quote) ? closingQuote(word, from) : valueEnd(word, from);
    if (to > from) cuts.push([from, to]);
    equals = Math.max(equals, to - 1);
  }
  // A header value or bearer token within the word (a quoted header: one word with its spaces).
  let credentialEnd = 0;
  for (const match of word.matchAll(/\b(?:(?:proxy-)?authorization:[ \t]*(?:[a-z]+[ \t]+(?=\S))?|bearer[ \t]+)/gi)) {
    if (match.index < credentialEnd) continue; // within the last one's value: each character scanned once
    const from = match.index + match[0].length;
    credentialEnd = valueEnd(word, from);
    if (credentialEnd > from) cuts.push([from, credentialEnd]);
  }
  // A URL's password: from after `user:` to the last `@` before the host's end.
  for (let scheme = word.indexOf('://'); scheme > 0; scheme = word.indexOf('://', scheme + 3)) {
    let i = scheme + 3;
    while (i < word.length && !/[\s/@:'"]/.test(word[i]!)) i++;
    if (word[i] !== ':') continue;
    const from = i + 1;
    let at = -1;
    for (let j = from; j < word.length && !/[\s/'"]/.test(word[j]!); j++) if (word[j] === '@') at = j;
    if (at > from) cuts.push([from, at]);
  }
  cuts.sort((a, b) => a[0] - b[0]);
  const ranges: Replacement[] = [];
  let cutTo = 0;
  for (const [from, to] of cuts) {
    if (from < cutTo) continue; // inside a cut already made
    ranges.push([from, to, REDACTED]);
    cutTo = to;
  }
  return replaceRanges(word, ranges);
}

/** The index just past the quote that closes the one at `open`, or the word's end. */
function closingQuote(word: string, open: number): number {
  const quote = word[open]!;
  for (let i = open + 1; i < word.length; i++) {
    if (word[i] === '\\' && quote === '"') i++;
    else if (word[i] === quote) return i + 1;
  }
  return word.length;
}

/** A copy of `pattern` without the global/sticky flags, whose `lastIndex` state would make matching depend on history. */
function stateless(pattern: RegExp): RegExp {
  return pattern.global || pattern.sticky ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')) : pattern;
}

/**
 * The operator's own patterns (`audit.redact`), after the built-in rules. For each element the first
 * matching pattern decides:
 *   - a pattern with a named group `flag` that matches: the element is kept and the NEXT element
 *     becomes "[REDACTED]" (for `--password VALUE`);
 *   - a pattern with capture group 1 that took part in the match: the element becomes group 1 + "[REDACTED]";
 *   - any other matching pattern: the element becomes "[REDACTED]".
 * Elements that no pattern matches are kept as they are. Returns a new array.
 */
export function redactArgv(argv: readonly string[], patterns: RegExp[]): string[] {
  const usable = patterns.map(stateless);
  const result: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const element = String(argv[index]);
    let replacement = element;
    let redactNext = false;
    for (const pattern of usable) {
      const match = pattern.exec(element);
      if (match === null) continue;
      if (match.groups?.['flag'] !== undefined) redactNext = true;
      else if (match[1] !== undefined) replacement = match[1] + REDACTED;
      else replacement = REDACTED;
      break;
    }
    result.push(replacement);
    if (redactNext && index + 1 < argv.length) {
      result.push(REDACTED);
      index++;
    }
  }
  return result;
}
