# syntax=docker/dockerfile:1
# The basic-service container image: built with the Rust toolchain, run on distroless.
#
#   docker build -t basic-service .
#   docker run --rm -p 50051:50051 basic-service
#
# The run stage is gcr.io/distroless/cc (glibc and libgcc_s, which the binary links; no
# shell, no package manager) as its non-root user. The binary listens on 0.0.0.0:50051
# (BASIC_ADDR); every other flag is an environment variable too (docs/operations.md,
# "Configuration"). No HEALTHCHECK: probes belong to the orchestrator (deploy/k8s/ uses
# Kubernetes' gRPC probes on grpc.health.v1). Both stages are Debian 12, so the glibc the
# binary is built against is the one it runs on.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the target directory between builds; the
# binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin basic-service \
    && install -D target/release/basic-service /out/basic-service

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/basic-service /usr/local/bin/basic-service
ENV BASIC_ADDR=0.0.0.0:50051
# gRPC; Prometheus metrics when BASIC_METRICS_ADDR is set (deploy/k8s/ uses 9090).
EXPOSE 50051 9090
# The image's "nonroot" user, by number (Kubernetes' runAsNonRoot checks numbers).
USER 65532:65532
# SIGTERM (the default stop signal) starts the graceful shutdown.
ENTRYPOINT ["/usr/local/bin/basic-service"]
