// `execlet serve`: loads settings, prepares TLS and the token, and runs the HTTPS server.
import { stringify as toYaml } from 'yaml';
import { BearerTokenAuthenticator } from '../auth/bearer.js';
import { prepareLocalCredentials, writeLocalKubeconfig } from '../auth/local-credentials.js';
import { DockerBackend } from '../backend/docker.js';
import { NsenterBackend } from '../backend/nsenter.js';
import { nodeNamespacePid, TargetResolver } from '../target/resolve.js';
import { loadSettings } from '../config/load.js';
import { buildApp } from '../server/app.js';
import { isNsenterEnabled, splitListen } from '../config/settings.js';
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
  const { host, port } = splitListen(settings.listen);
  const nsenterEnabled = isNsenterEnabled(settings);
  const docker = new DockerBackend({ dockerHost: settings.dockerHost, killGraceMs: settings.killGraceMs });
  const nsenter = new NsenterBackend({ killGraceMs: settings.killGraceMs });
  if (nsenterEnabled) nsenter.tools(); // fail at start-up, not at the first session, when util-linux is missing
  const nodePid = nodeNamespacePid();
  const app = await buildApp({
    tls: { key: credentials.keyPem, cert: credentials.certPem },
    authenticator: new BearerTokenAuthenticator(credentials.token),
    docker,
    nsenter,
    resolver: new TargetResolver(docker, { nodeName: settings.nodeName, nsenterEnabled, nodePid: nodePid.pid }),
    checkEngine: () => docker.ping(),
    nodeName: settings.nodeName,
    logLevel: settings.logLevel,
  });
  if (nsenterEnabled && nodePid.note) app.log.warn({ nodePid: nodePid.pid }, nodePid.note);
  await app.listen({ host, port });
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const kubeconfig = writeLocalKubeconfig(settings, credentials, boundPort);
  app.log.info({ url: kubeconfig.serverUrl, kubeconfig: kubeconfig.path, dockerHost: settings.dockerHost, nodeName: settings.nodeName, nsenter: nsenterEnabled }, 'execlet is serving');
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
