# syntax=docker/dockerfile:1
# iamgate container image.
#
#   docker build -t iamgate:0.1.0 .
#   docker run --rm --read-only -p 8181:8181 -p 8182:8182 -p 9191:9191 iamgate:0.1.0
#
# The builder links the binary statically (glibc, crt-static) so that the
# runtime stage needs no libc: distroless/static has CA certificates,
# /etc/passwd with the `nonroot` user (65532), no shell and no package
# manager. The root file system can be mounted read-only: iamgate writes
# nothing unless told to (a decision-log file, --inventory-state), so mount a
# volume for those. scripts/image-test.sh builds this runtime stage offline
# with buildah and runs it under its constraints.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-gnu" \
    && RUSTFLAGS="-C target-feature=+crt-static" \
       cargo build --release --locked --target "$target" --bin iamgate \
    && install -m 0755 "target/$target/release/iamgate" /iamgate

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="iamgate" \
      org.opencontainers.image.description="Authorization sidecar that decides exactly as AWS IAM would, for EC2-like control planes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /iamgate /iamgate
USER 65532:65532
# gRPC and Envoy ext_authz, HTTP/JSON API, admin (health, readiness, metrics).
EXPOSE 9191 8181 8182
STOPSIGNAL SIGTERM
ENTRYPOINT ["/iamgate"]
CMD ["serve", "--grpc-listen", "0.0.0.0:9191", "--http-listen", "0.0.0.0:8181", "--admin-listen", "0.0.0.0:8182"]
