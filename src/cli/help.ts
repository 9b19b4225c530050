// Help texts for the execlet command: the agent's generated from the settings table so they never
// drift, and those of the client commands (exec, targets).
import { SETTINGS } from '../config/settings.js';

export const MAIN_HELP = `execlet — node-local exec agent (the streaming half of a kubelet)

Usage:
  execlet serve [flags]                        run the agent
  execlet exec [flags] POD -- COMMAND [ARG…]   run a command in a container through an agent
  execlet targets [flags]                      list what you may reach on an agent
  execlet version                              print the version
  execlet help [command]                       show help

Run 'execlet serve --help' for the agent's settings, 'execlet exec --help' and
'execlet targets --help' for the client commands.
`;

const CONNECTION_HELP = `Connection flags (as in kubectl):
  --kubeconfig FILE              kubeconfig to use (default: $KUBECONFIG, else the one "execlet serve"
                                 writes: /var/lib/execlet/kubeconfig as root, else
                                 ~/.local/state/execlet/kubeconfig, under $XDG_STATE_HOME if set);
                                 its current context gives the server, CA, token or client
                                 certificate, and namespace
  --context NAME                 use this context of the kubeconfig instead of its current-context
  -s, --server URL               the agent's https:// URL (overrides the kubeconfig's)
  --token TOKEN                  bearer token (overrides the kubeconfig's)
  --certificate-authority FILE   CA bundle (PEM) that signs the agent's serving certificate
  --insecure-skip-tls-verify     do not check the agent's certificate (not for production)`;

export function execHelp(): string {
  return `Usage: execlet exec [flags] POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG…]

Runs COMMAND in a container of POD through an execlet agent, like "kubectl exec": the agent is
asked on GET /api/v1/namespaces/NS/pods/POD/exec over WebSocket (v5.channel.k8s.io, else v4).
Flags may come before or after POD; the command comes after "--".

Flags:
  -n, --namespace NS             the pod's namespace (default: the context's, else "default");
                                 plain Docker containers are pods in namespace "docker"
  -c, --container NAME           the container (default: the pod's only one)
  -i, --stdin                    pass stdin to the command; its end is passed on too (v5)
  -t, --tty                      run in a terminal (with -i and a terminal on stdin, as in kubectl;
                                 otherwise ignored with a warning): the local terminal goes into raw
                                 mode, restored on every exit, and its size follows the window;
                                 stderr is then part of the terminal's output
      --mode MODE                how to run it:
                                   exec     a Docker exec in the container (default)
                                   nsenter  in the container's namespaces, outside its cgroup
                                            (needs a container: -c, or a one-container pod)
                                   toolbox  the container's net, pid, ipc and uts namespaces with
                                            the node's filesystem and tools
                                   node     a node shell: POD is the node name (pod
                                            execlet-node/NODE, container host)
      --namespaces NS,NS         with --mode nsenter or node: the namespaces to enter, any of mount,
                                 uts, ipc, net, pid, user, cgroup (default: mount,uts,ipc,net,pid)
  -q, --quiet                    no warnings
  -h, --help                     show this help

${CONNECTION_HELP}

Exit code: the remote command's own exit code; 255 when execlet could not run it: the agent
refused (unknown pod, no permission, bad token), could not be reached, or the stream broke before
the command's exit status arrived — the reason is then printed on stderr as "error: …". A remote
command that exits 255 also gives 255, but without an "error:" line: that is the only way to tell
the two apart. From execlet itself besides: 2 for a mistake on the command line (with an "error:"
line), 128+N when execlet is ended by signal N (the remote command is ended too), 141 when stdout
is closed early (e.g. "| head").

Examples:
  # Run a command in the only container of pod web (namespace from the kubeconfig's context)
  execlet exec web -- ps
  # A shell in container app of pod web in namespace shop
  execlet exec -n shop web -c app -it -- sh
  # Stdin, EOF included
  tar cf - ./conf | execlet exec -i -n shop web -c app -- tar xf - -C /tmp
  # A plain Docker container
  execlet exec -n docker my-container -- sh -c 'echo hi; exit 3'; echo $?   # hi, then 3
  # Debug a starved container from outside its cgroup, or with the node's tools
  execlet exec --mode nsenter -n shop web -c app -- sh
  execlet exec --mode toolbox -n shop web -c app -- ss -tlnp
  execlet exec --mode nsenter --namespaces net web -c app -- ip addr
  # A shell on the node itself
  execlet exec --mode node -it "$(hostname)" -- sh
  # Another agent, with its own token
  execlet exec --server https://node-7:10350 --certificate-authority ca.crt --token "$TOKEN" -n docker app -- id
`;
}

export function targetsHelp(): string {
  return `Usage: execlet targets [flags]

Lists the containers you may reach on an execlet agent, with the modes open to you
(GET /v1/targets): exec, and nsenter/toolbox/node where the agent and its policy allow them.

Flags:
  -o, --output FORMAT            table (default: NAMESPACE POD CONTAINER STATE MODES) or json (the
                                 agent's answer as it is)
  -h, --help                     show this help

${CONNECTION_HELP}

Exit code: 0 when listed (an empty list is said on stderr), 1 when the agent could not be asked
or refused, 2 for a mistake on the command line.

Examples:
  execlet targets
  execlet targets -o json | jq -r '.targets[] | "\\(.namespace)/\\(.pod)"'
  execlet targets --kubeconfig ./node-7.kubeconfig
`;
}

export function serveHelp(): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.kind === 'boolean' ? s.flag : `${s.flag} ${s.kind === 'integer' ? 'N' : 'VALUE'}`;
    const off = s.kind === 'boolean' ? `; --no-${s.flag.slice(2)} turns it off` : '';
    return `  ${flag.padEnd(40)} ${s.help}${s.defaultText ? ` (default: ${s.defaultText})` : ''}\n  ${''.padEnd(40)} env ${s.env}, config key ${s.path}${off}`;
  });
  return `Usage: execlet serve [flags]

Runs the agent. Settings come from, in increasing priority: built-in defaults, the YAML file given
by --config (or EXECLET_CONFIG), EXECLET_* environment variables, and flags.

With no TLS configured, the agent creates a CA (once) and a serving certificate in the state dir
(re-issued at start when a name is missing or it nears expiry), a random bearer token, and
STATE/kubeconfig for kubectl:
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
