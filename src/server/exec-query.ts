// Parses the query of the two exec URL shapes with their own upstream rules: apiserver-shaped
// (`stdin=true`; absent/0/false is false, anything else true) and kubelet-shaped (`input=1`; only 1).
import { z } from 'zod';

export interface ExecRequestOptions {
  command: string[];
  container: string | undefined;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  /** For the nsenter mode: the namespaces to enter (names, possibly comma-separated); empty = default. */
  namespaces: string[];
}

export class ExecQueryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecQueryError';
  }
}

const repeated = z.union([z.string(), z.array(z.string())]).optional();
const firstOf = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);
const allOf = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** Convert_Slice_string_To_bool: a missing value is false, `0`/`false` (any case) false, anything else true. */
const apiserverBool = repeated.transform((value) => {
  const first = firstOf(value);
  if (first === undefined) return false;
  const lowered = first.toLowerCase();
  return lowered !== '0' && lowered !== 'false';
});
/** The kubelet's rule: only the exact value `1` is true. */
const kubeletBool = repeated.transform((value) => firstOf(value) === '1');

const apiserverQuery = z.looseObject({
  command: repeated.transform(allOf),
  container: repeated.transform(firstOf),
  stdin: apiserverBool,
  stdout: apiserverBool,
  stderr: apiserverBool,
  tty: apiserverBool,
  namespaces: repeated.transform(allOf),
});

const kubeletQuery = z.looseObject({
  command: repeated.transform(allOf),
  input: kubeletBool,
  output: kubeletBool,
  error: kubeletBool,
  tty: kubeletBool,
  namespaces: repeated.transform(allOf),
});

/** Linux's longest program argument (MAX_ARG_STRLEN: 32 pages, with its terminating NUL). */
export const MAX_ARGUMENT_BYTES = 32 * 4096 - 1;

/** A surrogate code unit that is not half of a pair (in a `u` regular expression a pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Why no program could be run with this argument, or null. A NUL byte would end it early where the
 * policy saw it whole; a longer one the kernel refuses (E2BIG), after the audit and policy worked
 * through all of it.
 */
export function commandArgumentProblem(arg: string): string | null {
  if (arg.includes('\0')) return 'contains a NUL byte, which no program argument can hold';
  // Only a JSON body can carry one (as a \uD800 escape); UTF-8 has no form for it.
  if (LONE_SURROGATE.test(arg)) return 'holds a lone UTF-16 surrogate, which is not text and has no UTF-8 form';
  if (arg.length > MAX_ARGUMENT_BYTES / 3 && Buffer.byteLength(arg, 'utf8') > MAX_ARGUMENT_BYTES) {
    return `is longer than ${MAX_ARGUMENT_BYTES} bytes, the longest argument Linux runs a program with`;
  }
  return null;
}

function validateCommon(options: ExecRequestOptions): ExecRequestOptions {
  if (options.command.length === 0) throw new ExecQueryError('you must specify at least one command for the container (query parameter "command")');
  if (options.command[0] === '') throw new ExecQueryError('the first "command" parameter (the program to run) must not be empty');
  for (const [index, arg] of options.command.entries()) {
    const problem = commandArgumentProblem(arg);
    if (problem) throw new ExecQueryError(`"command" parameter ${index + 1} ${problem}`);
  }
  if (!options.stdin && !options.stdout && !options.stderr) {
    throw new ExecQueryError('you must specify at least 1 of stdin, stdout, stderr');
  }
  return options;
}

function parseOrThrow<T>(schema: z.ZodType<T>, query: unknown): T {
  const parsed = schema.safeParse(query ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ExecQueryError(`invalid query parameter "${issue.path.join('.')}": ${issue.message}`);
  }
  return parsed.data;
}

/**
 * Apiserver rules. With a TTY, stderr is dropped quietly (the apiserver passes it on and the kubelet
 * drops it); client-node always sends stderr=true, even for TTY sessions.
 */
export function parseApiserverExecQuery(query: unknown): ExecRequestOptions {
  const q = parseOrThrow(apiserverQuery, query);
  return validateCommon({
    command: q.command,
    container: q.container === '' ? undefined : q.container,
    stdin: q.stdin,
    stdout: q.stdout,
    stderr: q.stderr && !q.tty,
    tty: q.tty,
    namespaces: q.namespaces,
  });
}

/**
 * Kubelet rules, as the kubelet's own exec handler reads a request (remotecommand NewOptions): with
 * a TTY, stderr is dropped quietly — before the check that some stream is asked for, so `tty=1`
 * with only `error=1` asks for none.
 */
export function parseKubeletExecQuery(query: unknown, container: string): ExecRequestOptions {
  const q = parseOrThrow(kubeletQuery, query);
  return validateCommon({ command: q.command, container, stdin: q.input, stdout: q.output, stderr: q.error && !q.tty, tty: q.tty, namespaces: q.namespaces });
}
