# One image, three entry points: `arca agent` (DaemonSet, runs as root: see manifests/base/
# agent-daemonset.yaml), `arca controller` and `arca restore-wait` (non-root, the image's default user).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/cli ./dist/cli
COPY --from=build /src/dist/chunker ./dist/chunker
COPY --from=build /src/dist/repository ./dist/repository
COPY --from=build /src/dist/engine ./dist/engine
COPY --from=build /src/dist/kube ./dist/kube
COPY --from=build /src/dist/agent ./dist/agent
COPY --from=build /src/dist/controller ./dist/controller
COPY --from=build /src/dist/restore-wait ./dist/restore-wait
COPY --from=build /src/manifests ./manifests
RUN chmod 0755 dist/cli/main.js && ln -s /app/dist/cli/main.js /usr/local/bin/arca
# 65532: the conventional "nonroot" user; the agent's pod overrides it with runAsUser 0.
USER 65532:65532
ENTRYPOINT ["arca"]
CMD ["--help"]
