// Authorization policy: who may exec where, in which mode, with which command. Loaded from a YAML
// (or JSON) file of rules, validated strictly; once a policy is configured everything not granted
// by a rule is denied. Denials name what was refused in the caller's terms and never reveal the
// policy itself (no rule names, no other subjects, no patterns).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseYaml } from '../config/yaml.js';
import { LOCAL_USER } from './authenticate.js';
import { z } from 'zod';

export type PolicyMode = 'exec' | 'nsenter' | 'node';

export interface Subject {
  user: string;
  groups: string[];
}

export interface PolicyTarget {
  /** For node mode: namespace 'execlet-node', pod = node name, container 'host'. */
  namespace: string;
  pod: string;
  container: string;
  /** Plain Docker containers: the container name (their namespace is "docker"). */
  dockerName?: string;
  /** The container's engine labels. */
  labels?: Record<string, string>;
  /**
   * The container the agent itself runs in (its init shares the agent's mount namespace): it holds
   * the local token. Known only when no policy is configured (WITHOUT_POLICY guards it).
   */
  agentContainer?: boolean;
}

export interface AccessRequest {
  subject: Subject;
  mode: PolicyMode;
  target: PolicyTarget;
  command: string[];
  tty: boolean;
  stdin: boolean;
}

/** What the first granting rule allows: its name (or `rules[i]`) and the limits it sets. */
export interface Grant {
  /** The rule's name, or `rules[N]` for an unnamed one: what audit records and logs say. */
  rule: string;
  /**
   * What the rule's maxSessions counts a user's live sessions against, across policy reloads:
   * `name:NAME`, or for an unnamed rule `unnamed:DIGEST` of what it grants (subjects, modes, targets,
   * tty, stdin, commands), so moving an unnamed rule, or changing its limits, gives nobody a fresh
   * budget (changing what it grants makes it another rule, with a count of its own).
   */
  budget: string;
  maxSessions?: number;
  idleTimeoutMs?: number;
  maxDurationMs?: number;
}

export type DenyReason = 'mode' | 'target' | 'command' | 'tty' | 'stdin';

export type Decision = { allowed: true; grant: Grant } | { allowed: false; reason: DenyReason; message: string };

export class PolicyError extends Error {
  /** One line per problem; `message` is these joined by newlines. */
  readonly issues: string[];

  constructor(message: string, issues: string[] = [message]) {
    super(message);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

// Kept local: auth/ does not import from target/ (see src/target/modes.ts and pods.ts).
const NODE_NAMESPACE = 'execlet-node';
const DOCKER_NAMESPACE = 'docker';

const MODES: readonly PolicyMode[] = ['exec', 'nsenter', 'node'];
/** Modes that reach outside a container's cgroup: never granted by a wildcard. */
const PRIVILEGED_MODES: readonly PolicyMode[] = ['nsenter', 'node'];
const ANY_COMMAND_TAIL = '**';

// ---------------------------------------------------------------------------------------------
// Globs and durations

/** A compiled glob: whether a whole text matches it. */
export interface GlobMatcher {
  test(text: string): boolean;
}

/**
 * `*` matches any run of characters (including none), `?` exactly one (a code point); everything
 * else is literal. Anchored, case-sensitive. Matching takes at most (text length × glob length) steps
 * whatever the text (a regular expression with several `.*` backtracks polynomially on a caller's
 * long argument).
 */
export function compileGlob(glob: string): GlobMatcher {
  const pattern = Array.from(glob);
  if (pattern.every((ch) => ch === '*') && pattern.length > 0) return { test: () => true };
  if (!pattern.includes('*') && !pattern.includes('?')) return { test: (text) => text === glob };
  return { test: (text) => globMatches(pattern, Array.from(text)) };
}

/** The classic wildcard match: on a mismatch, the last `*` takes one more character and matching resumes after it. */
function globMatches(pattern: string[], text: string[]): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let starText = 0;
  while (t < text.length) {
    const ch = pattern[p];
    if (ch === '*') {
      star = p++;
      starText = t;
    } else if (ch !== undefined && (ch === '?' || ch === text[t])) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++starText;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A glob made only of `*` and `?` matches (practically) every name. */
function isWildcardGlob(glob: string | undefined): boolean {
  return glob === undefined || /^[*?]+$/.test(glob);
}

const DURATION_FORMS = 'e.g. "90s", "30m", "12h", "1h30m" or a number of seconds';

/**
 * A duration in milliseconds from `"90s"`, `"30m"`, `"12h"`, `"1h30m"`, `"500ms"` (units h, m, s,
 * ms in that order, each at most once) or a number of seconds (also as a string). Must be positive.
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) throw new Error(`invalid duration ${String(value)}: must be a positive number of seconds`);
    const ms = Math.round(value * 1000);
    if (ms < 1) throw new Error(`invalid duration ${String(value)}: shorter than a millisecond`);
    if (!Number.isSafeInteger(ms)) throw new Error(`invalid duration ${String(value)}: too long`);
    return ms;
  }
  if (typeof value !== 'string') throw new Error(`invalid duration: expected ${DURATION_FORMS}`);
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) {
    try {
      return parseDuration(Number(text));
    } catch (err) {
      // The number's own reason (not positive, under a millisecond, too long), about the text as written.
      const reason = (err as Error).message.split(': ').slice(1).join(': ');
      throw new Error(`invalid duration ${JSON.stringify(value)}: ${reason}`);
    }
  }
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(text);
  if (text === '' || !match) throw new Error(`invalid duration ${JSON.stringify(value)}: expected ${DURATION_FORMS}`);
  const [, h = '0', m = '0', s = '0', msPart = '0'] = match;
  const ms = Number(h) * 3_600_000 + Number(m) * 60_000 + Number(s) * 1000 + Number(msPart);
  if (!Number.isSafeInteger(ms)) throw new Error(`invalid duration ${JSON.stringify(value)}: too long`);
  if (ms <= 0) throw new Error(`invalid duration ${JSON.stringify(value)}: must be positive`);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// The file's schema

const glob = z.string({ error: 'expected a string (a glob)' }).min(1, 'must not be empty');

const subjectName = z
  .string({ error: 'expected a string' })
  .min(1, 'must not be empty')
  .refine((v) => v === '*' || !v.includes('*'), 'names are matched exactly: use "*" alone for anyone, not a pattern');

const subjectsSchema = z
  .strictObject({
    users: z.array(subjectName, { error: 'expected a list of user names' }).optional(),
    groups: z.array(subjectName, { error: 'expected a list of group names' }).optional(),
  }, { error: 'expected a mapping with users and/or groups' })
  .refine((s) => (s.users?.length ?? 0) + (s.groups?.length ?? 0) > 0, 'must name at least one user or group ("*" for anyone)');

const modeSchema = z.enum(['exec', 'nsenter', 'node', '*'], {
  error: 'invalid option: expected one of "exec"|"nsenter"|"node" (or "*", which means exec only)',
});

const dockerSchema = z
  .strictObject({
    name: glob.optional(),
    labels: z
      .record(z.string().min(1, 'label names must not be empty'), z.string({ error: 'expected a string (quote numbers and booleans)' }), {
        error: 'expected a mapping of label names to values',
      })
      .optional(),
  }, { error: 'expected a mapping with name and/or labels' })
  .refine((d) => d.name !== undefined || Object.keys(d.labels ?? {}).length > 0, 'must select containers by name and/or labels');

const targetSchema = z
  .strictObject({
    namespace: glob.optional(),
    pod: glob.optional(),
    container: glob.optional(),
    docker: dockerSchema.optional(),
  }, { error: 'expected a mapping with namespace, pod, container or docker' })
  .superRefine((t, ctx) => {
    if (t.docker && t.namespace !== undefined && !compileGlob(t.namespace).test(DOCKER_NAMESPACE)) {
      ctx.addIssue({
        code: 'custom',
        path: ['namespace'],
        message: `can never match: docker selects plain Docker containers, whose namespace is "${DOCKER_NAMESPACE}"`,
      });
    }
  });

const commandSchema = z
  .array(z.string({ error: 'expected a string (quote numbers and booleans)' }), { error: 'expected an argv pattern, a list of globs such as [ls, "**"]' })
  .min(1, 'must not be empty')
  .superRefine((argv, ctx) => {
    argv.forEach((element, i) => {
      if (element === ANY_COMMAND_TAIL && i !== argv.length - 1) {
        ctx.addIssue({ code: 'custom', path: [i], message: '"**" may only be the last element (it matches any remaining arguments)' });
      }
    });
  });

const durationSchema = z
  .union([z.string(), z.number()], { error: `expected a duration, ${DURATION_FORMS}` })
  .transform((value, ctx) => {
    try {
      return parseDuration(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const positiveInt = z
  .number({ error: 'expected a positive integer' })
  .int('expected a positive integer')
  .positive('expected a positive integer');

const ruleSchema = z.strictObject({
  name: z.string({ error: 'expected a string' }).min(1, 'must not be empty').optional(),
  subjects: subjectsSchema,
  modes: z.array(modeSchema, { error: 'expected a list of modes' }).min(1, 'must list at least one mode'),
  targets: z
    .array(targetSchema, { error: 'expected a list of targets' })
    .min(1, 'must list at least one target (omit it to cover every target)')
    .optional(),
  tty: z.boolean({ error: 'expected true or false' }).optional(),
  stdin: z.boolean({ error: 'expected true or false' }).optional(),
  commands: z
    .array(commandSchema, { error: 'expected a list of argv patterns' })
    .min(1, 'must list at least one command (omit it to allow any command)')
    .optional(),
  maxSessions: positiveInt.optional(),
  idleTimeout: durationSchema.optional(),
  maxDuration: durationSchema.optional(),
}, { error: 'expected a mapping' });

type RawRule = z.output<typeof ruleSchema>;
type RawTarget = z.output<typeof targetSchema>;

const fileSchema = z.strictObject({
  rules: z.array(z.unknown(), { error: 'expected a list of rules' }),
}, { error: 'expected a mapping with a "rules" list' });

// ---------------------------------------------------------------------------------------------
// Compiled rules

interface CompiledTarget {
  namespace: GlobMatcher;
  pod: GlobMatcher;
  container: GlobMatcher;
  docker?: { name?: GlobMatcher; labels: [string, GlobMatcher][] };
}

interface CompiledRule {
  name: string;
  anyUser: boolean;
  users: Set<string>;
  anyGroup: boolean;
  groups: Set<string>;
  modes: Set<PolicyMode>;
  /** null: every target. */
  targets: CompiledTarget[] | null;
  tty: boolean;
  stdin: boolean;
  /** null: any command. Each pattern: element globs, and whether a final `**` takes the rest. */
  commands: { elements: GlobMatcher[]; anyTail: boolean }[] | null;
  grant: Grant;
}

function compileTarget(t: RawTarget): CompiledTarget {
  const compiled: CompiledTarget = {
    namespace: compileGlob(t.namespace ?? '*'),
    pod: compileGlob(t.pod ?? '*'),
    container: compileGlob(t.container ?? '*'),
  };
  if (t.docker) {
    compiled.docker = { labels: Object.entries(t.docker.labels ?? {}).map(([key, value]) => [key, compileGlob(value)]) };
    if (t.docker.name !== undefined) compiled.docker.name = compileGlob(t.docker.name);
  }
  return compiled;
}

/** JSON with object keys sorted at every level: the same value whatever order the file wrote them in. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** An unnamed rule's budget: what it grants, not where it stands or what limits it sets. */
function unnamedBudget(rule: RawRule): string {
  const { subjects, modes, targets, tty, stdin, commands } = rule;
  const digest = createHash('sha256').update(canonicalJson({ subjects, modes, targets, tty, stdin, commands })).digest('hex');
  return `unnamed:${digest.slice(0, 16)}`;
}

function compileRule(rule: RawRule, name: string): CompiledRule {
  const users = rule.subjects.users ?? [];
  const groups = rule.subjects.groups ?? [];
  const modes = new Set<PolicyMode>(rule.modes.map((m) => (m === '*' ? 'exec' : m)));
  const grant: Grant = { rule: name, budget: rule.name !== undefined ? `name:${rule.name}` : unnamedBudget(rule) };
  if (rule.maxSessions !== undefined) grant.maxSessions = rule.maxSessions;
  if (rule.idleTimeout !== undefined) grant.idleTimeoutMs = rule.idleTimeout;
  if (rule.maxDuration !== undefined) grant.maxDurationMs = rule.maxDuration;
  return {
    name,
    anyUser: users.includes('*'),
    users: new Set(users),
    anyGroup: groups.includes('*'),
    groups: new Set(groups),
    modes,
    targets: rule.targets ? rule.targets.map(compileTarget) : null,
    tty: rule.tty !== false,
    stdin: rule.stdin !== false,
    commands: rule.commands
      ? rule.commands.map((argv) => {
          const anyTail = argv[argv.length - 1] === ANY_COMMAND_TAIL;
          return { elements: (anyTail ? argv.slice(0, -1) : argv).map(compileGlob), anyTail };
        })
      : null,
    grant,
  };
}

/** The checks that span fields: who may have nsenter/node, and where nsenter may go. */
function privilegeIssues(rule: RawRule): { path: PropertyKey[]; message: string }[] {
  const issues: { path: PropertyKey[]; message: string }[] = [];
  const privileged = rule.modes.filter((m): m is PolicyMode => (PRIVILEGED_MODES as readonly string[]).includes(m));
  if (privileged.length === 0) return issues;
  for (const key of ['users', 'groups'] as const) {
    const index = rule.subjects[key]?.indexOf('*') ?? -1;
    if (index !== -1) {
      issues.push({ path: ['subjects', key, index], message: 'nsenter and node must be granted to named users or groups, not "*"' });
    }
  }
  if (privileged.includes('nsenter')) {
    if (!rule.targets) {
      issues.push({
        path: ['targets'],
        message: 'nsenter must be limited to explicit targets: list the namespaces, pods or containers (or docker selectors) it may enter',
      });
    } else {
      rule.targets.forEach((t, i) => {
        if (!t.docker && isWildcardGlob(t.namespace) && isWildcardGlob(t.pod) && isWildcardGlob(t.container)) {
          issues.push({
            path: ['targets', i],
            message: 'nsenter must be limited to explicit targets: this entry matches every container; name a namespace, pod or container',
          });
        }
      });
    }
  }
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Error messages

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const text = String(key);
      out += /^[A-Za-z_][A-Za-z0-9_-]*$/.test(text) ? `${out ? '.' : ''}${text}` : `[${JSON.stringify(text)}]`;
    }
  }
  return out;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

function issueText(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string } {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k)).join(', ');
    return { path: issue.path, message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${keys}` };
  }
  return { path: issue.path, message: lowerFirst(issue.message) };
}

function joinIssue(prefix: string, path: readonly PropertyKey[], message: string): string {
  const where = formatPath(path);
  return `${prefix}${where ? `${where}: ` : ''}${message}`;
}

// ---------------------------------------------------------------------------------------------
// Decisions

function matchesSubject(rule: CompiledRule, subject: Subject): boolean {
  if (rule.anyUser || rule.anyGroup || rule.users.has(subject.user)) return true;
  return subject.groups.some((g) => rule.groups.has(g));
}

function matchesTargetEntry(entry: CompiledTarget, target: PolicyTarget): boolean {
  if (!entry.namespace.test(target.namespace) || !entry.pod.test(target.pod) || !entry.container.test(target.container)) return false;
  if (entry.docker) {
    if (target.namespace !== DOCKER_NAMESPACE || target.dockerName === undefined) return false;
    if (entry.docker.name && !entry.docker.name.test(target.dockerName)) return false;
    for (const [key, value] of entry.docker.labels) {
      const actual = target.labels && Object.hasOwn(target.labels, key) ? target.labels[key] : undefined;
      if (actual === undefined || !value.test(actual)) return false;
    }
  }
  return true;
}

function matchesTarget(rule: CompiledRule, mode: PolicyMode, target: PolicyTarget): boolean {
  if (mode === 'node' || rule.targets === null) return true;
  return rule.targets.some((entry) => matchesTargetEntry(entry, target));
}

function matchesCommand(rule: CompiledRule, command: string[]): boolean {
  if (rule.commands === null) return true;
  return rule.commands.some(({ elements, anyTail }) => {
    if (anyTail ? command.length < elements.length : command.length !== elements.length) return false;
    return elements.every((re, i) => re.test(command[i]!));
  });
}

/** The modes that make sense on a target: the node's own pod takes node mode only, containers exec and nsenter. */
function modesForTarget(target: PolicyTarget): PolicyMode[] {
  return target.namespace === NODE_NAMESPACE ? ['node'] : ['exec', 'nsenter'];
}

function describeTarget(mode: PolicyMode, target: PolicyTarget): string {
  return mode === 'node' ? `node ${target.pod}` : `${target.namespace}/${target.pod}/${target.container}`;
}

function denial(reason: DenyReason, request: AccessRequest): Decision {
  const who = `user ${JSON.stringify(request.subject.user)}`;
  const { mode, target } = request;
  const where = describeTarget(mode, target);
  const inWhere = mode === 'node' ? `on ${where}` : `in ${where}`;
  let message: string;
  switch (reason) {
    case 'mode':
      message = `${who} may not use the ${mode} mode on ${where}`;
      break;
    case 'target':
      message = `${who} may not ${mode} into ${where}`;
      break;
    case 'tty':
      message = `${who} may not open a TTY ${inWhere}`;
      break;
    case 'stdin':
      message = `${who} may not send stdin ${mode === 'node' ? `on ${where}` : `to ${where}`}`;
      break;
    case 'command': {
      const program = request.command[0];
      const what = program === undefined ? 'an empty command' : JSON.stringify(program);
      message = `${who} may not run ${what} ${inWhere} (command not allowed)`;
      break;
    }
  }
  return { allowed: false, reason, message };
}

/** What decide() and modesFor() need: a Policy, or WITHOUT_POLICY when none is configured. */
export interface Authorizer {
  decide(request: AccessRequest): Decision;
  modesFor(subject: Subject, target: PolicyTarget): PolicyMode[];
}

export class Policy implements Authorizer {
  readonly ruleCount: number;

  private constructor(
    private readonly rules: readonly CompiledRule[],
    readonly source: string,
  ) {
    this.ruleCount = rules.length;
  }

  /** Parses and validates a policy (YAML or JSON); throws PolicyError listing every problem, one per line. */
  static parse(text: string, source: string): Policy {
    const head = `policy ${source}: `;
    let document: unknown;
    try {
      document = parseYaml(text);
    } catch (err) {
      // The yaml library appends a code frame on further lines; keep the first (it has line and column).
      const first = (err as Error).message.split('\n')[0]!.replace(/:\s*$/, '');
      throw new PolicyError(`${head}not valid YAML or JSON: ${first}`);
    }
    if (document === null || document === undefined) {
      throw new PolicyError(`${head}the file is empty: expected a mapping with a "rules" list`);
    }
    const file = fileSchema.safeParse(document);
    if (!file.success) {
      const issues = file.error.issues.map((issue) => {
        const { path, message } = issueText(issue);
        return joinIssue(head, path, message);
      });
      throw new PolicyError(issues.join('\n'), issues);
    }

    const issues: string[] = [];
    const compiled: CompiledRule[] = [];
    const seenNames = new Map<string, number>();
    file.data.rules.forEach((raw, index) => {
      const rawName =
        raw && typeof raw === 'object' && !Array.isArray(raw) && typeof (raw as { name?: unknown }).name === 'string'
          ? (raw as { name: string }).name
          : '';
      const label = `rules[${index}]`;
      const prefix = rawName ? `${head}rule ${JSON.stringify(rawName)} (${label}): ` : `${head}${label}: `;
      const result = ruleSchema.safeParse(raw);
      if (!result.success) {
        for (const issue of result.error.issues) {
          const { path, message } = issueText(issue);
          issues.push(joinIssue(prefix, path, message));
        }
        return;
      }
      const rule = result.data;
      let ok = true;
      for (const { path, message } of privilegeIssues(rule)) {
        issues.push(joinIssue(prefix, path, message));
        ok = false;
      }
      if (rule.name !== undefined) {
        const earlier = seenNames.get(rule.name);
        if (earlier !== undefined) {
          issues.push(joinIssue(prefix, ['name'], `duplicate rule name (also rules[${earlier}])`));
          ok = false;
        } else {
          seenNames.set(rule.name, index);
        }
      }
      if (ok) compiled.push(compileRule(rule, rule.name ?? label));
    });
    if (issues.length > 0) throw new PolicyError(issues.join('\n'), issues);
    return new Policy(compiled, source);
  }

  /** Reads and parses a policy file; an unreadable file is a PolicyError naming it. */
  static load(file: string): Policy {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PolicyError(`cannot read policy file ${file}: ${(err as Error).message}`);
    }
    return Policy.parse(text, file);
  }

  /**
   * The first rule (in file order) that matches the subject and grants the mode, target, TTY,
   * stdin and command wins. Otherwise the denial gives the most specific reason a person can act
   * on: mode, then target, then tty, stdin, command.
   */
  decide(request: AccessRequest): Decision {
    const { subject, mode, target, command, tty, stdin } = request;
    let reached: DenyReason = 'mode';
    for (const rule of this.rules) {
      if (!matchesSubject(rule, subject) || !rule.modes.has(mode)) continue;
      if (reached === 'mode') reached = 'target';
      if (!matchesTarget(rule, mode, target)) continue;
      if (reached === 'target') reached = 'tty';
      if (tty && !rule.tty) continue;
      if (reached === 'tty') reached = 'stdin';
      if (stdin && !rule.stdin) continue;
      if (reached === 'stdin') reached = 'command';
      if (!matchesCommand(rule, command)) continue;
      return { allowed: true, grant: { ...rule.grant } };
    }
    return denial(reached, request);
  }

  /** Which modes this subject may use on a target at all (ignoring command, TTY and stdin), for a target picker. */
  modesFor(subject: Subject, target: PolicyTarget): PolicyMode[] {
    const candidates = modesForTarget(target);
    const rules = this.rules.filter((rule) => matchesSubject(rule, subject));
    return MODES.filter((mode) => candidates.includes(mode) && rules.some((rule) => rule.modes.has(mode) && matchesTarget(rule, mode, target)));
  }
}

/** The rule named in grants when no policy is configured. */
export const NO_POLICY_RULE = '(no policy)';

/** The local token's holder: the node's operator, who can read the agent's state dir. */
const isLocal = (subject: Subject) => subject.user === LOCAL_USER;

/**
 * No policy configured: every authenticated caller may exec, anything, anywhere but the agent's own
 * container; the privileged modes (nsenter and its toolbox view, node shells: root outside the
 * container's cgroup) and the agent's container only the holder of the local token. A token-file
 * user or a client certificate needs a policy that grants them. (The nsenter switch still applies
 * elsewhere.)
 */
export const WITHOUT_POLICY: Authorizer = Object.freeze({
  decide(request: AccessRequest): Decision {
    if (isLocal(request.subject)) return { allowed: true, grant: { rule: NO_POLICY_RULE, budget: NO_POLICY_RULE } };
    if (request.mode !== 'exec') {
      const { message } = denial('mode', request) as { message: string };
      return { allowed: false, reason: 'mode', message: `${message}: without a policy (policyFile, --policy-file) only the local token may` };
    }
    if (request.target.agentContainer) {
      // Its files hold the local token: an exec there would be the way to the modes refused above.
      const { message } = denial('target', request) as { message: string };
      return { allowed: false, reason: 'target', message: `${message}: it is the agent's own container, which holds the local token; without a policy (policyFile, --policy-file) only the local token may` };
    }
    return { allowed: true, grant: { rule: NO_POLICY_RULE, budget: NO_POLICY_RULE } };
  },
  modesFor(subject: Subject, target: PolicyTarget): PolicyMode[] {
    if (isLocal(subject)) return modesForTarget(target);
    return target.agentContainer ? [] : modesForTarget(target).filter((mode) => mode === 'exec');
  },
});
