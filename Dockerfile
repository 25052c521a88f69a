# syntax=docker/dockerfile:1
#
# rostersync container image: the `rostersync` daemon alone (the bundled `canvas-sim` simulator is a separate
# target, below, and never in the production image).
#   docker build -t rostersync:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm -p 9464:9464 -e ROSTERSYNC__CANVAS__BASE_URL=... -e ROSTERSYNC__CANVAS__TOKEN_FILE=... \
#     -e ROSTERSYNC__DATABASE__URL=... rostersync:0.1.0            # CMD defaults to `run`
#   docker build --target canvas-sim -t canvas-sim:0.1.0 .         # the simulator, for a test environment
# deploy/kubernetes/deployment.yaml runs it with `--config /etc/rostersync/rostersync.toml run` (that path is also
# the default when no --config is given and the file exists).
#
# The build context is exactly what the COPY lines below name (.dockerignore drops the rest); tests/it/deploy.rs
# `dockerfile_context_is_a_workspace_cargo_accepts` assembles that context in a temp dir and runs
# `cargo metadata --offline --locked` on it, so a path Cargo.toml needs cannot be left out unnoticed.

# ---- build ------------------------------------------------------------------------------------------------------
# sqlx 0.9 needs rustc >= 1.94 (Cargo.toml rust-version). Same Debian release as the runtime stage, so glibc matches.
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# 1. Dependencies only, cached until a Cargo.toml, Cargo.lock or build.rs change: build the workspace's targets as
#    empty stubs. The workspace is two packages: rostersync (the root, with build.rs) and crates/canvas-sim (the
#    simulator library the demo links). Every target Cargo finds in a manifest needs a stub here: the two bins, the
#    two lib.rs and the `scale` bench (Cargo refuses a manifest whose [[bench]] file is missing).
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates/canvas-sim/Cargo.toml ./crates/canvas-sim/
RUN mkdir -p src/bin benches crates/canvas-sim/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/canvas-sim.rs \
 && echo 'fn main() {}' > benches/scale.rs \
 && : > src/lib.rs \
 && : > crates/canvas-sim/src/lib.rs \
 && cargo build --release --locked --bin rostersync \
 && rm -rf src benches crates/canvas-sim/src

# 2. The real source. migrations/ is embedded into the binary at compile time by `sqlx::migrate!`, so it must be
#    present for this build (and is not needed at run time). benches/ (scale.rs and its scale/ module directory) is
#    not built, but Cargo.toml names it.
COPY src ./src
COPY crates ./crates
COPY benches ./benches
COPY migrations ./migrations
# The commit `--version` and rostersync_build_info report (build.rs), since the context has no .git. Declared here,
# after the dependency layer, so that a new commit does not rebuild the dependencies.
ARG REVISION=unknown
ENV ROSTERSYNC_GIT_COMMIT=${REVISION}
# COPY keeps the files' modification times, which may be older than the stub build's outputs: touch the crate roots
# so that cargo rebuilds both crates instead of shipping the stubs.
# The man page is generated from the clap definitions by the binary just built (`rostersync man`, no
# configuration needed), so it always matches the commands this image runs.
RUN touch src/lib.rs src/main.rs src/bin/canvas-sim.rs crates/canvas-sim/src/lib.rs \
 && cargo build --release --locked --bin rostersync \
 && install -D -m 0755 target/release/rostersync /out/rostersync \
 && /out/rostersync man > /out/rostersync.1

# ---- the simulator (only with `--target canvas-sim`; BuildKit skips these stages otherwise) ----------------------
FROM builder AS sim-builder
RUN cargo build --release --locked --bin canvas-sim \
 && install -D -m 0755 target/release/canvas-sim /out/canvas-sim

FROM debian:bookworm-slim AS canvas-sim
COPY --from=sim-builder /out/canvas-sim /usr/local/bin/
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/canvas-sim"]
CMD ["--listen", "0.0.0.0:8080"]

# ---- runtime (the default target) -------------------------------------------------------------------------------
FROM debian:bookworm-slim

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="rostersync" \
      org.opencontainers.image.description="Reconciles Canvas LMS enrollments with a school's SIS, auditing every change" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# rustls verifies Canvas's and PostgreSQL's certificates against the OS trust store: ca-certificates is the only
# package needed. The fixed uid/gid 10001 matches the Kubernetes securityContext (runAsUser/fsGroup 10001).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rostersync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rostersync

COPY --from=builder /out/rostersync /usr/local/bin/
# `man` is not in the slim image; the page is for `docker cp` or a debug container (`man -l rostersync.1`), and it
# is what the systemd unit's Documentation= names on a host install.
COPY --from=builder /out/rostersync.1 /usr/share/man/man1/rostersync.1

USER 10001:10001
# /metrics, /healthz, /readyz (server.listen, default 0.0.0.0:9464).
EXPOSE 9464
# No HEALTHCHECK: Kubernetes ignores it and uses the probes in deploy/kubernetes/deployment.yaml instead (liveness
# GET /healthz: the process runs; readiness GET /readyz: both databases answer and Canvas accepted the token). The
# image has no curl; under plain Docker or Compose, probe from outside, e.g. a compose healthcheck in a sidecar, or
# `curl -fsS http://HOST:9464/readyz` from the host.
# SIGTERM: the daemon finishes the changes in flight (up to 45 s) and exits 0; give `docker stop` a -t of 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rostersync"]
CMD ["run"]
