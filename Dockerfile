# warden: the reference image for serving ONNX models securely.
#
#   docker build -t warden .          (BuildKit; podman/buildah build works too)
#   docker run --read-only --cap-drop=ALL --security-opt no-new-privileges \
#     --security-opt seccomp=seccomp/container.json --user 65532:65532 \
#     --pids-limit 64 --memory 256m -p 8000:8000 warden
#
# Two stages. `builder` compiles a fully static binary; `runtime` is FROM
# scratch and holds that binary and the bundled models, nothing else: no
# shell, no package manager, no libc, no CA bundle, no /etc/passwd.
#
# Building the runtime stage without a registry (tests/container/run.sh): a
# named build context replaces the stage of the same name, so
#   podman build --target runtime --build-context builder=DIR .
# builds THIS runtime stage, unmodified, from DIR/out/warden (a binary built
# on the host with the same flags as below) instead of running `builder`.
# Verified with podman 4.3 (buildah); BuildKit's named contexts
# (`docker buildx build --build-context builder=DIR`) are meant to override a
# stage of the same name too, but that was not run here.
#
# No `# syntax=` line and no heredocs: both need a frontend image from a
# registry, which offline and air-gapped builders cannot pull.

# ---- builder ------------------------------------------------------------------
# Tag and digest together: the tag says what it is, the digest is what is
# used. 1.95.0 matches rust-toolchain.toml, so the image is built by the
# compiler every other build of this repository is tested with. The digest is
# the multi-arch index of rust:1.95.0-slim-bookworm as found pinned in public
# repositories; it could not be pulled from this build machine (no registry
# access), so verify it when bumping:
#   docker buildx imagetools inspect rust:1.95.0-slim-bookworm
FROM rust:1.95.0-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS builder

WORKDIR /src
# .dockerignore admits only what the build needs (an allowlist).
COPY . .

# The image's toolchain (pinned by the digest above) is used as is:
# rust-toolchain.toml is not copied, so rustup does not try to download
# components (rustfmt, clippy) the build does not need.
# glibc with crt-static rather than musl: musl's allocator is slow under the
# multi-threaded allocation inference does, and glibc static keeps the
# allocator warden is tested with; it measured no slower than the dynamic
# build (SECURITY.md, "Static binary"). An explicit --target is required for
# crt-static, or proc-macro crates would be linked statically too and fail.
# warden calls no NSS functions (no getpwnam, no DNS), the one part of glibc
# that does not work statically.
# The registry and target directories are BuildKit cache mounts: dependency
# crates are compiled once and reused across builds, and never land in a
# layer, so the binary is copied out in the same step. `install -s` strips the
# symbol tables (36 MB -> 29 MB): a scratch image has no debugger to use them,
# and panics still print their message and location.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "$(uname -m)-unknown-linux-gnu" \
    && install -D -s -m 0555 -o 0 -g 0 "target/$(uname -m)-unknown-linux-gnu/release/warden" /out/warden

# ---- runtime ------------------------------------------------------------------
FROM scratch AS runtime

# Static OCI labels. The per-build ones (source, revision, created) are set by
# the pipeline (`--label org.opencontainers.image.revision=$GIT_SHA`, or
# buildx's --provenance), not written here where they would go stale.
LABEL org.opencontainers.image.title="warden" \
      org.opencontainers.image.description="ONNX inference server (KServe V2 / Triton HTTP) that locks itself down after start-up" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="scratch"

# Root-owned and read/execute only: the server user (65532) cannot replace
# its own binary or models even where the root file system is writable.
COPY --from=builder --chown=0:0 --chmod=0555 /out/warden /warden
COPY --chown=0:0 models /models

# 65532 is the conventional "nonroot" id (distroless); numeric, because a
# scratch image has no /etc/passwd to resolve a name, and a numeric id lets
# Kubernetes verify runAsNonRoot.
USER 65532:65532

# 8000: inference (KServe V2 / Triton HTTP). 8002: Prometheus metrics.
EXPOSE 8000 8002

ENV WARDEN_MODEL_REPOSITORY=/models \
    WARDEN_LOG_FORMAT=json

# No shell, no curl: the binary asks /v2/health/ready on loopback itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/warden", "healthcheck"]

# Exec form: warden is PID 1, receives SIGTERM directly and drains in-flight
# requests before it exits 0.
ENTRYPOINT ["/warden"]
CMD ["serve"]
