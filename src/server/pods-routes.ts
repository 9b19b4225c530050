// GET routes for the pods synthesized from the engine's containers. A list honours the field
// selectors kubectl sends for these pods (metadata.name, metadata.namespace, spec.nodeName,
// status.phase; = == !=); the pods carry no labels, so a label selector and a watch — which would
// otherwise be answered with every pod, as if they had matched — are refused with a 400 saying so.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { podNotFound, type TargetResolver } from '../target/resolve.js';
import type { PodView } from '../target/pods.js';
import { podListObject, podObject } from './pod-object.js';
import { sendStatus } from './status-reply.js';

type ListQuery = { labelSelector?: unknown; fieldSelector?: unknown; watch?: unknown };

class SelectorRefused extends Error {}

const SELECTABLE_FIELDS = ['metadata.name', 'metadata.namespace', 'spec.nodeName', 'status.phase'];

/** The value of each field a field selector may name, for one pod. */
function fieldsOf(pod: PodView, nodeName: string): Record<string, string> {
  return {
    'metadata.name': pod.name,
    'metadata.namespace': pod.namespace,
    'spec.nodeName': nodeName,
    'status.phase': pod.containers.some((c) => c.state === 'running') ? 'Running' : 'Pending',
  };
}

/** A field selector as a predicate; throws SelectorRefused for one it cannot honour. */
function fieldSelector(text: string, nodeName: string): (pod: PodView) => boolean {
  const terms = text
    .split(',')
    .map((term) => term.trim())
    .filter((term) => term.length > 0)
    .map((term) => {
      const match = /^([a-zA-Z.]+)\s*(!=|==|=)\s*(.*)$/.exec(term);
      if (!match) throw new SelectorRefused(`fieldSelector: cannot parse "${term}" (expected FIELD=VALUE or FIELD!=VALUE)`);
      const [, field, op, value] = match as unknown as [string, string, string, string];
      if (!SELECTABLE_FIELDS.includes(field)) {
        throw new SelectorRefused(`fieldSelector: "${field}" is not a supported field (${SELECTABLE_FIELDS.join(', ')})`);
      }
      return { field, negated: op === '!=', value };
    });
  return (pod) => {
    const fields = fieldsOf(pod, nodeName);
    return terms.every(({ field, negated, value }) => (fields[field] === value) !== negated);
  };
}

/** The pods a list request asks for, or a 400 for what it asks that cannot be honoured. */
function listPods(pods: PodView[], query: ListQuery, nodeName: string, reply: FastifyReply): unknown {
  const text = (value: unknown) => (typeof value === 'string' ? value : Array.isArray(value) ? value.join(',') : '');
  if (query.watch !== undefined && !['false', '0', ''].includes(text(query.watch))) {
    return sendStatus(reply, 400, 'watch is not supported by execlet: list the pods instead', 'BadRequest');
  }
  if (text(query.labelSelector).trim().length > 0) {
    return sendStatus(reply, 400, "labelSelector is not supported by execlet: its pods (synthesized from the node's containers) carry no labels", 'BadRequest');
  }
  try {
    const selected = text(query.fieldSelector).trim().length > 0 ? pods.filter(fieldSelector(text(query.fieldSelector), nodeName)) : pods;
    return podListObject(selected, nodeName);
  } catch (err) {
    if (err instanceof SelectorRefused) return sendStatus(reply, 400, err.message, 'BadRequest');
    throw err;
  }
}

export function registerPodRoutes(app: FastifyInstance, resolver: TargetResolver, nodeName: string): void {
  app.get<{ Querystring: ListQuery }>('/api/v1/pods', async (request, reply) => listPods(await resolver.listPods(true), request.query, nodeName, reply));
  app.get<{ Params: { namespace: string }; Querystring: ListQuery }>('/api/v1/namespaces/:namespace/pods', async (request, reply) =>
    listPods(
      (await resolver.listPods(true)).filter((pod) => pod.namespace === request.params.namespace),
      request.query,
      nodeName,
      reply,
    ),
  );
  app.get<{ Params: { namespace: string; pod: string } }>('/api/v1/namespaces/:namespace/pods/:pod', async (request, reply) => {
    const { namespace, pod: name } = request.params;
    const pod = await resolver.findPod(namespace, name);
    if (!pod) return sendStatus(reply, 404, podNotFound(namespace, name).message);
    return podObject(pod, nodeName);
  });
}
