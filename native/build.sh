#!/bin/sh
# Compiles the nsenter mode's helper, native/execlet-nsenter.c, into dist/native/execlet-nsenter
# (`npm run build:native`, part of `npm run build`). Static: it runs in any image without a libc.
# Needs a C compiler (cc, or $CC) and a static libc (Debian: libc6-dev); node-pty needs the former
# at `npm ci` already.
set -eu
cd "$(dirname "$0")/.."
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build:native: no C compiler: '$CC' is not on PATH. The nsenter mode's helper (native/execlet-nsenter.c) is compiled with one; install gcc or clang (and a static libc, e.g. Debian's libc6-dev), or set CC." >&2
  exit 1
fi
mkdir -p dist/native
# Built beside the target and renamed over it: a running helper is never overwritten in place.
tmp="dist/native/.execlet-nsenter.$$"
trap 'rm -f "$tmp"' EXIT
if ! "$CC" -O2 -static -Wall -Wextra -Werror -o "$tmp" native/execlet-nsenter.c; then
  echo "build:native: compiling native/execlet-nsenter.c with '$CC' failed (a static build needs a static libc: Debian's libc6-dev)" >&2
  exit 1
fi
mv -f "$tmp" dist/native/execlet-nsenter
