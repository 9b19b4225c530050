# syntax=docker/dockerfile:1
#
# The execlet agent image: `docker build -t REGISTRY/execlet:VERSION .`
#
# Two stages: the build stage compiles the TypeScript and node-pty's native module (as an
# unprivileged user) and prunes to production dependencies; the runtime stage holds Node.js,
# util-linux (nsenter, setpriv, unshare for the nsenter modes) and the app, nothing else.
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (helm/execlet), and Docker's health check
# would need the token-less HTTPS client the probes already are.

ARG NODE_VERSION=20

# ---------------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm AS build

# The image's build tools (python3, make, g++) compile node-pty; nothing here runs as root.
WORKDIR /src
RUN chown node:node /src
USER node

# Dependencies first, for the layer cache. node-pty has no Linux prebuild: `npm ci` compiles it
# with node-gyp against this Node.js, the same version as the runtime stage's.
COPY --chown=node:node package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY --chown=node:node tsconfig.json ./
COPY --chown=node:node src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && test -f node_modules/node-pty/build/Release/pty.node

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

# nsenter, setpriv and unshare (the nsenter, toolbox and node modes) come from util-linux, which
# Debian always installs; fail the build if that ever changes rather than at the first session.
RUN set -e; for tool in nsenter setpriv unshare; do command -v "$tool"; done

WORKDIR /app
# Owned by root and not writable by the agent: it writes only to its state dir (a host path).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY web ./web

ENV NODE_ENV=production
EXPOSE 10350
VOLUME ["/var/lib/execlet"]

# Root, because the job needs it: the Docker socket is root's, and the agent signals and enters
# other processes' namespaces. Kubernetes (helm/execlet) and systemd (systemd/execlet.service) then
# take away every capability it does not need.
USER root
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
