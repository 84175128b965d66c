# syntax=docker/dockerfile:1
#
# keyhook container image.
#
#   docker build -t keyhook:dev .
#   docker run --rm -p 8080:8080 -e KEYHOOK_README_SECRET_FILE=/run/secrets/readme keyhook:dev
#
# Three stages: `deps` compiles the dependency graph only (from Cargo.toml and
# Cargo.lock, against a stub crate), so that layer is reused until the lock
# file changes; `build` compiles keyhook itself; the runtime stage is Debian
# slim (a shell is kept for the HEALTHCHECK; no compiler, no package manager
# run at build time), running as an unprivileged numeric user.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS deps
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY Cargo.toml Cargo.lock ./
# A stub crate with the real manifest (deploy/docker/stub-crate.sh): builds
# every dependency exactly as the real build will, then drops the stub's own
# artifacts so the next stage recompiles keyhook (and only keyhook).
COPY deploy/docker/stub-crate.sh /usr/local/bin/stub-crate
RUN stub-crate \
 && cargo build --release --locked \
 && rm -rf src \
      target/release/keyhook \
      target/release/.fingerprint/keyhook-* \
      target/release/deps/keyhook-* \
      target/release/deps/libkeyhook-*

# ---------------------------------------------------------------------------
FROM deps AS build
COPY src ./src
# COPY keeps the context's mtimes: touch so cargo never mistakes the real
# sources for the stub it has just built.
RUN find src -type f -name '*.rs' -exec touch {} + \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/keyhook /out/keyhook \
 && ./target/release/keyhook --version

# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="keyhook" \
      org.opencontainers.image.description="Credential webhook server for ReadMe Personalized Docs and the Sensedia Developer Portal, backed by Amazon API Gateway, Amazon Cognito or an embedded store." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/keyhook/keyhook" \
      org.opencontainers.image.documentation="https://github.com/keyhook/keyhook/blob/main/deploy/README.md" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_RELEASE}-slim"

# CA roots for the AWS SDK's TLS, taken from the build image (which has
# ca-certificates installed) instead of running apt in the runtime image.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/keyhook /usr/local/bin/keyhook
COPY --chmod=0755 deploy/docker/healthcheck.sh /usr/local/bin/keyhook-healthcheck

# 65532: the conventional "nonroot" uid/gid (as in distroless). The data
# directory is only used by the `local` backend; mount a volume there.
RUN mkdir -p /var/lib/keyhook /app/config \
 && chown 65532:65532 /var/lib/keyhook \
 && chmod 0750 /var/lib/keyhook

WORKDIR /app
ENV KEYHOOK_LISTEN=0.0.0.0:8080 \
    KEYHOOK_DATA_DIR=/var/lib/keyhook \
    KEYHOOK_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080 9090 9091
VOLUME ["/var/lib/keyhook"]

# Docker/Compose only: ECS and Kubernetes use their own probes (see
# deploy/). The check GETs /healthz over plain HTTP with bash's /dev/tcp;
# with in-process TLS it only checks the port accepts connections.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/keyhook-healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/keyhook"]
CMD ["serve"]
