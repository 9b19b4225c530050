// Just enough of the Kubernetes discovery API for kubectl: /version, /api, /apis, /api/v1.
import type { FastifyInstance } from 'fastify';
import { EXECLET_VERSION } from '../version.js';

/**
 * The Kubernetes version execlet reports. kubectl wrappers (the gcloud dispatcher) pick a client
 * matching this; 1.30+ clients speak the WebSocket exec protocol.
 */
const KUBE_MINOR = '33';

export function registerDiscoveryRoutes(app: FastifyInstance): void {
  app.get('/version', async () => ({
    major: '1',
    minor: KUBE_MINOR,
    gitVersion: `v1.${KUBE_MINOR}.0+execlet-${EXECLET_VERSION}`,
    gitCommit: '',
    gitTreeState: 'clean',
    buildDate: '',
    goVersion: `node${process.versions.node}`,
    compiler: 'execlet',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
    execlet: EXECLET_VERSION,
  }));
  app.get('/api', async () => ({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] }));
  app.get('/apis', async () => ({ kind: 'APIGroupList', apiVersion: 'v1', groups: [] }));
  app.get('/api/v1', async () => ({
    kind: 'APIResourceList',
    groupVersion: 'v1',
    resources: [
      { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
      { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
    ],
  }));
}
