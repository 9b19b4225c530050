// Help texts for the execlet command, generated from the settings table so they never drift.
import { SETTINGS } from '../config/settings.js';

export const MAIN_HELP = `execlet — node-local exec agent (the streaming half of a kubelet)

Usage:
  execlet serve [flags]     run the agent
  execlet version           print the version
  execlet help [command]    show help

Run 'execlet serve --help' for the agent's settings.
`;

export function serveHelp(): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.kind === 'boolean' ? s.flag : `${s.flag} ${s.kind === 'integer' ? 'N' : 'VALUE'}`;
    return `  ${flag.padEnd(40)} ${s.help}${s.defaultText ? ` (default: ${s.defaultText})` : ''}\n  ${''.padEnd(40)} env ${s.env}, config key ${s.path}`;
  });
  return `Usage: execlet serve [flags]

Runs the agent. Settings come from, in increasing priority: built-in defaults, the YAML file given
by --config (or EXECLET_CONFIG), EXECLET_* environment variables, and flags.

With no TLS configured, the agent creates (once) a CA and a serving certificate in the state dir,
a random bearer token, and STATE/kubeconfig for kubectl:
  KUBECONFIG=/var/lib/execlet/kubeconfig kubectl exec -n docker CONTAINER -- sh

Flags:
  --config FILE                            YAML settings file (env EXECLET_CONFIG)
  --print-config                           print the effective settings as YAML and exit
  --help                                   show this help
${rows.join('\n')}

Pods: containers labelled by cri-dockerd appear as their pods; every other running container is
a one-container pod in namespace "docker", named after the container.

Modes (privileged; see --nsenter): a container name suffix picks how the command runs:
  kubectl exec POD -c CONTAINER.nsenter -- CMD   nsenter into the container's mount, uts, ipc, net
                                                 and pid namespaces, outside its cgroup (the query
                                                 parameter namespaces=net,pid chooses others)
  kubectl exec POD -c CONTAINER.toolbox -- CMD   the container's net, pid, ipc, uts namespaces with
                                                 the node's filesystem and a fresh /proc
  kubectl exec -n execlet-node NODE -- CMD       a node shell (the namespaces of host PID 1)
`;
}
