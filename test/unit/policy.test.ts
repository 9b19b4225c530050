// Unit tests for the authorization policy (src/auth/policy.ts): parsing YAML and JSON, every
// validation error with its rule and field path, the privilege rules for nsenter and node, the
// allow/deny matrix of a two-team policy with the reason of each denial, first-match limits,
// docker selectors, command allowlists, modesFor, WITHOUT_POLICY, globs and durations.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  WITHOUT_POLICY,
  compileGlob,
  parseDuration,
  Policy,
  PolicyError,
  type AccessRequest,
  type Decision,
  type PolicyMode,
  type PolicyTarget,
  type Subject,
} from '../../src/auth/policy.js';

const SOURCE = '/etc/execlet/policy.yaml';

/** The PolicyError message of a policy that must not load. */
function errorOf(text: string): string {
  try {
    Policy.parse(text, SOURCE);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `expected a PolicyError, got ${String(err)}`);
    assert.equal(err.name, 'PolicyError');
    return err.message;
  }
  assert.fail(`policy loaded but should not have:\n${text}`);
}

function assertError(text: string, ...expected: string[]): string {
  const message = errorOf(text);
  for (const part of expected) assert.ok(message.includes(part), `error lacks ${JSON.stringify(part)}:\n${message}`);
  return message;
}

function pod(namespace: string, podName: string, container: string): PolicyTarget {
  return { namespace, pod: podName, container };
}

function dockerTarget(name: string, labels?: Record<string, string>): PolicyTarget {
  const target: PolicyTarget = { namespace: 'docker', pod: name, container: name, dockerName: name };
  if (labels) target.labels = labels;
  return target;
}

function nodeTarget(name: string): PolicyTarget {
  return { namespace: 'execlet-node', pod: name, container: 'host' };
}

function request(
  subject: Subject,
  mode: PolicyMode,
  target: PolicyTarget,
  options: { command?: string[]; tty?: boolean; stdin?: boolean } = {},
): AccessRequest {
  return { subject, mode, target, command: options.command ?? ['sh'], tty: options.tty ?? false, stdin: options.stdin ?? false };
}

function granted(decision: Decision): string {
  assert.ok(decision.allowed, `expected a grant, got ${decision.allowed ? '' : `${decision.reason}: ${decision.message}`}`);
  return decision.grant.rule;
}

function denied(decision: Decision, reason: string, message?: string): string {
  assert.ok(!decision.allowed, `expected a denial (${reason}), got a grant by ${decision.allowed ? decision.grant.rule : ''}`);
  assert.equal(decision.reason, reason, decision.message);
  if (message !== undefined) assert.equal(decision.message, message);
  return decision.message;
}

// ---------------------------------------------------------------------------------------------

describe('parsing', () => {
  it('parses YAML', () => {
    const policy = Policy.parse(
      `
rules:
  - name: team-a-exec            # a comment
    subjects:
      users: [alice]
      groups: [team-a]
    modes: [exec]
    targets:
      - namespace: team-a
        pod: "*"
        container: "*"
      - docker:
          name: "web-*"
          labels: { team: a }
    tty: true
    stdin: true
    commands:
      - [sh]
      - [ls, "**"]
      - [cat, "/var/log/*"]
    maxSessions: 5
    idleTimeout: 30m
    maxDuration: 12h
  - subjects: { users: [bob] }
    modes: ["*"]
`,
      SOURCE,
    );
    assert.equal(policy.ruleCount, 2);
    const decision = policy.decide(request({ user: 'alice', groups: [] }, 'exec', pod('team-a', 'web', 'app'), { tty: true, stdin: true }));
    assert.deepEqual(decision, { allowed: true, grant: { rule: 'team-a-exec', budget: 'name:team-a-exec', maxSessions: 5, idleTimeoutMs: 30 * 60_000, maxDurationMs: 12 * 3_600_000 } });
    // An unnamed rule is named by its index in grants; its budget is what it grants.
    const unnamed = policy.decide(request({ user: 'bob', groups: [] }, 'exec', pod('x', 'y', 'z')));
    assert.ok(unnamed.allowed);
    assert.equal(unnamed.grant.rule, 'rules[1]');
    assert.match(unnamed.grant.budget, /^unnamed:[0-9a-f]{16}$/);
  });

  it('parses JSON', () => {
    const policy = Policy.parse(
      JSON.stringify({
        rules: [
          { name: 'j', subjects: { groups: ['ops'] }, modes: ['exec', 'node'], targets: [{ namespace: 'prod' }], maxSessions: 1, idleTimeout: 90 },
        ],
      }),
      'policy.json',
    );
    assert.equal(policy.ruleCount, 1);
    const ops: Subject = { user: 'olga', groups: ['ops'] };
    assert.deepEqual(policy.decide(request(ops, 'exec', pod('prod', 'db', 'pg'))), { allowed: true, grant: { rule: 'j', budget: 'name:j', maxSessions: 1, idleTimeoutMs: 90_000 } });
    assert.equal(granted(policy.decide(request(ops, 'node', nodeTarget('n1')))), 'j');
  });

  it("counts an unnamed rule's sessions by what it grants: not by its place, its limits or the order of its keys", () => {
    const budgetOf = (text: string, user = 'bob') => {
      const decision = Policy.parse(text, SOURCE).decide(request({ user, groups: [] }, 'exec', pod('x', 'y', 'z')));
      assert.ok(decision.allowed);
      return decision.grant.budget;
    };
    const bob = `  - subjects: { users: [bob] }\n    modes: [exec]\n    targets: [{ namespace: x }]\n    maxSessions: 2\n`;
    const carol = `  - subjects: { users: [carol] }\n    modes: [exec]\n`;
    const alone = budgetOf(`rules:\n${bob}`);
    assert.equal(budgetOf(`rules:\n${carol}${bob}`), alone, 'moved below another rule');
    assert.equal(budgetOf(`rules:\n${bob.replace('maxSessions: 2', 'maxSessions: 5\n    idleTimeout: 1m')}`), alone, 'other limits');
    assert.equal(budgetOf(`rules:\n  - modes: [exec]\n    targets: [{ namespace: x }]\n    subjects: { users: [bob] }\n`), alone, 'keys in another order');
    assert.notEqual(budgetOf(`rules:\n${bob.replace('namespace: x', 'namespace: "*"')}`), alone, 'other targets: another rule');
    assert.equal(budgetOf(`rules:\n  - name: named\n${bob.slice(4).replace(/^/, '    ')}`), 'name:named', 'a named rule: its name');
    // Labels are a mapping: the digest does not depend on the order the file lists them in.
    const labelled = (labels: string) => {
      const text = `rules:\n  - subjects: { users: [bob] }\n    modes: [exec]\n    targets: [{ docker: { labels: ${labels} } }]\n`;
      const decision = Policy.parse(text, SOURCE).decide(request({ user: 'bob', groups: [] }, 'exec', dockerTarget('web', { a: '1', b: '2', c: '3' })));
      assert.ok(decision.allowed, text);
      return decision.grant.budget;
    };
    assert.equal(labelled('{ a: "1", b: "2" }'), labelled('{ b: "2", a: "1" }'));
    assert.notEqual(labelled('{ a: "1", b: "2" }'), labelled('{ a: "1", c: "3" }'));
  });

  it('accepts an empty rule list: everything is denied', () => {
    const policy = Policy.parse('rules: []', SOURCE);
    assert.equal(policy.ruleCount, 0);
    denied(policy.decide(request({ user: 'root', groups: ['admins'] }, 'exec', pod('a', 'b', 'c'))), 'mode');
  });

  it('load reads a file and names an unreadable one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'execlet-policy-'));
    try {
      const file = join(dir, 'policy.yaml');
      writeFileSync(file, 'rules:\n  - subjects: { users: [alice] }\n    modes: [exec]\n');
      assert.equal(Policy.load(file).ruleCount, 1);

      const missing = join(dir, 'missing.yaml');
      assert.throws(() => Policy.load(missing), (err: unknown) => err instanceof PolicyError && err.message.includes(missing));

      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'rules:\n  - subjects: { users: [alice] }\n    modes: [sudo]\n');
      assert.throws(() => Policy.load(bad), (err: unknown) => err instanceof PolicyError && err.message.startsWith(`policy ${bad}: rules[0]: modes[0]: `));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('validation errors name the rule and the field', () => {
  it('wrong mode: the documented message', () => {
    const message = assertError(
      'rules:\n  - name: team-a\n    subjects: { groups: [team-a] }\n    modes: [exec, root]\n',
      'policy /etc/execlet/policy.yaml: rule "team-a" (rules[0]): modes[1]: invalid option: expected one of "exec"|"nsenter"|"node"',
    );
    assert.equal(message.split('\n').length, 1);
  });

  it('unknown fields at the top, in a rule, in a target, in subjects and in a docker selector', () => {
    assertError('rules: []\nrulez: []\n', `policy ${SOURCE}: unknown field "rulez"`);
    assertError('rules:\n  - name: r\n    subjects: { users: [a] }\n    modes: [exec]\n    tyy: true\n', 'rule "r" (rules[0]): unknown field "tyy"');
    assertError(
      'rules:\n  - name: r\n    subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ nmespace: x }]\n',
      'rule "r" (rules[0]): targets[0]: unknown field "nmespace"',
    );
    assertError('rules:\n  - subjects: { users: [a], roles: [x] }\n    modes: [exec]\n', 'rules[0]: subjects: unknown field "roles"');
    assertError(
      'rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ docker: { image: x } }]\n',
      'rules[0]: targets[0].docker: unknown field "image"',
    );
  });

  it('empty or missing subjects', () => {
    assertError('rules:\n  - name: s\n    subjects: {}\n    modes: [exec]\n', 'rule "s" (rules[0]): subjects: must name at least one user or group');
    assertError('rules:\n  - subjects: { users: [], groups: [] }\n    modes: [exec]\n', 'rules[0]: subjects: must name at least one user or group');
    assertError('rules:\n  - modes: [exec]\n', 'rules[0]: subjects: ');
    // Subjects are exact names: a pattern other than "*" alone is refused.
    assertError('rules:\n  - subjects: { groups: ["team-*"] }\n    modes: [exec]\n', 'rules[0]: subjects.groups[0]: names are matched exactly');
  });

  it('modes: missing, empty, not a list', () => {
    assertError('rules:\n  - subjects: { users: [a] }\n', 'rules[0]: modes: ');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: []\n', 'rules[0]: modes: must list at least one mode');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: exec\n', 'rules[0]: modes: expected a list of modes');
  });

  it('bad durations', () => {
    assertError(
      'rules:\n  - name: d\n    subjects: { users: [a] }\n    modes: [exec]\n    idleTimeout: 30x\n',
      'rule "d" (rules[0]): idleTimeout: invalid duration "30x"',
    );
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    maxDuration: true\n', 'rules[0]: maxDuration: expected a duration');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    maxDuration: 0\n', 'rules[0]: maxDuration: invalid duration 0');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    idleTimeout: -5s\n', 'rules[0]: idleTimeout: invalid duration "-5s"');
  });

  it('bad maxSessions', () => {
    for (const value of ['0', '-1', '1.5', '"5"', 'true']) {
      assertError(
        `rules:\n  - name: m\n    subjects: { users: [a] }\n    modes: [exec]\n    maxSessions: ${value}\n`,
        'rule "m" (rules[0]): maxSessions: expected a positive integer',
      );
    }
  });

  it('nsenter and node need named subjects', () => {
    const expected = 'nsenter and node must be granted to named users or groups, not "*"';
    assertError(
      'rules:\n  - name: wild\n    subjects: { users: ["*"] }\n    modes: [nsenter]\n    targets: [{ namespace: prod }]\n',
      `rule "wild" (rules[0]): subjects.users[0]: ${expected}`,
    );
    assertError('rules:\n  - name: wild-node\n    subjects: { users: [root], groups: [ops, "*"] }\n    modes: [node]\n', `rule "wild-node" (rules[0]): subjects.groups[1]: ${expected}`);
    assertError('rules:\n  - subjects: { groups: ["*"] }\n    modes: ["*", node]\n', `rules[0]: subjects.groups[0]: ${expected}`);
    // "*" alone means exec only: granting it to everyone is fine.
    assert.equal(Policy.parse('rules:\n  - subjects: { users: ["*"], groups: ["*"] }\n    modes: ["*"]\n', SOURCE).ruleCount, 1);
  });

  it('nsenter needs explicit targets', () => {
    assertError('rules:\n  - name: ns\n    subjects: { users: [root] }\n    modes: [nsenter]\n', 'rule "ns" (rules[0]): targets: nsenter must be limited to explicit targets');
    assertError(
      'rules:\n  - name: ns\n    subjects: { users: [root] }\n    modes: [nsenter]\n    targets: [{ namespace: prod }, { namespace: "*", pod: "*", container: "*" }]\n',
      'rule "ns" (rules[0]): targets[1]: nsenter must be limited to explicit targets',
    );
    assertError('rules:\n  - subjects: { users: [root] }\n    modes: [nsenter]\n    targets: [{}]\n', 'rules[0]: targets[0]: nsenter must be limited to explicit targets');
    assertError('rules:\n  - subjects: { users: [root] }\n    modes: [nsenter]\n    targets: [{ pod: "?*" }]\n', 'rules[0]: targets[0]: nsenter must be limited');
    // Explicit enough: a namespace, a pod, a container, or a docker selector.
    for (const target of ['{ namespace: prod }', '{ pod: "web-*" }', '{ container: app }', '{ docker: { name: "db-*" } }', '{ docker: { labels: { team: a } } }']) {
      assert.equal(Policy.parse(`rules:\n  - subjects: { users: [root] }\n    modes: [nsenter]\n    targets: [${target}]\n`, SOURCE).ruleCount, 1, target);
    }
    // node ignores targets, so none are needed.
    assert.equal(Policy.parse('rules:\n  - subjects: { users: [root] }\n    modes: [node]\n', SOURCE).ruleCount, 1);
  });

  it('targets, docker selectors and commands are checked', () => {
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: []\n', 'rules[0]: targets: must list at least one target');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ pod: "" }]\n', 'rules[0]: targets[0].pod: must not be empty');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ docker: {} }]\n', 'rules[0]: targets[0].docker: must select containers by name and/or labels');
    assertError(
      'rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ docker: { labels: { "io.team": 1 } } }]\n',
      'rules[0]: targets[0].docker.labels["io.team"]: expected a string',
    );
    assertError(
      'rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    targets: [{ namespace: prod, docker: { name: x } }]\n',
      'rules[0]: targets[0].namespace: can never match',
    );
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    commands: []\n', 'rules[0]: commands: must list at least one command');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    commands: [[]]\n', 'rules[0]: commands[0]: must not be empty');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    commands: [[ls], ["**", x]]\n', 'rules[0]: commands[1][0]: "**" may only be the last element');
    assertError('rules:\n  - subjects: { users: [a] }\n    modes: [exec]\n    tty: yes please\n', 'rules[0]: tty: expected true or false');
  });

  it('duplicate rule names are refused', () => {
    assertError(
      'rules:\n  - name: same\n    subjects: { users: [a] }\n    modes: [exec]\n  - name: same\n    subjects: { users: [b] }\n    modes: [exec]\n',
      'rule "same" (rules[1]): name: duplicate rule name (also rules[0])',
    );
  });

  it('reports every issue, one per line, across rules and fields', () => {
    const message = errorOf(`
rules:
  - name: first
    subjects: {}
    modes: [exec, sudo]
  - subjects: { users: [a] }
    modes: [exec]
    maxSessions: 0
    idleTimeout: soon
  - name: third
    subjects: { users: ["*"] }
    modes: [node]
  - 42
`);
    const lines = message.split('\n');
    assert.deepEqual(
      lines.map((line) => line.slice(0, line.indexOf(':', `policy ${SOURCE}: `.length + 1))),
      [
        `policy ${SOURCE}: rule "first" (rules[0])`,
        `policy ${SOURCE}: rule "first" (rules[0])`,
        `policy ${SOURCE}: rules[1]`,
        `policy ${SOURCE}: rules[1]`,
        `policy ${SOURCE}: rule "third" (rules[2])`,
        `policy ${SOURCE}: rules[3]`,
      ],
      message,
    );
    assert.ok(lines[0]!.includes('subjects: '), lines[0]);
    assert.ok(lines[1]!.includes('modes[1]: '), lines[1]);
    assert.ok(lines[2]!.includes('maxSessions: '), lines[2]);
    assert.ok(lines[3]!.includes('idleTimeout: '), lines[3]);
    assert.ok(lines[4]!.includes('subjects.users[0]: '), lines[4]);
    assert.ok(lines[5]!.endsWith('rules[3]: expected a mapping'), lines[5]);
  });

  it('the document itself: not YAML, empty, no rules, not a mapping', () => {
    const yamlError = assertError('rules: [\n', `policy ${SOURCE}: not valid YAML or JSON: `);
    assert.equal(yamlError.split('\n').length, 1, yamlError);
    assertError('', `policy ${SOURCE}: the file is empty`);
    assertError('# only a comment\n', `policy ${SOURCE}: the file is empty`);
    assertError('{}', `policy ${SOURCE}: rules: expected a list of rules`);
    assertError('rules: {}', `policy ${SOURCE}: rules: expected a list of rules`);
    assertError('- a\n- b\n', `policy ${SOURCE}: expected a mapping with a "rules" list`);
    assertError('{"rules": [], "rules": []}', `policy ${SOURCE}: not valid YAML or JSON`);
  });

  it('a __proto__ key is refused, not dropped: a rule whose labels held one granted more than written', () => {
    const text = 'rules:\n- subjects: {users: [alice]}\n  targets: [{namespace: a, pod: web, labels: {__proto__: b}}]\n  modes: [exec]\n';
    assertError(text, `policy ${SOURCE}: not valid YAML or JSON: the key "__proto__" (at rules[0].targets[0].labels.__proto__) is not allowed`);
    assertError('__proto__: {rules: []}\n', 'the key "__proto__" (at __proto__) is not allowed');
  });
});

// ---------------------------------------------------------------------------------------------

const TEAMS = `
rules:
  - name: admins-privileged
    subjects: { groups: [admins] }
    modes: [nsenter, node]
    targets:
      - namespace: team-a
      - namespace: team-b
    maxSessions: 2
    maxDuration: 1h
  - name: admins-exec
    subjects: { groups: [admins] }
    modes: ["*"]
    idleTimeout: 1h
  - name: team-a-exec
    subjects: { groups: [team-a] }
    modes: [exec]
    targets: [{ namespace: team-a }]
    maxSessions: 5
    idleTimeout: 30m
    maxDuration: 12h
  - name: team-b-readonly
    subjects: { groups: [team-b], users: [erin] }
    modes: [exec]
    targets: [{ namespace: team-b, pod: "api-*", container: main }]
    tty: false
    stdin: false
    commands: [[ls, "**"], [cat, "/var/log/*"], [ps]]
  - name: everyone-web
    subjects: { users: ["*"] }
    modes: ["*"]
    targets: [{ docker: { name: "web-*", labels: { team: a } } }]
`;
const RULE_NAMES = ['admins-privileged', 'admins-exec', 'team-a-exec', 'team-b-readonly', 'everyone-web'];

describe('a policy for two teams', () => {
  const policy = Policy.parse(TEAMS, SOURCE);
  const alice: Subject = { user: 'alice', groups: ['team-a'] };
  const bob: Subject = { user: 'bob', groups: ['team-b', 'developers'] };
  const carol: Subject = { user: 'carol', groups: ['admins'] };
  const dave: Subject = { user: 'dave', groups: [] };
  const teamA = pod('team-a', 'web', 'app');
  const teamBApi = pod('team-b', 'api-1', 'main');
  const web1 = dockerTarget('web-1', { team: 'a' });
  const node1 = nodeTarget('node-1');
  const messages: string[] = [];
  const deny = (decision: Decision, reason: string, message?: string) => messages.push(denied(decision, reason, message));

  it('team-a: exec in team-a with its limits, nothing else', () => {
    assert.deepEqual(policy.decide(request(alice, 'exec', teamA, { tty: true, stdin: true, command: ['rm', '-rf', '/'] })), {
      allowed: true,
      grant: { rule: 'team-a-exec', budget: 'name:team-a-exec', maxSessions: 5, idleTimeoutMs: 1_800_000, maxDurationMs: 43_200_000 },
    });
    deny(policy.decide(request(alice, 'exec', teamBApi)), 'target', 'user "alice" may not exec into team-b/api-1/main');
    deny(policy.decide(request(alice, 'nsenter', teamA)), 'mode', 'user "alice" may not use the nsenter mode on team-a/web/app');
    deny(policy.decide(request(alice, 'node', node1)), 'mode', 'user "alice" may not use the node mode on node node-1');
  });

  it('team-b: read-only commands on its api pods, no TTY, no stdin', () => {
    assert.equal(granted(policy.decide(request(bob, 'exec', teamBApi, { command: ['ls', '-l', '/app'] }))), 'team-b-readonly');
    assert.equal(granted(policy.decide(request(bob, 'exec', teamBApi, { command: ['cat', '/var/log/app.log'] }))), 'team-b-readonly');
    assert.equal(granted(policy.decide(request(bob, 'exec', teamBApi, { command: ['ps'] }))), 'team-b-readonly');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['ls'], tty: true })), 'tty', 'user "bob" may not open a TTY in team-b/api-1/main');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['ls'], stdin: true })), 'stdin', 'user "bob" may not send stdin to team-b/api-1/main');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['rm', '-rf', '/'] })), 'command', 'user "bob" may not run "rm" in team-b/api-1/main (command not allowed)');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['cat', '/etc/shadow'] })), 'command');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: [] })), 'command', 'user "bob" may not run an empty command in team-b/api-1/main (command not allowed)');
    // TTY is checked before stdin, stdin before the command.
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['rm'], tty: true, stdin: true })), 'tty');
    deny(policy.decide(request(bob, 'exec', teamBApi, { command: ['rm'], stdin: true })), 'stdin');
    // Outside the api pods' main container.
    deny(policy.decide(request(bob, 'exec', pod('team-b', 'db-0', 'main'), { command: ['ls'] })), 'target', 'user "bob" may not exec into team-b/db-0/main');
    deny(policy.decide(request(bob, 'exec', pod('team-b', 'api-1', 'sidecar'), { command: ['ls'] })), 'target');
    deny(policy.decide(request(bob, 'exec', teamA, { command: ['ls'] })), 'target');
    deny(policy.decide(request(bob, 'nsenter', teamBApi, { command: ['ls'] })), 'mode');
    deny(policy.decide(request(bob, 'node', node1)), 'mode');
  });

  it('a rule matches a user by name as well as by group', () => {
    const erin: Subject = { user: 'erin', groups: [] };
    assert.equal(granted(policy.decide(request(erin, 'exec', teamBApi, { command: ['ps'] }))), 'team-b-readonly');
    // Group names are not user names and vice versa.
    deny(policy.decide(request({ user: 'team-b', groups: ['erin'] }, 'exec', teamBApi, { command: ['ps'] })), 'target');
  });

  it('admins: nsenter into the team namespaces, node shells, exec anywhere', () => {
    assert.deepEqual(policy.decide(request(carol, 'nsenter', teamA, { tty: true, stdin: true })), {
      allowed: true,
      grant: { rule: 'admins-privileged', budget: 'name:admins-privileged', maxSessions: 2, maxDurationMs: 3_600_000 },
    });
    assert.equal(granted(policy.decide(request(carol, 'nsenter', teamBApi))), 'admins-privileged');
    assert.equal(granted(policy.decide(request(carol, 'node', node1, { tty: true, stdin: true }))), 'admins-privileged');
    // node mode ignores targets: any node name.
    assert.equal(granted(policy.decide(request(carol, 'node', nodeTarget('other-node')))), 'admins-privileged');
    deny(policy.decide(request(carol, 'nsenter', pod('kube-system', 'coredns', 'coredns'))), 'target', 'user "carol" may not nsenter into kube-system/coredns/coredns');
    assert.deepEqual(policy.decide(request(carol, 'exec', pod('kube-system', 'coredns', 'coredns'))), {
      allowed: true,
      grant: { rule: 'admins-exec', budget: 'name:admins-exec', idleTimeoutMs: 3_600_000 },
    });
  });

  it('first match wins and its limits are returned', () => {
    const both: Subject = { user: 'frank', groups: ['team-a', 'admins'] };
    // admins-exec comes before team-a-exec.
    assert.deepEqual(policy.decide(request(both, 'exec', teamA)), { allowed: true, grant: { rule: 'admins-exec', budget: 'name:admins-exec', idleTimeoutMs: 3_600_000 } });
    // A later rule still grants what an earlier one does not.
    const later = Policy.parse(
      `
rules:
  - name: narrow
    subjects: { users: [gina] }
    modes: [exec]
    commands: [[ls]]
    maxSessions: 1
  - name: broad
    subjects: { users: [gina] }
    modes: [exec]
    maxSessions: 9
`,
      SOURCE,
    );
    const gina: Subject = { user: 'gina', groups: [] };
    assert.deepEqual(policy.decide(request(gina, 'exec', teamA)).allowed, false);
    assert.deepEqual(later.decide(request(gina, 'exec', teamA, { command: ['ls'] })), { allowed: true, grant: { rule: 'narrow', budget: 'name:narrow', maxSessions: 1 } });
    assert.deepEqual(later.decide(request(gina, 'exec', teamA, { command: ['rm'] })), { allowed: true, grant: { rule: 'broad', budget: 'name:broad', maxSessions: 9 } });
  });

  it('the grant is a copy', () => {
    const first = policy.decide(request(alice, 'exec', teamA));
    assert.ok(first.allowed);
    first.grant.maxSessions = 1000;
    const second = policy.decide(request(alice, 'exec', teamA));
    assert.ok(second.allowed);
    assert.equal(second.grant.maxSessions, 5);
  });

  it('anyone: exec into the web-* docker containers of team a, nothing more', () => {
    assert.equal(granted(policy.decide(request(dave, 'exec', web1))), 'everyone-web');
    deny(policy.decide(request(dave, 'nsenter', web1)), 'mode', 'user "dave" may not use the nsenter mode on docker/web-1/web-1');
    deny(policy.decide(request(dave, 'node', node1)), 'mode');
    deny(policy.decide(request(dave, 'exec', teamA)), 'target', 'user "dave" may not exec into team-a/web/app');
    deny(policy.decide(request(dave, 'exec', dockerTarget('web-2', { team: 'b' }))), 'target');
    deny(policy.decide(request(dave, 'exec', dockerTarget('db-1', { team: 'a' }))), 'target');
  });

  it('denials reveal no rule names, groups or patterns', () => {
    assert.ok(messages.length >= 15, `collected ${messages.length} denials`);
    for (const message of messages) {
      for (const name of RULE_NAMES) assert.ok(!message.includes(name), `${message} names rule ${name}`);
      for (const secret of ['*', '?', 'admins', 'developers', 'erin', '/var/log', 'api-', 'rules[', 'policy']) {
        assert.ok(!message.replace('api-1', '').includes(secret), `${message} reveals ${secret}`);
      }
      assert.match(message, /^user "[a-z-]+" may not /);
    }
  });

  it('modesFor: what a target picker may offer', () => {
    assert.deepEqual(policy.modesFor(alice, teamA), ['exec']);
    assert.deepEqual(policy.modesFor(alice, teamBApi), []);
    assert.deepEqual(policy.modesFor(alice, node1), []);
    // Ignores commands, TTY and stdin.
    assert.deepEqual(policy.modesFor(bob, teamBApi), ['exec']);
    assert.deepEqual(policy.modesFor(carol, teamA), ['exec', 'nsenter']);
    assert.deepEqual(policy.modesFor(carol, pod('kube-system', 'coredns', 'coredns')), ['exec']);
    assert.deepEqual(policy.modesFor(carol, node1), ['node']);
    assert.deepEqual(policy.modesFor(dave, web1), ['exec']);
    assert.deepEqual(policy.modesFor(dave, teamA), []);
  });
});

describe('"*" mode', () => {
  const policy = Policy.parse('rules:\n  - name: all\n    subjects: { users: [alice] }\n    modes: ["*"]\n', SOURCE);
  const alice: Subject = { user: 'alice', groups: [] };

  it('grants exec only', () => {
    assert.equal(granted(policy.decide(request(alice, 'exec', pod('a', 'b', 'c')))), 'all');
    denied(policy.decide(request(alice, 'nsenter', pod('a', 'b', 'c'))), 'mode');
    denied(policy.decide(request(alice, 'node', nodeTarget('n'))), 'mode');
    assert.deepEqual(policy.modesFor(alice, pod('a', 'b', 'c')), ['exec']);
    assert.deepEqual(policy.modesFor(alice, nodeTarget('n')), []);
  });

  it('subjects: "*" matches anyone, also in groups and also with no groups', () => {
    const anyone = Policy.parse('rules:\n  - subjects: { groups: ["*"] }\n    modes: [exec]\n', SOURCE);
    assert.equal(granted(anyone.decide(request({ user: 'nobody', groups: [] }, 'exec', pod('a', 'b', 'c')))), 'rules[0]');
    denied(Policy.parse('rules:\n  - subjects: { users: [alice] }\n    modes: [exec]\n', SOURCE).decide(request({ user: 'Alice', groups: [] }, 'exec', pod('a', 'b', 'c'))), 'mode');
  });
});

describe('docker selectors', () => {
  const policy = Policy.parse(
    `
rules:
  - name: by-labels
    subjects: { users: [u] }
    modes: [exec]
    targets:
      - docker:
          labels: { team: "a*", tier: "?", "com.example/owner": ops }
  - name: by-name
    subjects: { users: [v] }
    modes: [exec, nsenter]
    targets:
      - docker: { name: "cache-?" }
      - namespace: docker
        pod: "legacy-*"
`,
    SOURCE,
  );
  const u: Subject = { user: 'u', groups: [] };
  const v: Subject = { user: 'v', groups: [] };
  const labels = { team: 'alpha', tier: '1', 'com.example/owner': 'ops', other: 'x' };

  it('labels: every listed label must match, values are globs', () => {
    assert.equal(granted(policy.decide(request(u, 'exec', dockerTarget('anything', labels)))), 'by-labels');
    assert.equal(granted(policy.decide(request(u, 'exec', dockerTarget('x', { ...labels, team: 'a' })))), 'by-labels');
    denied(policy.decide(request(u, 'exec', dockerTarget('x', { ...labels, team: 'beta' }))), 'target');
    denied(policy.decide(request(u, 'exec', dockerTarget('x', { ...labels, tier: '12' }))), 'target');
    denied(policy.decide(request(u, 'exec', dockerTarget('x', { ...labels, team: 'Alpha' }))), 'target');
  });

  it('a missing label, or no labels at all, does not match', () => {
    const { tier: _tier, ...withoutTier } = labels;
    denied(policy.decide(request(u, 'exec', dockerTarget('x', withoutTier))), 'target');
    denied(policy.decide(request(u, 'exec', dockerTarget('x'))), 'target');
    denied(policy.decide(request(u, 'exec', dockerTarget('x', {}))), 'target');
    // Inherited properties are not labels.
    denied(policy.decide(request(u, 'exec', dockerTarget('x', Object.create({ team: 'a', tier: '1', 'com.example/owner': 'ops' }) as Record<string, string>))), 'target');
  });

  it('only plain Docker containers match a docker selector', () => {
    // Same labels, but a Kubernetes container.
    denied(policy.decide(request(u, 'exec', { namespace: 'team-a', pod: 'x', container: 'x', labels })), 'target');
    // Namespace docker without a Docker name (not a plain container).
    denied(policy.decide(request(u, 'exec', { namespace: 'docker', pod: 'x', container: 'x', labels })), 'target');
  });

  it('name globs, and namespace docker as an ordinary target', () => {
    assert.equal(granted(policy.decide(request(v, 'nsenter', dockerTarget('cache-1')))), 'by-name');
    denied(policy.decide(request(v, 'nsenter', dockerTarget('cache-10'))), 'target');
    denied(policy.decide(request(v, 'nsenter', dockerTarget('my-cache-1'))), 'target');
    assert.equal(granted(policy.decide(request(v, 'exec', dockerTarget('legacy-app')))), 'by-name');
    assert.deepEqual(policy.modesFor(v, dockerTarget('cache-2')), ['exec', 'nsenter']);
    assert.deepEqual(policy.modesFor(v, dockerTarget('web')), []);
  });
});

describe('command allowlist', () => {
  const policy = Policy.parse(
    `
rules:
  - subjects: { users: [u] }
    modes: [exec]
    commands:
      - [sh]
      - [ls, "**"]
      - [cat, "/var/log/*"]
      - [systemctl, "status", "?*.service"]
      - ["/usr/bin/*", "--version"]
`,
    SOURCE,
  );
  const u: Subject = { user: 'u', groups: [] };
  const allowed = (command: string[]) => policy.decide(request(u, 'exec', pod('a', 'b', 'c'), { command })).allowed;

  it('exact argv', () => {
    assert.equal(allowed(['sh']), true);
    assert.equal(allowed(['sh', '-c', 'rm -rf /']), false, 'longer argv');
    assert.equal(allowed([]), false, 'shorter argv');
    assert.equal(allowed(['bash']), false);
    assert.equal(allowed(['/bin/sh']), false);
    assert.equal(allowed(['SH']), false, 'case-sensitive');
  });

  it('a final "**" takes any remaining arguments, including none', () => {
    assert.equal(allowed(['ls']), true);
    assert.equal(allowed(['ls', '-l']), true);
    assert.equal(allowed(['ls', '-l', '/etc', '/var']), true);
    assert.equal(allowed(['lsof']), false);
  });

  it('element globs', () => {
    assert.equal(allowed(['cat', '/var/log/syslog']), true);
    assert.equal(allowed(['cat', '/var/log/']), true);
    assert.equal(allowed(['cat', '/var/log/nginx/access.log']), true, '* crosses slashes');
    assert.equal(allowed(['cat', '/etc/passwd']), false);
    assert.equal(allowed(['cat']), false, 'shorter');
    assert.equal(allowed(['cat', '/var/log/a', '/etc/shadow']), false, 'longer');
    assert.equal(allowed(['systemctl', 'status', 'nginx.service']), true);
    assert.equal(allowed(['systemctl', 'status', '.service']), false);
    assert.equal(allowed(['systemctl', 'restart', 'nginx.service']), false);
    assert.equal(allowed(['/usr/bin/python3', '--version']), true);
    assert.equal(allowed(['/usr/local/bin/python3', '--version']), false);
  });

  it('a lone "**" allows any command, the empty one too', () => {
    const any = Policy.parse('rules:\n  - subjects: { users: [u] }\n    modes: [exec]\n    commands: [["**"]]\n', SOURCE);
    for (const command of [[], ['x'], ['x', 'y', 'z']]) assert.equal(any.decide(request(u, 'exec', pod('a', 'b', 'c'), { command })).allowed, true);
  });
});

describe('tty and stdin', () => {
  const policy = Policy.parse(
    `
rules:
  - name: no-tty
    subjects: { users: [u] }
    modes: [exec, node]
    tty: false
  - name: no-stdin
    subjects: { users: [w] }
    modes: [exec, node]
    stdin: false
  - name: explicit-true
    subjects: { users: [x] }
    modes: [exec]
    tty: true
    stdin: true
`,
    SOURCE,
  );
  const target = pod('a', 'b', 'c');
  const node = nodeTarget('n1');

  it('tty: false refuses TTY sessions only', () => {
    const u: Subject = { user: 'u', groups: [] };
    assert.equal(granted(policy.decide(request(u, 'exec', target, { stdin: true }))), 'no-tty');
    denied(policy.decide(request(u, 'exec', target, { tty: true })), 'tty', 'user "u" may not open a TTY in a/b/c');
    denied(policy.decide(request(u, 'node', node, { tty: true })), 'tty', 'user "u" may not open a TTY on node n1');
  });

  it('stdin: false refuses sessions with stdin only', () => {
    const w: Subject = { user: 'w', groups: [] };
    assert.equal(granted(policy.decide(request(w, 'exec', target, { tty: true }))), 'no-stdin');
    denied(policy.decide(request(w, 'exec', target, { stdin: true })), 'stdin', 'user "w" may not send stdin to a/b/c');
    denied(policy.decide(request(w, 'node', node, { stdin: true })), 'stdin', 'user "w" may not send stdin on node n1');
  });

  it('true is the same as omitted', () => {
    assert.equal(granted(policy.decide(request({ user: 'x', groups: [] }, 'exec', target, { tty: true, stdin: true }))), 'explicit-true');
  });

  it('node-mode command denial names the node', () => {
    const p = Policy.parse('rules:\n  - subjects: { users: [root] }\n    modes: [node]\n    commands: [[journalctl, "**"]]\n', SOURCE);
    denied(p.decide(request({ user: 'root', groups: [] }, 'node', node, { command: ['reboot'] })), 'command', 'user "root" may not run "reboot" on node n1 (command not allowed)');
  });
});

describe('WITHOUT_POLICY', () => {
  const local: Subject = { user: 'execlet:local', groups: ['execlet:local'] };
  const anyone: Subject = { user: 'anyone', groups: ['admins'] };
  const on = (mode: 'exec' | 'nsenter' | 'node') => (mode === 'node' ? nodeTarget('n') : pod('a', 'b', 'c'));

  it('allows the local token everything, without limits', () => {
    for (const mode of ['exec', 'nsenter', 'node'] as const) {
      const decision = WITHOUT_POLICY.decide(request(local, mode, on(mode), { tty: true, stdin: true, command: ['rm'] }));
      assert.ok(decision.allowed);
      assert.equal(typeof decision.grant.rule, 'string');
      assert.equal(decision.grant.maxSessions, undefined);
    }
  });

  it('allows any other caller exec, and none of the privileged modes, saying a policy is needed', () => {
    assert.ok(WITHOUT_POLICY.decide(request(anyone, 'exec', on('exec'), { tty: true, stdin: true, command: ['rm'] })).allowed);
    denied(
      WITHOUT_POLICY.decide(request(anyone, 'nsenter', on('nsenter'))),
      'mode',
      'user "anyone" may not use the nsenter mode on a/b/c: without a policy (policyFile, --policy-file) only the local token may',
    );
    denied(
      WITHOUT_POLICY.decide(request(anyone, 'node', on('node'))),
      'mode',
      'user "anyone" may not use the node mode on node n: without a policy (policyFile, --policy-file) only the local token may',
    );
  });

  it('offers the modes that fit the target, the privileged ones to the local token only', () => {
    assert.deepEqual(WITHOUT_POLICY.modesFor(local, pod('a', 'b', 'c')), ['exec', 'nsenter']);
    assert.deepEqual(WITHOUT_POLICY.modesFor(local, dockerTarget('web')), ['exec', 'nsenter']);
    assert.deepEqual(WITHOUT_POLICY.modesFor(local, nodeTarget('n')), ['node']);
    assert.deepEqual(WITHOUT_POLICY.modesFor(anyone, pod('a', 'b', 'c')), ['exec']);
    assert.deepEqual(WITHOUT_POLICY.modesFor(anyone, nodeTarget('n')), []);
  });

  it("refuses any other caller the agent's own container (it holds the local token), not the local token", () => {
    const agents: PolicyTarget = { ...pod('kube-system', 'execlet-x1', 'agent'), agentContainer: true };
    assert.ok(WITHOUT_POLICY.decide(request(local, 'exec', agents)).allowed);
    denied(
      WITHOUT_POLICY.decide(request(anyone, 'exec', agents)),
      'target',
      "user \"anyone\" may not exec into kube-system/execlet-x1/agent: it is the agent's own container, which holds the local token; without a policy (policyFile, --policy-file) only the local token may",
    );
    assert.deepEqual(WITHOUT_POLICY.modesFor(anyone, agents), []);
    assert.deepEqual(WITHOUT_POLICY.modesFor(local, agents), ['exec', 'nsenter']);
  });
});

describe('compileGlob', () => {
  const matches = (glob: string, text: string) => compileGlob(glob).test(text);

  it('* and ?', () => {
    assert.equal(matches('*', ''), true);
    assert.equal(matches('*', 'anything/at all\nreally'), true);
    assert.equal(matches('web-*', 'web-'), true);
    assert.equal(matches('web-*', 'web-1'), true);
    assert.equal(matches('*-1', 'web-1'), true);
    assert.equal(matches('a*b*c', 'aXXbYYc'), true);
    assert.equal(matches('a?c', 'abc'), true);
    assert.equal(matches('a?c', 'ac'), false);
    assert.equal(matches('a?c', 'abbc'), false);
    assert.equal(matches('a?c', 'aéc'), true, '? is one character, not one byte');
  });

  it('anchored and case-sensitive', () => {
    assert.equal(matches('web', 'web'), true);
    assert.equal(matches('web', 'myweb'), false);
    assert.equal(matches('web', 'web-1'), false);
    assert.equal(matches('web', 'Web'), false);
  });

  it('regex specials are literal', () => {
    assert.equal(matches('a.b', 'a.b'), true);
    assert.equal(matches('a.b', 'axb'), false);
    assert.equal(matches('[x]', '[x]'), true);
    assert.equal(matches('[x]', 'x'), false);
    assert.equal(matches('a+', 'a+'), true);
    assert.equal(matches('a+', 'aa'), false);
    assert.equal(matches('(a|b)', '(a|b)'), true);
    assert.equal(matches('(a|b)', 'a'), false);
    assert.equal(matches('^x$', '^x$'), true);
    assert.equal(matches('x{2}', 'xx'), false);
    assert.equal(matches('x{2}', 'x{2}'), true);
    assert.equal(matches('a\\d', 'a\\d'), true);
    assert.equal(matches('a\\d', 'a1'), false);
    assert.equal(matches('a/b-c', 'a/b-c'), true);
  });

  it('stars that must give back what they took, and empty texts', () => {
    assert.equal(matches('*a*b', 'xaybab'), true);
    assert.equal(matches('*a*b', 'xaybaba'), false);
    assert.equal(matches('a*', 'a'), true);
    assert.equal(matches('**a**', 'a'), true);
    assert.equal(matches('*?', ''), false);
    assert.equal(matches('*?', 'é'), true);
    assert.equal(matches('', ''), true);
    assert.equal(matches('', 'a'), false);
    assert.equal(matches('a*?*c', 'abc'), true);
    assert.equal(matches('a*?*c', 'ac'), false);
  });

  it("a caller's long argument against several stars: at most text × glob steps, not a backtracking regular expression's", () => {
    const text = 'a'.repeat(128 * 1024);
    const started = performance.now();
    assert.equal(matches('*a*b*', text), false);
    assert.equal(matches('*a*a*a*b', text), false);
    assert.equal(matches('*a*a*a*a', text), true);
    // Milliseconds here; as a regular expression (^.*a.*b.*$) the first took ~3 s at 64 KiB, the second far longer.
    assert.ok(performance.now() - started < 1000, `took ${Math.round(performance.now() - started)} ms`);
  });
});

describe('parseDuration', () => {
  it('accepts the documented forms', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('12h'), 43_200_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1h30m15s'), 5_415_000);
    assert.equal(parseDuration('2m30s'), 150_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration(' 30m '), 1_800_000);
    assert.equal(parseDuration(90), 90_000);
    assert.equal(parseDuration(1.5), 1500);
    assert.equal(parseDuration('90'), 90_000);
  });

  it('throws on garbage', () => {
    for (const value of ['', ' ', 'abc', '30x', '1d', '-5s', '0s', '0', 'm', '30m1h', '1.5h', '1h 30m', '10S', 's30']) {
      assert.throws(() => parseDuration(value), /invalid duration/, JSON.stringify(value));
    }
    for (const value of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 0.0001]) {
      assert.throws(() => parseDuration(value), /invalid duration/, String(value));
    }
    assert.throws(() => parseDuration('99999999999999999999h'), /too long/);
    // A bare number says why as a number would: too long, or under a millisecond, not "must be positive".
    assert.throws(() => parseDuration('99999999999999999999'), { message: 'invalid duration "99999999999999999999": too long' });
    assert.throws(() => parseDuration('0.0001'), { message: 'invalid duration "0.0001": shorter than a millisecond' });
    assert.throws(() => parseDuration('0'), { message: 'invalid duration "0": must be a positive number of seconds' });
  });
});
