// `execlet serve`: loads settings, starts the agent, and runs it until SIGTERM or SIGINT.
import { join } from 'node:path';
import { toYaml } from '../config/yaml.js';
import { loadSettings } from '../config/load.js';
import { startAgent } from './agent.js';
import { releaseReloadSignal } from './early-reload-signal.js';
import { allowHeapGrowth } from './heap-sizing.js';
import { serveHelp } from './help.js';

export async function serveCommand(argv: string[]): Promise<number> {
  const loaded = loadSettings(argv);
  if (loaded.help) {
    process.stdout.write(serveHelp());
    return 0;
  }
  if (loaded.printConfig) {
    process.stdout.write(toYaml(loaded.settings));
    return 0;
  }
  const agent = await startAgent(loaded.settings);
  allowHeapGrowth();
  const { serverUrl, path } = agent.kubeconfig;
  process.stdout.write(`execlet: serving ${serverUrl}; try: KUBECONFIG=${path} kubectl exec -n docker CONTAINER -- sh\n`);
  if (agent.consoleUrl) {
    // The token goes only to a terminal: a log file or a pod log must never hold it.
    const shown = process.stdout.isTTY ? agent.consoleUrl : `${serverUrl}/#token=<the token in ${join(loaded.settings.stateDir, 'token')}>`;
    process.stdout.write(`execlet: web console: ${shown}\n`);
  }
  // SIGHUP re-reads the TLS files, the token file and the policy; live sessions keep running. One
  // that came while the agent started (held since main.ts) is carried out now.
  releaseReloadSignal(() => agent.reload());
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      agent.app.log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await agent.shutdown(loaded.settings.shutdownGraceSeconds * 1000);
  return 0;
}
