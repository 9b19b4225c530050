#!/bin/sh
# Compiles the nsenter modes' native parts (`npm run build:native`, part of `npm run build`):
#  - native/execlet-nsenter.c into dist/native/execlet-nsenter, the helper that enters the
#    namespaces. Static: it runs in any image without a libc.
#  - native/execlet-spawn.c into dist/native/execlet-spawn.node, the Node-API module that starts
#    the helper with posix_spawn instead of forking the agent. Built against the headers of the
#    Node.js that runs this script (Node-API: any later Node.js loads it too); left out, with a
#    warning, where it cannot be built.
#  - native/execlet-tcp.c into dist/native/execlet-tcp.node, the Node-API module that reads what
#    the kernel knows of a client's TCP connection (TCP_INFO), to tell a client that stopped
#    reading from one that is gone. Left out, with a warning, where it cannot be built: pongs alone
#    judge then.
# Needs a C compiler (cc, or $CC), a static libc (Debian: libc6-dev) and Node.js's headers (in
# every Node.js release, include/node beside bin/node); node-pty needs the first and last at
# `npm ci` already.
set -eu
cd "$(dirname "$0")/.."
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build:native: no C compiler: '$CC' is not on PATH. The nsenter mode's helper (native/execlet-nsenter.c) is compiled with one; install gcc or clang (and a static libc, e.g. Debian's libc6-dev), or set CC." >&2
  exit 1
fi
mkdir -p dist/native
# Built beside the targets and renamed over them: a running helper or a loaded module is never
# overwritten in place.
tmp="dist/native/.execlet-nsenter.$$"
tmp_module="dist/native/.execlet-spawn.$$.node"
tmp_tcp="dist/native/.execlet-tcp.$$.node"
trap 'rm -f "$tmp" "$tmp_module" "$tmp_tcp"' EXIT
if ! "$CC" -O2 -static -Wall -Wextra -Werror -o "$tmp" native/execlet-nsenter.c; then
  echo "build:native: compiling native/execlet-nsenter.c with '$CC' failed (a static build needs a static libc: Debian's libc6-dev)" >&2
  exit 1
fi
node_include="$(node -p 'require("node:path").resolve(process.execPath, "../../include/node")')"
# The spawn module spares the agent a fork per nsenter session: where it cannot be built (no Node
# headers, a glibc before 2.34) the agent starts the helper with node-pty and child_process instead,
# and says so at start-up (a module of an earlier build is removed: it would not match the code).
if [ ! -f "$node_include/node_api.h" ]; then
  echo "build:native: warning: Node.js's headers are not in $node_include (node_api.h), so native/execlet-spawn.c is not built: nsenter sessions will fork the agent to start their helper" >&2
elif ! "$CC" -O2 -shared -fPIC -Wall -Wextra -Werror -I"$node_include" -o "$tmp_module" native/execlet-spawn.c; then
  echo "build:native: warning: compiling native/execlet-spawn.c with '$CC' failed (it needs glibc 2.34 or later), so nsenter sessions will fork the agent to start their helper" >&2
  rm -f "$tmp_module"
fi
if [ ! -f "$node_include/node_api.h" ]; then
  echo "build:native: warning: Node.js's headers are not in $node_include (node_api.h), so native/execlet-tcp.c is not built: a client that stops reading will be taken for gone when it misses a ping" >&2
elif ! "$CC" -O2 -shared -fPIC -Wall -Wextra -Werror -I"$node_include" -o "$tmp_tcp" native/execlet-tcp.c; then
  echo "build:native: warning: compiling native/execlet-tcp.c with '$CC' failed, so a client that stops reading will be taken for gone when it misses a ping" >&2
  rm -f "$tmp_tcp"
fi
mv -f "$tmp" dist/native/execlet-nsenter
if [ -f "$tmp_module" ]; then mv -f "$tmp_module" dist/native/execlet-spawn.node; else rm -f dist/native/execlet-spawn.node; fi
if [ -f "$tmp_tcp" ]; then mv -f "$tmp_tcp" dist/native/execlet-tcp.node; else rm -f dist/native/execlet-tcp.node; fi
