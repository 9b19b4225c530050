// `execlet serve`: loads settings, prepares TLS and the token, and runs the HTTPS server.
import { stringify as toYaml } from 'yaml';
import { BearerTokenAuthenticator } from '../auth/bearer.js';
import { prepareLocalCredentials, writeLocalKubeconfig } from '../auth/local-credentials.js';
import { DockerBackend } from '../backend/docker.js';
import { loadSettings } from '../config/load.js';
import { buildApp } from '../server/app.js';
import { splitListen } from '../config/settings.js';
import { serveHelp } from './help.js';

export async function serveCommand(argv: string[]): Promise<number> {
  const loaded = loadSettings(argv);
  if (loaded.help) {
    process.stdout.write(serveHelp());
    return 0;
  }
  const { settings } = loaded;
  if (loaded.printConfig) {
    process.stdout.write(toYaml(settings));
    return 0;
  }
  const credentials = prepareLocalCredentials(settings);
  const backend = new DockerBackend({ dockerHost: settings.dockerHost, killGraceMs: settings.killGraceMs });
  const app = await buildApp({
    tls: { key: credentials.keyPem, cert: credentials.certPem },
    authenticator: new BearerTokenAuthenticator(credentials.token),
    backend,
    catalog: backend,
    checkEngine: () => backend.ping(),
    nodeName: settings.nodeName,
    logLevel: settings.logLevel,
  });
  const { host, port } = splitListen(settings.listen);
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const kubeconfig = writeLocalKubeconfig(settings, credentials, boundPort);
  app.log.info({ url: kubeconfig.serverUrl, kubeconfig: kubeconfig.path, dockerHost: settings.dockerHost, nodeName: settings.nodeName }, 'execlet is serving');
  process.stdout.write(`execlet: serving ${kubeconfig.serverUrl}; try: KUBECONFIG=${kubeconfig.path} kubectl exec -n docker CONTAINER -- sh\n`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      app.log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await app.close();
  return 0;
}
