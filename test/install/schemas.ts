// Validation of rendered objects against the Kubernetes schemas, and of chart values against
// values.schema.json.
//
// Two checks per object, because neither alone is what the API server does:
// - kubernetes-models (validators generated from the Kubernetes OpenAPI schemas and from the
//   cert-manager and prometheus-operator CRDs): types, required fields, enums, formats;
// - the field lists of @kubernetes/client-node's models (also generated from the OpenAPI schema):
//   unknown fields, which the generated validators let through but `kubectl apply` (strict field
//   validation) and the API server reject or drop. Built-in kinds only: client-node has no CRDs.
//
// kubernetes-models and ajv are installed apart from the project (`npm ci --prefix
// test/install/deps`, done by .ci/run), so they are loaded from there.
import * as k8s from '@kubernetes/client-node';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT, type K8sObject } from './chart.js';

export const DEPS_DIR = join(REPO_ROOT, 'test', 'install', 'deps');
const INSTALL_HINT = `run: npm ci --prefix ${join('test', 'install', 'deps')} (as .ci/run does)`;

/**
 * A require() that finds kubernetes-models and ajv: from test/install/deps (pinned, installed by
 * .ci/run), or from the project's own node_modules should they become devDependencies.
 */
function depsRequire(): NodeRequire {
  for (const base of [join(DEPS_DIR, 'package.json'), join(REPO_ROOT, 'package.json')]) {
    const candidate = createRequire(base);
    try {
      candidate.resolve('kubernetes-models/v1/Service');
      candidate.resolve('ajv');
      return candidate;
    } catch {
      // not installed there
    }
  }
  throw new Error(`the install tests need kubernetes-models and ajv in ${DEPS_DIR}/node_modules: ${INSTALL_HINT}`);
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/** Where kubernetes-models keeps the model of each apiVersion. */
function modelModule(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'cert-manager.io') return `@kubernetes-models/cert-manager/cert-manager.io/${version}/${kind}`;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

/** Schema errors of `object` (empty when valid), from the generated OpenAPI validators. */
export function schemaErrors(object: K8sObject): string[] {
  const require = depsRequire();
  const spec = modelModule(object.apiVersion, object.kind);
  let model: ModelClass;
  try {
    model = (require(spec) as Record<string, ModelClass>)[object.kind]!;
  } catch (err) {
    return [`no schema for ${object.apiVersion} ${object.kind} (${spec}): ${(err as Error).message}`];
  }
  try {
    new model(object).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

// ---------------------------------------------------------------------------------------------
// Unknown fields, from client-node's attribute maps.

interface Attribute {
  baseName: string;
  type: string;
}

type ModelWithAttributes = { getAttributeTypeMap(): Attribute[] };

const models = k8s as unknown as Record<string, ModelWithAttributes | undefined>;

/** client-node's model name of a built-in kind (`V1DaemonSet`), or null for CRDs and other versions. */
function clientNodeType(apiVersion: string, kind: string): string | null {
  const version = apiVersion.split('/').pop()!;
  if (version !== 'v1') return null;
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  if (!['', 'apps', 'networking.k8s.io', 'policy', 'rbac.authorization.k8s.io'].includes(group)) return null;
  const name = `V1${kind}`;
  return typeof models[name]?.getAttributeTypeMap === 'function' ? name : null;
}

function unknownIn(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownIn(item, array[1]!, `${path}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [key, item] of Object.entries(value)) unknownIn(item, map[1]!, `${path}.${key}`, out);
    return;
  }
  const model = models[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function' || typeof value !== 'object' || Array.isArray(value)) return;
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const attributeType = attributes.get(key);
    if (attributeType === undefined) out.push(`${path}.${key}: unknown field (not in ${type})`);
    else unknownIn(item, attributeType, `${path}.${key}`, out);
  }
}

/** Fields the Kubernetes schema of this built-in kind does not have; null when it cannot be checked (CRDs). */
export function unknownFields(object: K8sObject): string[] | null {
  const type = clientNodeType(object.apiVersion, object.kind);
  if (type === null) return null;
  const out: string[] = [];
  unknownIn(object, type, object.kind, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// values.schema.json (JSON Schema draft-07, as Helm uses it).

interface AjvError {
  instancePath: string;
  message?: string;
  params?: Record<string, unknown>;
}

interface AjvValidate {
  (data: unknown): boolean;
  errors?: AjvError[] | null;
}

interface AjvInstance {
  compile(schema: object): AjvValidate;
}

export type ValuesValidator = (values: unknown) => string[];

/** A validator for chart values; returns readable errors (empty when valid). */
export function valuesValidator(schema: object): ValuesValidator {
  const require = depsRequire();
  const AjvClass = (require('ajv') as { default: new (options: object) => AjvInstance }).default;
  // strict: unknown keywords or malformed schema parts are errors in the schema itself.
  const validate = new AjvClass({ allErrors: true, strict: true, strictTypes: false }).compile(schema);
  return (values) => {
    if (validate(values)) return [];
    return (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
  };
}
