// Renders helm/execlet with the Go renderer in test/install/render (Helm's template engine: Go
// text/template + sprig + Helm's functions), and parses the manifests the way Kubernetes reads them.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART_DIR = join(REPO_ROOT, 'helm', 'execlet');
export const RENDER_SOURCE = join(REPO_ROOT, 'test', 'install', 'render');
/** Debian's Go packages (golang-github-masterminds-sprig-dev, golang-github-ghodss-yaml-dev) live here. */
export const DEBIAN_GOPATH = '/usr/share/gocode';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export interface Manifest {
  /** The `# Source:` template, e.g. `execlet/templates/daemonset.yaml`. */
  source: string;
  object: K8sObject;
}

export interface RenderOptions {
  valuesFiles?: string[];
  releaseName?: string;
  namespace?: string;
  kubeVersion?: string;
}

export class RenderError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'RenderError';
  }
}

/** Builds the renderer (offline, GOPATH mode) into a temp dir, removed when the process exits; returns the binary's path. */
export async function buildRenderer(): Promise<string> {
  const go = ['/usr/bin/go', '/usr/lib/go/bin/go', '/usr/local/go/bin/go'].find((candidate) => existsSync(candidate));
  if (!go) throw new Error('go not found: apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev');
  if (!existsSync(join(DEBIAN_GOPATH, 'src/github.com/Masterminds/sprig'))) {
    throw new Error(`sprig not found in ${DEBIAN_GOPATH}: apt-get install golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'execlet-render-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'render');
  try {
    await run(go, ['build', '-o', out, '.'], {
      cwd: RENDER_SOURCE,
      env: {
        ...process.env,
        GOPATH: DEBIAN_GOPATH,
        GO111MODULE: 'off',
        GOFLAGS: '',
        GOPROXY: 'off',
        // A build cache of its own, removed with the renderer: a test leaves nothing in /tmp.
        GOCACHE: process.env.GOCACHE ?? join(dir, 'gocache'),
        CGO_ENABLED: '0',
      },
      timeout: 120_000,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`building the chart renderer failed: ${e.stderr ?? e.message}`);
  }
  return out;
}

function renderArgs(options: RenderOptions): string[] {
  const args = ['-name', options.releaseName ?? 'execlet', '-namespace', options.namespace ?? 'execlet'];
  if (options.kubeVersion) args.push('-kube-version', options.kubeVersion);
  for (const file of options.valuesFiles ?? []) args.push('-f', file);
  return args;
}

async function invoke(renderer: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(renderer, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new RenderError(`render failed: ${(e.stderr ?? e.message).trim()}`, e.stderr ?? '');
  }
}

/** The manifests as `helm template` prints them. */
export function renderText(renderer: string, options: RenderOptions = {}): Promise<string> {
  return invoke(renderer, [...renderArgs(options), CHART_DIR]);
}

/** The rendered NOTES.txt. */
export function renderNotes(renderer: string, options: RenderOptions = {}): Promise<string> {
  return invoke(renderer, [...renderArgs(options), '-notes', CHART_DIR]);
}

/**
 * Parses `helm template` output: every document must be valid YAML holding one object. YAML 1.1,
 * as Kubernetes reads manifests (sigs.k8s.io/yaml): `0400` is octal there, `on` a boolean.
 */
export function parseManifests(text: string): Manifest[] {
  const manifests: Manifest[] = [];
  let source = '';
  for (const doc of parseAllDocuments(text, { version: '1.1' })) {
    // The comment lands on the document or on its first node, depending on what precedes it.
    const comments = `${doc.commentBefore ?? ''}\n${(doc.contents as { commentBefore?: string | null } | null)?.commentBefore ?? ''}`;
    const header = /^ ?Source: (\S+)/m.exec(comments);
    if (header) source = header[1]!;
    if (doc.errors.length > 0) throw new Error(`${source}: invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const object = doc.toJS() as K8sObject | null;
    if (object === null) continue;
    if (typeof object !== 'object' || Array.isArray(object)) throw new Error(`${source}: a document that is not an object`);
    manifests.push({ source, object });
  }
  return manifests;
}

export async function render(renderer: string, options: RenderOptions = {}): Promise<Manifest[]> {
  return parseManifests(await renderText(renderer, options));
}

/** The one object of `kind` (and `name` suffix, when given); throws when there is not exactly one. */
export function only(manifests: Manifest[], kind: string): K8sObject {
  const found = manifests.filter((m) => m.object.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!.object;
}

export function ofKind(manifests: Manifest[], kind: string): K8sObject[] {
  return manifests.filter((m) => m.object.kind === kind).map((m) => m.object);
}

// ---------------------------------------------------------------------------------------------
// Typed views of the DaemonSet parts the tests look at.

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}

export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; defaultMode?: number; items?: Array<{ key: string; path: string }> };
  secret?: { secretName: string; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
}

export interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: VolumeMount[];
  securityContext?: {
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
    appArmorProfile?: { type: string };
  };
}

export interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Array<Record<string, unknown>>;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  containers: Container[];
  volumes?: Volume[];
}

export interface DaemonSetView {
  object: K8sObject;
  spec: {
    updateStrategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
    template: { metadata: { annotations?: Record<string, string>; labels?: Record<string, string> }; spec: PodSpec };
  };
  pod: PodSpec;
  container: Container;
}

export function daemonSet(manifests: Manifest[]): DaemonSetView {
  const object = only(manifests, 'DaemonSet');
  const spec = object.spec as DaemonSetView['spec'];
  const pod = spec.template.spec;
  if (pod.containers.length !== 1) throw new Error(`expected one container, found ${pod.containers.length}`);
  return { object, spec, pod, container: pod.containers[0]! };
}

/** The entry `key` of the ConfigMap or Secret named `name` (a Secret's `stringData`, or its base64 `data`). */
export function dataOf(manifests: Manifest[], name: string, key: string): string {
  const object = manifests.map((m) => m.object).find((o) => (o.kind === 'ConfigMap' || o.kind === 'Secret') && o.metadata.name === name);
  if (!object) throw new Error(`no ConfigMap or Secret named ${name}`);
  const stringData = object.stringData as Record<string, string> | undefined;
  const data = object.data as Record<string, string> | undefined;
  if (stringData?.[key] !== undefined) return stringData[key]!;
  if (data?.[key] !== undefined) return object.kind === 'Secret' ? Buffer.from(data[key]!, 'base64').toString('utf8') : data[key]!;
  throw new Error(`${object.kind} ${name} has no key ${key}`);
}
