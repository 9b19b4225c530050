// The agent's query-string parser: what fastify's default does (`+` is a space, a repeated key is
// an array, a key without `=` has the value ''), except that percent-encoding which does not decode
// to UTF-8 text (`%zz`, `caf%E9`, a cut-off `%E0%A4%A`) is not passed on as it was written. The
// default kept such a value undecoded, so `command=caf%E9` ran the program with the literal
// argument `caf%E9`. Here the parameter is marked instead, and the request refused with a Status
// naming it (app.ts), before any route reads the query.

export type ParsedQuery = Record<string, string | string[]>;

/** Where a parsed query keeps its malformed parameters (a symbol: no query key can collide with it). */
const MALFORMED = Symbol('malformed query parameters');

/** The longest parameter name a refusal repeats. */
const MAX_SHOWN_NAME = 64;

/** Percent-decodes a query component (after `+` → space), or null when it is not UTF-8 text. */
export function decodeQueryComponent(component: string): string | null {
  const spaced = component.includes('+') ? component.replace(/\+/g, ' ') : component;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return null;
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

export function parseQueryString(raw: string): ParsedQuery {
  const result: ParsedQuery = Object.create(null) as ParsedQuery;
  /** Malformed values by key and occurrence (1-based), and names that do not decode by pair. */
  const badValues: Array<{ key: string; occurrence: number }> = [];
  const badNames: number[] = [];
  let pairIndex = 0;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    pairIndex++;
    const equals = pair.indexOf('=');
    const key = decodeQueryComponent(equals === -1 ? pair : pair.slice(0, equals));
    if (key === null) {
      badNames.push(pairIndex);
      continue;
    }
    const rawValue = equals === -1 ? '' : pair.slice(equals + 1);
    const value = decodeQueryComponent(rawValue);
    const current = result[key];
    const kept = value ?? rawValue;
    if (current === undefined) result[key] = kept;
    else if (Array.isArray(current)) current.push(kept);
    else result[key] = [current, kept];
    if (value === null) badValues.push({ key, occurrence: Array.isArray(result[key]) ? result[key].length : 1 });
  }
  if (badValues.length > 0 || badNames.length > 0) {
    const malformed = [
      ...badNames.map((index) => `the name of query parameter ${index}`),
      ...badValues.map(({ key, occurrence }) => {
        const name = JSON.stringify(key.length > MAX_SHOWN_NAME ? `${key.slice(0, MAX_SHOWN_NAME)}…` : key);
        return Array.isArray(result[key]) ? `the ${ordinal(occurrence)} query parameter ${name}` : `query parameter ${name}`;
      }),
    ];
    Object.defineProperty(result, MALFORMED, { value: malformed, enumerable: false });
  }
  return result;
}

/**
 * Why the request's query cannot be taken as it stands (naming the parameters, never their values,
 * which may be secrets), or null.
 */
export function malformedQueryProblem(query: unknown): string | null {
  const malformed = typeof query === 'object' && query !== null ? (query as { [MALFORMED]?: string[] })[MALFORMED] : undefined;
  if (!malformed) return null;
  const shown = malformed.length > 3 ? [...malformed.slice(0, 3), `${malformed.length - 3} more`] : malformed;
  return `${shown.join(', ')} ${malformed.length === 1 ? 'is' : 'are'} not valid percent-encoding of UTF-8 text`;
}
