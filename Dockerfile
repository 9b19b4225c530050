# syntax=docker/dockerfile:1
#
# The execlet agent image: `docker build -t REGISTRY/execlet:VERSION .`
#
# Two stages: the build stage compiles the TypeScript, node-pty's native module, the nsenter
# modes' static helper (dist/native/execlet-nsenter) and the module that starts it
# (dist/native/execlet-spawn.node) as an unprivileged user, and prunes to production dependencies;
# the runtime stage holds Node.js and the app, nothing else.
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (helm/execlet), and Docker's health check
# would need the token-less HTTPS client the probes already are.

ARG NODE_VERSION=20

# ---------------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm AS build

# The image's build tools (python3, make, gcc/g++, the static libc of libc6-dev) compile node-pty
# and the helper; nothing here runs as root.
WORKDIR /src
RUN chown node:node /src
USER node

# Dependencies first, for the layer cache. node-pty has no Linux prebuild: `npm ci` compiles it
# with node-gyp against this Node.js, the same version as the runtime stage's.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY --chown=node:node tsconfig.json ./
COPY --chown=node:node src ./src
COPY --chown=node:node native ./native
# `npm run build` = tsc + native/build.sh (cc -static native/execlet-nsenter.c; cc -shared
# native/execlet-spawn.c and native/execlet-tcp.c against this Node.js's headers). tsc's record
# for incremental builds (dist/.tsbuildinfo) stays out of the image.
RUN npm run build \
 && rm -f dist/.tsbuildinfo \
 && npm prune --omit=dev --no-audit --no-fund \
 && test -f node_modules/node-pty/build/Release/pty.node \
 && test -x dist/native/execlet-nsenter \
 && test -f dist/native/execlet-spawn.node \
 && test -f dist/native/execlet-tcp.node

# ---------------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime

ARG NODE_VERSION
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="execlet" \
      org.opencontainers.image.description="Node-local exec agent: the streaming half of a kubelet as its own daemon" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="node:${NODE_VERSION}-bookworm-slim"

WORKDIR /app
# Owned by root and not writable by the agent: it writes only to its state dir (a host path).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY web ./web
# The nsenter, toolbox and node modes need no util-linux: they run dist/native/execlet-nsenter, a
# static binary. Fail the build if it is missing or does not run here, rather than at the first
# session (without arguments it names the problem and exits 125).
RUN ./dist/native/execlet-nsenter 2>/dev/null; test $? -eq 125
# The module that starts it without forking the agent must load here too (else the agent falls
# back to child_process, and says so at start-up).
RUN node -e "require('./dist/native/execlet-spawn.node')"
# So must the one that asks the kernel whether a client that misses a pong is still there (else a
# client that stops reading is dropped as gone, and the agent says so at start-up).
RUN node -e "require('./dist/native/execlet-tcp.node')"

ENV NODE_ENV=production
EXPOSE 10350
VOLUME ["/var/lib/execlet"]

# Root, because the job needs it: the Docker socket is root's, and the agent signals and enters
# other processes' namespaces. Kubernetes (helm/execlet) and systemd (systemd/execlet.service) then
# take away every capability it does not need.
USER root
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
