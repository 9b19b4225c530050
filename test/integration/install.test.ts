// The installation artifacts: the Helm chart (rendered with Helm's template engine, validated against
// the Kubernetes schemas and values.schema.json), the systemd unit (systemd-analyze), the Dockerfile
// (structure), and that all of them start the agent's real CLI with flags it accepts.
// install-capabilities.test.ts runs the agent with the privileges they grant.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { Policy } from '../../src/auth/policy.js';
import { TokenFile } from '../../src/auth/token-file.js';
import { defaultSettings, splitListen } from '../../src/config/settings.js';
import { AGENT_MAIN } from '../helpers/agent.js';
import {
  buildRenderer,
  CHART_DIR,
  daemonSet,
  dataOf,
  ofKind,
  only,
  render,
  renderNotes,
  RenderError,
  REPO_ROOT,
  type DaemonSetView,
  type K8sObject,
  type Manifest,
} from '../install/chart.js';
import { mapConfigPaths, mountResolver } from '../install/pod.js';
import { schemaErrors, unknownFields, valuesValidator, type ValuesValidator } from '../install/schemas.js';
import { boundingSet, execArgv, execForm, exposureOf, parseDockerfile, readUnit, type UnitFile } from '../install/units.js';

const run = promisify(execFile);

const VALUES = join(CHART_DIR, 'values.yaml');
const ALL_ON = join(CHART_DIR, 'ci', 'all-on-values.yaml');
const EXISTING = join(CHART_DIR, 'ci', 'existing-objects-values.yaml');
const WRONG = join(REPO_ROOT, 'test', 'install', 'fixtures', 'wrong-values.yaml');
const CONFLICTING = join(REPO_ROOT, 'test', 'install', 'fixtures', 'conflicting-values.yaml');
const UNIT = join(REPO_ROOT, 'systemd', 'execlet.service');
const DROP_IN = join(REPO_ROOT, 'systemd', 'nsenter-disabled.conf');
const SYSTEMD_CONFIG = join(REPO_ROOT, 'systemd', 'config.yaml');
const SYSTEMD_POLICY = join(REPO_ROOT, 'systemd', 'policy.yaml');
const DOCKERFILE = join(REPO_ROOT, 'Dockerfile');
const INSTALL_DOC = join(REPO_ROOT, 'docs', 'install.md');
const NAMESPACE = 'execlet';

/** What the agent needs in every mode, and what the nsenter modes add (the reasons are in the chart and the unit). */
const BASE_CAPABILITIES = ['KILL', 'SYS_PTRACE', 'DAC_READ_SEARCH'];
const NSENTER_CAPABILITIES = ['SYS_ADMIN', 'SYS_CHROOT'];

const readYaml = (file: string) => parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
const sorted = (list: Iterable<string>) => [...list].sort();

interface Variant {
  name: string;
  manifests: Manifest[];
  ds: DaemonSetView;
  /** The agent's config file as rendered into the ConfigMap. */
  config: Record<string, unknown>;
}

let renderer: string;
let validateValues: ValuesValidator;
const variants: Record<'defaults' | 'allOn' | 'existing' | 'oldCluster', Variant> = {} as never;
let scratch: string;

async function renderVariant(name: string, valuesFiles: string[], kubeVersion?: string): Promise<Variant> {
  const manifests = await render(renderer, { valuesFiles, namespace: NAMESPACE, ...(kubeVersion ? { kubeVersion } : {}) });
  const ds = daemonSet(manifests);
  const configMap = ofKind(manifests, 'ConfigMap').find((c) => c.metadata.name.endsWith('-config'))!;
  const config = parseYaml(dataOf(manifests, configMap.metadata.name, 'config.yaml')) as Record<string, unknown>;
  return { name, manifests, ds, config };
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'execlet-install-test-'));
  renderer = await buildRenderer();
  validateValues = valuesValidator(JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as object);
  variants.defaults = await renderVariant('default values', []);
  variants.allOn = await renderVariant('all-on values', [ALL_ON]);
  variants.existing = await renderVariant('existing-objects values', [EXISTING]);
  variants.oldCluster = await renderVariant('default values on Kubernetes 1.29', [], 'v1.29.4');
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function allVariants(): Variant[] {
  return Object.values(variants);
}

/** Leaf paths of a values tree, as key lists (keys may hold dots); empty maps and lists are leaves. */
function leafPaths(value: unknown, prefix: string[] = []): string[][] {
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  }
  return [prefix];
}

function getPath(values: unknown, path: string[]): unknown {
  return path.reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), values);
}

/** A README row's dotted path as keys (the rows never go below a key that holds a dot). */
const keysOf = (row: string) => row.split('.');

describe('values.schema.json', () => {
  test('accepts values.yaml and the CI values files', () => {
    const defaults = readYaml(VALUES);
    assert.deepEqual(validateValues(defaults), [], 'values.yaml');
    for (const file of [ALL_ON, EXISTING]) {
      // Helm validates the merged values: defaults overridden by the file.
      const merged = structuredClone(defaults);
      mergeInto(merged, readYaml(file));
      assert.deepEqual(validateValues(merged), [], file);
    }
  });

  test('covers every value: no key of values.yaml is unknown to it (it rejects unknown keys everywhere)', () => {
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as { additionalProperties: boolean };
    assert.equal(schema.additionalProperties, false);
    const withTypo = { ...readYaml(VALUES), agnet: { port: 1 } };
    assert.ok(validateValues(withTypo).some((e) => e.includes('additionalProperty') && e.includes('agnet')));
    // Every object node that lists properties closes them.
    const open: string[] = [];
    const walk = (node: unknown, where: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.properties && n.additionalProperties !== false) open.push(where);
      for (const [k, v] of Object.entries(n)) walk(v, `${where}/${k}`);
    };
    walk(schema, '#');
    assert.deepEqual(open, [], 'schema objects that accept unknown keys');
  });

  test('rejects a deliberately wrong values file, naming each mistake', () => {
    const merged = structuredClone(readYaml(VALUES));
    mergeInto(merged, readYaml(WRONG));
    const errors = validateValues(merged).join('\n');
    for (const expected of [
      '/image/pullPolicy',
      '/agent/port',
      '/agent/nsenter',
      '"additionalProperty":"hostPid"',
      '/agent/audit/file',
      '/auth/tokenFile/hashedTokens/0',
      '/security/extraCapabilities/0',
      '/updateStrategy/maxUnavailable',
      '/networkPolicy/enabled',
    ]) {
      assert.ok(errors.includes(expected), `no error for ${expected} in:\n${errors}`);
    }
  });

  test('the all-on values file turns every option on', () => {
    const defaults = readYaml(VALUES);
    const allOn = readYaml(ALL_ON);
    // Alternatives that exclude what all-on chose; existing-objects-values.yaml covers them.
    const alternatives = new Set([
      'auth.tokenFile.existingSecret',
      'auth.policy.existingConfigMap',
      'security.privileged',
    ]);
    const unset: string[] = [];
    for (const keys of leafPaths(defaults)) {
      const path = keys.join('.');
      if (alternatives.has(path)) continue;
      const on = getPath(allOn, keys);
      const isOff = on === undefined || on === false || on === '' || (Array.isArray(on) && on.length === 0) || (on !== null && typeof on === 'object' && Object.keys(on).length === 0);
      if (isOff) unset.push(path);
    }
    assert.deepEqual(unset, [], 'values left off in ci/all-on-values.yaml');
    const existing = readYaml(EXISTING) as { auth: { tokenFile: { existingSecret: string }; policy: { existingConfigMap: string } }; security: { privileged: boolean } };
    assert.ok(existing.auth.tokenFile.existingSecret && existing.auth.policy.existingConfigMap && existing.security.privileged);
  });
});

function mergeInto(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (value && typeof value === 'object' && !Array.isArray(value) && existing && typeof existing === 'object' && !Array.isArray(existing)) {
      mergeInto(existing as Record<string, unknown>, value as Record<string, unknown>);
    } else {
      target[key] = value;
    }
  }
}

describe('the chart renders', () => {
  test('every variant renders to the expected kinds', () => {
    const kinds = (v: Variant) => sorted(v.manifests.map((m) => m.object.kind));
    assert.deepEqual(kinds(variants.defaults), ['ConfigMap', 'DaemonSet', 'NetworkPolicy', 'Service', 'ServiceAccount']);
    assert.deepEqual(kinds(variants.allOn), [
      'Certificate',
      'ConfigMap',
      'ConfigMap',
      'DaemonSet',
      'NetworkPolicy',
      'PodMonitor',
      'ResourceQuota',
      'Secret',
      'Service',
      'ServiceAccount',
      'ServiceMonitor',
    ]);
    assert.deepEqual(kinds(variants.existing), ['ConfigMap', 'DaemonSet', 'PodMonitor', 'Service']);
    for (const v of allVariants()) {
      for (const m of v.manifests) {
        assert.ok(m.source.startsWith('execlet/templates/'), `${v.name}: # Source: ${m.source}`);
        assert.equal(m.object.metadata.namespace, NAMESPACE, `${v.name}: ${m.object.kind} ${m.object.metadata.name} has its namespace`);
        assert.equal(m.object.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
      }
    }
  });

  test('every object is valid against the Kubernetes schemas (and the cert-manager and prometheus-operator CRDs)', () => {
    for (const v of allVariants()) {
      for (const { object } of v.manifests) {
        assert.deepEqual(schemaErrors(object), [], `${v.name}: ${object.kind} ${object.metadata.name}`);
      }
    }
  });

  test('no object has a field its kind does not know (what strict field validation rejects)', () => {
    let checked = 0;
    for (const v of allVariants()) {
      for (const { object } of v.manifests) {
        const unknown = unknownFields(object);
        if (unknown === null) {
          assert.ok(['Certificate', 'ServiceMonitor', 'PodMonitor'].includes(object.kind), `${object.kind} was not checked for unknown fields`);
          continue;
        }
        checked++;
        assert.deepEqual(unknown, [], `${v.name}: ${object.kind} ${object.metadata.name}`);
      }
    }
    assert.ok(checked >= 20);
    // The checker itself finds a misspelt field.
    const ds = structuredClone(variants.defaults.ds.object) as K8sObject & { spec: { template: { spec: Record<string, unknown> } } };
    ds.spec.template.spec.hostPid = true;
    assert.deepEqual(unknownFields(ds), ['DaemonSet.spec.template.spec.hostPid: unknown field (not in V1PodSpec)']);
  });

  test('the schema validation catches a wrong type', () => {
    const ds = structuredClone(variants.defaults.ds.object) as K8sObject & { spec: { template: { spec: Record<string, unknown> } } };
    ds.spec.template.spec.hostPID = 'yes';
    assert.match(schemaErrors(ds).join('\n'), /hostPID must be boolean/);
  });

  test('the template refuses what the schema cannot see: conflicting values and missing required ones', async () => {
    await assert.rejects(render(renderer, { valuesFiles: [CONFLICTING] }), (err: RenderError) => err.message.includes('set existingSecret or hashedTokens, not both'));
    const missingIssuer = join(scratch, 'missing-issuer.yaml');
    writeFileSync(missingIssuer, 'tls:\n  source: certManager\n');
    await assert.rejects(render(renderer, { valuesFiles: [missingIssuer] }), (err: RenderError) => err.message.includes('tls.certManager.issuerRef.name is required'));
    const monitorWithoutToken = join(scratch, 'monitor-without-token.yaml');
    writeFileSync(monitorWithoutToken, 'metrics:\n  serviceMonitor:\n    enabled: true\n');
    await assert.rejects(render(renderer, { valuesFiles: [monitorWithoutToken] }), (err: RenderError) => err.message.includes('metrics.bearerTokenSecret.name is required'));
    const connectionsBelowSessions = join(scratch, 'connections-below-sessions.yaml');
    writeFileSync(connectionsBelowSessions, 'agent:\n  maxConnections: 4096\n  sessions:\n    maxPerNode: 5000\n');
    await assert.rejects(render(renderer, { valuesFiles: [connectionsBelowSessions] }), (err: RenderError) => err.message.includes('agent.maxConnections must be above agent.sessions.maxPerNode'));
  });

  test('NOTES.txt renders for every variant and says how to reach an agent', async () => {
    for (const valuesFiles of [[], [ALL_ON], [EXISTING]]) {
      const notes = await renderNotes(renderer, { valuesFiles, namespace: NAMESPACE });
      for (const expected of ['endpointslices', 'nodeName', 'port-forward', 'tls-server-name', '.svc', 'bearer token', 'pod-security.kubernetes.io/enforce=privileged']) {
        assert.ok(notes.includes(expected), `NOTES (${valuesFiles.join(',') || 'defaults'}) lacks ${expected}:\n${notes}`);
      }
      assert.doesNotMatch(notes, /<no value>|%!/);
    }
  });

  test('the chart README documents every value, and only real ones', () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Values'));
    const rows = table
      .split('\n')
      .map((line) => /^\| `([^`]+)` \|/.exec(line)?.[1])
      .filter((p): p is string => p !== undefined);
    const values = readYaml(VALUES);
    for (const row of rows) assert.notEqual(getPath(values, keysOf(row)), undefined, `README documents ${row}, which is not a value`);
    for (const leaf of leafPaths(values)) {
      const covered = rows.some((row) => keysOf(row).every((key, i) => leaf[i] === key));
      assert.ok(covered, `README has no row for ${leaf.join('.')}`);
    }
  });
});

describe('the DaemonSet', () => {
  test('runs on every Linux amd64 node, tolerates every taint, is node-critical, and rolls one node at a time', () => {
    for (const v of [variants.defaults, variants.allOn]) {
      const { pod, spec } = v.ds;
      assert.equal(pod.nodeSelector?.['kubernetes.io/os'], 'linux');
      assert.equal(pod.nodeSelector?.['kubernetes.io/arch'], 'amd64');
      assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
      assert.equal(pod.priorityClassName, 'system-node-critical');
      assert.equal(spec.updateStrategy?.type, 'RollingUpdate');
      assert.equal(spec.updateStrategy?.rollingUpdate?.maxSurge, 0, 'two agents on one node would reap each other');
      assert.ok(spec.updateStrategy?.rollingUpdate?.maxUnavailable, 'maxUnavailable is set');
    }
    assert.equal(variants.defaults.ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable, 1);
    assert.equal(variants.allOn.ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable, '10%');
  });

  test('host namespaces: the host PID namespace only; no API credentials', () => {
    for (const v of allVariants()) {
      assert.equal(v.ds.pod.hostPID, true, v.name);
      assert.equal(v.ds.pod.hostNetwork, false, v.name);
      assert.equal(v.ds.pod.hostIPC, false, v.name);
      assert.equal(v.ds.pod.automountServiceAccountToken, false, v.name);
    }
    for (const sa of ofKind(variants.allOn.manifests, 'ServiceAccount')) assert.equal(sa.automountServiceAccountToken, false);
  });

  test('capabilities: only those the agent needs, computed from agent.nsenter; privileged only on request', () => {
    const sc = (v: Variant) => v.ds.container.securityContext!;
    // nsenter disabled (default): KILL, SYS_PTRACE, DAC_READ_SEARCH, and no_new_privs.
    assert.deepEqual(sc(variants.defaults).capabilities, { drop: ['ALL'], add: BASE_CAPABILITIES });
    assert.equal(sc(variants.defaults).privileged, false);
    assert.equal(sc(variants.defaults).allowPrivilegeEscalation, false);
    // nsenter enabled: + SYS_ADMIN, SYS_CHROOT (and the extra NET_ADMIN; SYS_ADMIN is not listed twice).
    assert.deepEqual(sc(variants.allOn).capabilities, { drop: ['ALL'], add: [...BASE_CAPABILITIES, ...NSENTER_CAPABILITIES, 'NET_ADMIN'] });
    assert.equal(sc(variants.allOn).privileged, false);
    assert.equal(sc(variants.allOn).allowPrivilegeEscalation, true, 'Kubernetes rejects false together with SYS_ADMIN');
    // security.privileged: true
    assert.equal(sc(variants.existing).privileged, true);
    assert.equal(sc(variants.existing).capabilities, undefined);
    for (const v of allVariants()) {
      assert.equal(sc(v).runAsUser, 0, v.name);
      assert.equal(sc(v).readOnlyRootFilesystem, true, v.name);
    }
    const valuesDefault = readYaml(VALUES) as { security: { privileged: boolean } };
    assert.equal(valuesDefault.security.privileged, false);
  });

  test('confinement: RuntimeDefault seccomp, AppArmor unconfined (field on 1.30+, annotation before)', () => {
    const sc = variants.defaults.ds.container.securityContext!;
    assert.deepEqual(sc.seccompProfile, { type: 'RuntimeDefault' });
    assert.deepEqual(sc.appArmorProfile, { type: 'Unconfined' });
    assert.equal(variants.defaults.ds.spec.template.metadata.annotations?.['container.apparmor.security.beta.kubernetes.io/execlet'], undefined);
    const old = variants.oldCluster.ds;
    assert.equal(old.container.securityContext!.appArmorProfile, undefined);
    assert.equal(old.spec.template.metadata.annotations?.['container.apparmor.security.beta.kubernetes.io/execlet'], 'unconfined');
  });

  test('mounts: the engine socket and the state dir from the host, secrets read-only, every configured path inside a mount', () => {
    for (const v of allVariants()) {
      const { pod, container } = v.ds;
      const volume = (name: string) => pod.volumes!.find((vol) => vol.name === name)!;
      const mount = (name: string) => container.volumeMounts!.find((m) => m.name === name);
      // The engine socket: a hostPath of type Socket, at the same path in the container, read-only.
      const socketPath = String(v.config.dockerHost).replace(/^unix:\/\//, '');
      const socketMount = container.volumeMounts!.find((m) => m.mountPath === socketPath);
      assert.ok(socketMount, `${v.name}: the engine socket ${socketPath} is mounted`);
      assert.deepEqual(volume(socketMount.name).hostPath, { path: socketPath, type: 'Socket' });
      assert.equal(socketMount.readOnly, true);
      // The state dir: a DirectoryOrCreate hostPath at the same path; writable.
      const stateMount = container.volumeMounts!.find((m) => m.mountPath === v.config.stateDir);
      assert.ok(stateMount, `${v.name}: the state dir is mounted`);
      assert.deepEqual(volume(stateMount.name).hostPath, { path: v.config.stateDir, type: 'DirectoryOrCreate' });
      assert.notEqual(stateMount.readOnly, true);
      // Only the state dir and /tmp are writable (plus nothing else from the host).
      const writable = container.volumeMounts!.filter((m) => !m.readOnly).map((m) => m.mountPath);
      assert.deepEqual(sorted(writable), sorted([String(v.config.stateDir), '/tmp']), `${v.name}: writable mounts`);
      const hostPaths = pod.volumes!.filter((vol) => vol.hostPath).map((vol) => vol.hostPath!.path);
      const extra = v === variants.allOn ? ['/opt/debug-tools'] : [];
      assert.deepEqual(sorted(hostPaths), sorted([socketPath, String(v.config.stateDir), ...extra]), `${v.name}: host paths`);
      // Secrets: read-only mounts, files readable by root only.
      for (const vol of pod.volumes!.filter((x) => x.secret)) {
        assert.equal(mount(vol.name)?.readOnly, true, `${v.name}: secret ${vol.name} is mounted read-only`);
        assert.ok(vol.name === 'client-ca' || vol.secret!.defaultMode === 0o400, `${v.name}: secret ${vol.name} mode`);
      }
      // The token file is a directory mount (kubelet updates reach the agent), never a subPath.
      if (mount('tokens')) assert.equal(mount('tokens')!.subPath, undefined);
      // Every path the agent's config names resolves inside a mount of the container.
      const resolve = mountResolver(container, (name) => `/VOLUME/${name}`);
      const named: string[] = [];
      mapConfigPaths(v.config, (p) => {
        named.push(p);
        return resolve(p);
      });
      assert.ok(named.length >= 2, `${v.name}: config paths ${named.join(', ')}`);
      // And the TLS files are those of the TLS Secret.
      const tls = v.config.tls as { certFile?: string; keyFile?: string };
      if (tls.certFile) {
        assert.match(resolve(tls.certFile), /^\/VOLUME\/tls\/tls\.crt$/);
        assert.match(resolve(tls.keyFile!), /^\/VOLUME\/tls\/tls\.key$/);
      }
    }
  });

  test('TLS: a Secret (or cert-manager) on the network; self-signed only when asked for', () => {
    const tlsSecret = (v: Variant) => v.ds.pod.volumes!.find((vol) => vol.name === 'tls')?.secret?.secretName;
    assert.equal(tlsSecret(variants.defaults), 'execlet-tls');
    assert.equal(variants.defaults.config.insecureSelfSignedOnNetwork, false);
    const cert = only(variants.allOn.manifests, 'Certificate') as K8sObject & { spec: { secretName: string; dnsNames: string[]; issuerRef: { name: string } } };
    assert.equal(cert.spec.secretName, tlsSecret(variants.allOn), 'cert-manager fills the Secret the agents mount');
    const svc = only(variants.allOn.manifests, 'Service').metadata.name;
    for (const name of [`${svc}.${NAMESPACE}.svc`, `*.${svc}.${NAMESPACE}.svc`, `*.${svc}.${NAMESPACE}.svc.cluster.example`]) {
      assert.ok(cert.spec.dnsNames.includes(name), `the certificate names ${name}`);
    }
    assert.equal(variants.existing.config.insecureSelfSignedOnNetwork, true);
    assert.equal(tlsSecret(variants.existing), undefined);
    assert.deepEqual(variants.existing.config.tls, {});
  });

  test('probes: liveness /healthz and readiness /readyz over HTTPS on the agent port; ports match the agent default', () => {
    const defaultPort = splitListen(defaultSettings({}).listen).port;
    const values = readYaml(VALUES) as { agent: { port: number } };
    assert.equal(values.agent.port, defaultPort, 'the chart serves on the agent default port');
    for (const v of allVariants()) {
      const { container } = v.ds;
      const listen = splitListen(String(v.config.listen));
      assert.equal(listen.host, '0.0.0.0');
      const port = container.ports!.find((p) => p.name === 'https')!;
      assert.equal(port.containerPort, listen.port, `${v.name}: container port = listen port`);
      assert.deepEqual(container.livenessProbe!.httpGet, { path: '/healthz', port: 'https', scheme: 'HTTPS' });
      assert.deepEqual(container.readinessProbe!.httpGet, { path: '/readyz', port: 'https', scheme: 'HTTPS' });
    }
    assert.equal(variants.defaults.ds.container.ports![0]!.containerPort, defaultPort);
  });

  test('the config file holds only settings the agent knows, and reloads come from the right places', () => {
    assert.equal(variants.defaults.config.nsenter, 'disabled');
    assert.equal(variants.allOn.config.nsenter, 'enabled');
    // The built-in console would log a URL carrying the node-local token: off unless asked for.
    assert.equal(variants.defaults.config.console, 'disabled');
    assert.equal(variants.allOn.config.console, 'enabled');
    const annotations = variants.allOn.ds.spec.template.metadata.annotations!;
    assert.match(annotations['checksum/config']!, /^[0-9a-f]{64}$/);
    assert.match(annotations['checksum/policy']!, /^[0-9a-f]{64}$/);
    // The chart-rendered policy loads in the agent; the hashed token lines parse.
    const policyFile = String(variants.allOn.config.policyFile);
    const policyMap = variants.allOn.ds.pod.volumes!.find((v) => v.name === 'policy')!.configMap!.name;
    const policy = Policy.parse(dataOf(variants.allOn.manifests, policyMap, policyFile.split('/').pop()!), 'rendered policy');
    assert.equal(policy.ruleCount, 2);
    const tokenFile = String(variants.allOn.config.tokenFile);
    const tokenSecret = variants.allOn.ds.pod.volumes!.find((v) => v.name === 'tokens')!.secret!.secretName;
    const tokenPath = join(scratch, 'tokens');
    writeFileSync(tokenPath, dataOf(variants.allOn.manifests, tokenSecret, tokenFile.split('/').pop()!));
    assert.equal(TokenFile.load(tokenPath).size, 3);
  });
});

describe('the Service, monitors and NetworkPolicy', () => {
  test('a headless Service selects the agents and names the https port', () => {
    for (const v of allVariants()) {
      const svc = only(v.manifests, 'Service') as K8sObject & { spec: { clusterIP: string; selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string }> } };
      assert.equal(svc.spec.clusterIP, 'None');
      assert.deepEqual(svc.spec.ports.map((p) => [p.name, p.port, p.targetPort]), [['https', v.ds.container.ports![0]!.containerPort, 'https']]);
      const podLabels = v.ds.spec.template.metadata.labels!;
      for (const [k, value] of Object.entries(svc.spec.selector)) assert.equal(podLabels[k], value, `${v.name}: selector ${k}`);
    }
  });

  test('ServiceMonitor and PodMonitor scrape /metrics over HTTPS with a bearer token from a Secret', () => {
    type Endpoint = { port: string; scheme: string; path: string; authorization: { type: string; credentials: { name: string; key: string } }; tlsConfig: Record<string, unknown> };
    const sm = only(variants.allOn.manifests, 'ServiceMonitor') as K8sObject & { spec: { endpoints: Endpoint[]; selector: { matchLabels: Record<string, string> } } };
    const pm = only(variants.allOn.manifests, 'PodMonitor') as K8sObject & { spec: { podMetricsEndpoints: Endpoint[] } };
    for (const endpoint of [sm.spec.endpoints[0]!, pm.spec.podMetricsEndpoints[0]!]) {
      assert.equal(endpoint.port, 'https');
      assert.equal(endpoint.scheme, 'https');
      assert.equal(endpoint.path, '/metrics');
      assert.deepEqual(endpoint.authorization, { type: 'Bearer', credentials: { name: 'execlet-prometheus-token', key: 'token' } });
      assert.deepEqual(endpoint.tlsConfig, { serverName: 'execlet-agents.execlet.svc', ca: { secret: { name: 'execlet-agents-serving', key: 'ca.crt' } } });
    }
    const svcLabels = only(variants.allOn.manifests, 'Service').metadata.labels!;
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svcLabels[k], v);
    // Self-signed agents: nothing to verify against.
    const pmExisting = only(variants.existing.manifests, 'PodMonitor') as K8sObject & { spec: { podMetricsEndpoints: Endpoint[] } };
    assert.deepEqual(pmExisting.spec.podMetricsEndpoints[0]!.tlsConfig, { insecureSkipVerify: true });
  });

  test('the computed monitor TLS config verifies with the TLS Secret CA and the Service name', async () => {
    const manifests = await renderWith('metrics:\n  bearerTokenSecret: {name: prom}\n  serviceMonitor: {enabled: true}\n');
    const sm = only(manifests, 'ServiceMonitor') as K8sObject & { spec: { endpoints: Array<{ tlsConfig: unknown }> } };
    assert.deepEqual(sm.spec.endpoints[0]!.tlsConfig, { serverName: 'execlet.execlet.svc', ca: { secret: { name: 'execlet-tls', key: 'ca.crt' } } });
  });

  test('the NetworkPolicy admits only the console (namespace and pods) and Prometheus, and denies egress', () => {
    type Peer = { namespaceSelector?: unknown; podSelector?: unknown; ipBlock?: unknown };
    const np = only(variants.defaults.manifests, 'NetworkPolicy') as K8sObject & {
      spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Array<{ from: Peer[]; ports: unknown[] }>; egress: unknown[] };
    };
    assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
    assert.equal(np.spec.ingress.length, 1);
    assert.deepEqual(np.spec.ingress[0]!.from, [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'execlet-console' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'execlet-console' } } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } },
    ]);
    assert.deepEqual(np.spec.ingress[0]!.ports, [{ port: 'https', protocol: 'TCP' }]);
    assert.deepEqual(np.spec.egress, []);
    const podLabels = variants.defaults.ds.spec.template.metadata.labels!;
    for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels)) assert.equal(podLabels[k], v);
  });
});

async function renderWith(valuesText: string): Promise<Manifest[]> {
  const file = join(scratch, `values-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, valuesText);
  return render(renderer, { valuesFiles: [file], namespace: NAMESPACE });
}

describe('the same CLI everywhere', () => {
  /** Runs `execlet serve ARGS --print-config` with the built agent; returns the effective settings. */
  async function printConfig(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
    const { stdout } = await run(process.execPath, [AGENT_MAIN, ...args, '--print-config'], { env: { PATH: process.env.PATH, ...env } });
    return parseYaml(stdout) as Record<string, unknown>;
  }

  test('the DaemonSet command is the image ENTRYPOINT, and the agent accepts its arguments and config', async () => {
    const dockerfile = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
    const entrypoint = execForm(dockerfile.filter((i) => i.instruction === 'ENTRYPOINT').pop()!.args);
    await Promise.all(allVariants().map(async (v) => {
      const { container } = v.ds;
      assert.deepEqual(container.command, entrypoint, `${v.name}: command = ENTRYPOINT`);
      assert.deepEqual(container.args, ['serve', '--config', '/etc/execlet/config.yaml']);
      // The config the pod mounts at that path, and the pod's environment.
      const configPath = join(scratch, `${v.name.replace(/\W+/g, '-')}-config.yaml`);
      const configMap = v.ds.pod.volumes!.find((vol) => vol.name === 'config')!.configMap!.name;
      writeFileSync(configPath, dataOf(v.manifests, configMap, 'config.yaml'));
      const env: NodeJS.ProcessEnv = {};
      for (const e of container.env ?? []) env[e.name] = e.value ?? (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName' ? 'node-7' : undefined);
      const args = container.args!.map((a) => (a === '/etc/execlet/config.yaml' ? configPath : a));
      const effective = await printConfig(args, env);
      assert.equal(effective.nodeName, 'node-7', 'the node name comes from the downward API');
      assert.equal(effective.listen, v.config.listen);
      assert.equal(effective.nsenter, v.config.nsenter);
      assert.equal(effective.console, v.config.console);
      assert.deepEqual(effective.tls, v.config.tls);
      assert.equal(effective.stateDir, v.config.stateDir);
      assert.deepEqual(effective.audit, { ...(effective.audit as object), ...(v.config.audit as object) });
    }));
  });

  test('the systemd unit starts the same CLI with the same arguments; its config is accepted', async () => {
    const unit = readUnit(UNIT);
    const execStart = execArgv(unit.get('Service', 'ExecStart')!);
    assert.equal(execStart[0], '/usr/bin/node');
    assert.equal(execStart[1], '/usr/lib/execlet/dist/cli/main.js', 'the app dir holds the image /app layout');
    const chartArgs = variants.defaults.ds.container.args!;
    assert.deepEqual(execStart.slice(2), chartArgs, 'same arguments as the DaemonSet');
    assert.equal(variants.defaults.ds.container.command![1]!.replace('/app/', '/usr/lib/execlet/'), execStart[1]);
    const effective = await printConfig(execStart.slice(2).map((a) => (a === '/etc/execlet/config.yaml' ? SYSTEMD_CONFIG : a)), {});
    assert.equal(effective.listen, '0.0.0.0:10350');
    assert.equal(effective.nsenter, 'enabled');
    assert.equal(effective.console, 'disabled');
    assert.equal(effective.stateDir, '/var/lib/execlet');
    assert.deepEqual(effective.tls, { certFile: '/etc/execlet/tls/tls.crt', keyFile: '/etc/execlet/tls/tls.key' });
    // The example policy the docs install loads.
    assert.equal(Policy.parse(readFileSync(SYSTEMD_POLICY, 'utf8'), SYSTEMD_POLICY).ruleCount, 2);
  });

  test('a flag the agent does not know is refused (the check above is not vacuous)', async () => {
    await assert.rejects(printConfig(['serve', '--no-such-flag'], {}), /no-such-flag|Unknown option/);
  });
});

describe('the systemd unit', () => {
  let unit: UnitFile;
  before(() => {
    unit = readUnit(UNIT);
  });

  test('systemd-analyze verify passes (the unit, and with the nsenter-disabled drop-in)', async (t) => {
    const verify = async (path: string) => {
      const { stderr } = await run('systemd-analyze', ['verify', path], { env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
      return stderr.trim();
    };
    const dir = join(scratch, 'unit-with-drop-in');
    mkdirSync(join(dir, 'execlet.service.d'), { recursive: true });
    if (existsSync('/usr/bin/node')) {
      assert.equal(await verify(UNIT), '', 'no warnings');
      copyFileSync(UNIT, join(dir, 'execlet.service'));
    } else {
      // verify checks that ExecStart's program exists: where Node.js lives elsewhere (as the docs
      // say, a drop-in then overrides ExecStart=), verify the unit with this machine's node.
      t.diagnostic(`/usr/bin/node is missing: verifying the unit with ExecStart=${process.execPath}`);
      writeFileSync(join(dir, 'execlet.service'), readFileSync(UNIT, 'utf8').replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
      assert.equal(await verify(join(dir, 'execlet.service')), '', 'no warnings');
    }
    copyFileSync(DROP_IN, join(dir, 'execlet.service.d', 'nsenter-disabled.conf'));
    assert.equal(await verify(join(dir, 'execlet.service')), '', 'no warnings with the drop-in');
  });

  test("its capabilities are the chart's, by nsenter mode; the rest stays off", () => {
    const full = boundingSet([unit]);
    assert.notEqual(full, 'all');
    assert.deepEqual(sorted(full as Set<string>), sorted([...BASE_CAPABILITIES, ...NSENTER_CAPABILITIES].map((c) => `CAP_${c}`)));
    assert.deepEqual(sorted(variants.allOn.ds.container.securityContext!.capabilities!.add!.filter((c) => c !== 'NET_ADMIN').map((c) => `CAP_${c}`)), sorted(full as Set<string>));
    const reduced = boundingSet([unit, readUnit(DROP_IN)]);
    assert.deepEqual(sorted(reduced as Set<string>), sorted(BASE_CAPABILITIES.map((c) => `CAP_${c}`)));
    assert.deepEqual(sorted(variants.defaults.ds.container.securityContext!.capabilities!.add!.map((c) => `CAP_${c}`)), sorted(reduced as Set<string>));
    assert.equal(unit.get('Service', 'AmbientCapabilities'), '');
    assert.equal(unit.get('Service', 'User'), undefined, 'root: the job needs it');
  });

  test('hardening: no new privileges, read-only system, private /tmp, writable state and logs only, restarts, many files', () => {
    const expect = (key: string, value: string) => assert.equal(unit.get('Service', key), value, key);
    expect('NoNewPrivileges', 'yes');
    expect('ProtectSystem', 'strict');
    expect('ProtectHome', 'yes');
    expect('PrivateTmp', 'yes');
    expect('Restart', 'on-failure');
    expect('KillMode', 'mixed');
    expect('ProtectKernelTunables', 'yes');
    expect('ProtectKernelModules', 'yes');
    expect('ProtectControlGroups', 'yes');
    expect('RestrictSUIDSGID', 'yes');
    expect('SystemCallArchitectures', 'native');
    const config = readYaml(SYSTEMD_CONFIG) as { stateDir: string; audit: { file: string } };
    const writable = unit.all('Service', 'ReadWritePaths').flatMap((v) => v.split(/\s+/));
    assert.ok(writable.includes(config.stateDir), 'the state dir is writable');
    assert.ok(writable.some((dir) => config.audit.file.startsWith(`${dir}/`)), 'the audit log dir is writable');
    assert.equal(`/var/lib/${unit.get('Service', 'StateDirectory')}`, config.stateDir);
    assert.ok(config.audit.file.startsWith(`/var/log/${unit.get('Service', 'LogsDirectory')}/`));
    // LimitNOFILE sized for the default --max-sessions (a few descriptors per session).
    const maxSessions = defaultSettings({}).sessions.maxPerNode;
    assert.ok(Number(unit.get('Service', 'LimitNOFILE')) >= 16 * maxSessions, 'LimitNOFILE');
    assert.ok(Number(unit.get('Service', 'TasksMax')) >= 4 * maxSessions, 'TasksMax');
    // The stop timeout leaves the agent its shutdown grace.
    assert.ok(Number.parseInt(unit.get('Service', 'TimeoutStopSec')!, 10) > defaultSettings({}).shutdownGraceSeconds);
    assert.equal(unit.get('Install', 'WantedBy'), 'multi-user.target');
  });

  test('the measured systemd-analyze security exposure is the one the docs state', async () => {
    const { score } = await exposureOf(UNIT);
    const doc = readFileSync(INSTALL_DOC, 'utf8');
    assert.ok(doc.includes(`${score.toFixed(1)} OK`), `docs/install.md states the exposure ${score.toFixed(1)}`);
    assert.ok(readFileSync(UNIT, 'utf8').includes(`${score.toFixed(1)} OK`), 'the unit states its exposure');
    const dir = join(scratch, 'unit-security');
    mkdirSync(join(dir, 'execlet.service.d'), { recursive: true });
    copyFileSync(UNIT, join(dir, 'execlet.service'));
    copyFileSync(DROP_IN, join(dir, 'execlet.service.d', 'nsenter-disabled.conf'));
    const reduced = await exposureOf(join(dir, 'execlet.service'));
    assert.ok(reduced.score < score);
    assert.ok(doc.includes(`${reduced.score.toFixed(1)} OK`), `docs/install.md states the drop-in's exposure ${reduced.score.toFixed(1)}`);
  });
});

describe('the Dockerfile', () => {
  const instructions = () => parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));

  test('two stages: a Node 20 build stage, a slim Node 20 runtime', () => {
    const froms = instructions().filter((i) => i.instruction === 'FROM').map((i) => i.args);
    assert.deepEqual(froms, ['node:${NODE_VERSION}-bookworm AS build', 'node:${NODE_VERSION}-bookworm-slim AS runtime']);
    const arg = instructions().find((i) => i.instruction === 'ARG' && i.args.startsWith('NODE_VERSION='));
    assert.equal(arg?.args, 'NODE_VERSION=20');
  });

  test('the build runs as a non-root user, compiles node-pty and keeps production dependencies only', () => {
    const build = instructions().filter((i) => i.stage === 'build');
    const firstUser = build.findIndex((i) => i.instruction === 'USER');
    const install = build.findIndex((i) => i.instruction === 'RUN' && i.args.includes('npm ci'));
    assert.ok(firstUser >= 0 && firstUser < install, 'USER before npm ci');
    assert.equal(build[firstUser]!.args, 'node');
    assert.ok(!build.slice(firstUser).some((i) => i.instruction === 'USER' && ['root', '0'].includes(i.args)), 'never root again in the build');
    const runs = build.filter((i) => i.instruction === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /npm run build/);
    assert.match(runs, /npm prune --omit=dev/);
    assert.match(runs, /node-pty\/build\/Release\/pty\.node/);
  });

  test('the runtime holds dist, production node_modules, web and package.json, checks the nsenter helper runs and its spawn module loads, runs as root, no HEALTHCHECK', () => {
    const all = instructions();
    const runtime = all.filter((i) => i.stage === 'runtime');
    assert.equal(all.filter((i) => i.instruction === 'HEALTHCHECK').length, 0, 'Kubernetes probes it');
    const copies = runtime.filter((i) => i.instruction === 'COPY').map((i) => i.args);
    for (const part of ['/src/dist ./dist', '/src/node_modules ./node_modules', '/src/package.json ./package.json', 'web ./web']) {
      assert.ok(copies.some((c) => c.endsWith(part)), `COPY ${part}`);
    }
    assert.ok(runtime.some((i) => i.instruction === 'WORKDIR' && i.args === '/app'));
    assert.ok(runtime.some((i) => i.instruction === 'RUN' && /dist\/native\/execlet-nsenter\b.*test \$\? -eq 125/.test(i.args)), 'the static nsenter helper runs in the runtime image');
    assert.ok(runtime.some((i) => i.instruction === 'RUN' && /require\('\.\/dist\/native\/execlet-spawn\.node'\)/.test(i.args)), 'the posix_spawn module loads in the runtime image');
    assert.ok(runtime.some((i) => i.instruction === 'RUN' && /require\('\.\/dist\/native\/execlet-tcp\.node'\)/.test(i.args)), 'the TCP_INFO module loads in the runtime image');
    assert.ok(!runtime.some((i) => i.instruction === 'RUN' && /\b(setpriv|unshare)\b/.test(i.args)), 'no util-linux needed');
    assert.equal(runtime.filter((i) => i.instruction === 'USER').pop()?.args, 'root');
    const labels = runtime.filter((i) => i.instruction === 'LABEL').map((i) => i.args).join(' ');
    for (const label of ['org.opencontainers.image.title', 'org.opencontainers.image.version', 'org.opencontainers.image.licenses']) assert.ok(labels.includes(label), label);
    assert.deepEqual(execForm(runtime.filter((i) => i.instruction === 'CMD').pop()!.args), ['serve']);
    const port = runtime.find((i) => i.instruction === 'EXPOSE')?.args;
    assert.equal(Number(port), splitListen(defaultSettings({}).listen).port);
  });

  test('.dockerignore keeps the context to what the build reads', () => {
    const ignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*');
    assert.deepEqual(sorted(ignore.slice(1)), sorted(['!package.json', '!package-lock.json', '!tsconfig.json', '!src', '!native', '!web']));
    const copiedFromContext = instructions()
      .filter((i) => i.instruction === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.replace(/--chown=\S+\s+/, '').split(/\s+/).slice(0, -1));
    for (const source of copiedFromContext) assert.ok(ignore.includes(`!${source}`), `${source} is in the build context`);
  });
});
