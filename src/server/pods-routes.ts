// GET routes for the pods synthesized from the engine's containers.
import type { FastifyInstance } from 'fastify';
import { podNotFound, type TargetResolver } from '../target/resolve.js';
import { podListObject, podObject } from './pod-object.js';
import { sendStatus } from './status-reply.js';

export function registerPodRoutes(app: FastifyInstance, resolver: TargetResolver, nodeName: string): void {
  app.get('/api/v1/pods', async () => podListObject(await resolver.listPods(true), nodeName));
  app.get<{ Params: { namespace: string } }>('/api/v1/namespaces/:namespace/pods', async (request) =>
    podListObject(
      (await resolver.listPods(true)).filter((pod) => pod.namespace === request.params.namespace),
      nodeName,
    ),
  );
  app.get<{ Params: { namespace: string; pod: string } }>('/api/v1/namespaces/:namespace/pods/:pod', async (request, reply) => {
    const { namespace, pod: name } = request.params;
    const pod = await resolver.findPod(namespace, name);
    if (!pod) return sendStatus(reply, 404, podNotFound(namespace, name).message);
    return podObject(pod, nodeName);
  });
}
