# ferry's container image: a small runtime with the `ferry` binary as the entrypoint,
# running as a non-root user (65532, distroless's "nonroot").
#
#   docker build -t ferry .            # or: podman build -t ferry .
#   docker run --rm ferry sync --help
#
# Three stages. `build` compiles ferry from this repository with cargo (--locked, so the
# crates are those of Cargo.lock). `binary` is where the runtime stage takes /out/ferry
# from: the build stage by default, or, with --build-arg FERRY_FROM=IMAGE, an image that
# already holds a ferry built elsewhere at /out/ferry (CI packs the binary its tests just
# built, so the image costs no second compile; unused stages are skipped by BuildKit and
# podman/buildah). The runtime is distroless's cc image: glibc, libgcc, CA certificates
# and the nonroot user, nothing else; `ferry` is dynamically linked against exactly
# those (`ldd ferry`: libc, libm, libgcc_s).
#
# Every base is a build argument, so a machine that cannot pull from a public registry
# can point them at local images (tests/service_image.rs imports a runtime made of the
# host's Debian 12 glibc, libgcc and CA bundle, the same files distroless/cc-debian12
# ships).
# Rust 1.88 or later: the oldest that builds every crate in Cargo.lock (icu_* need it).
ARG BUILDER=docker.io/library/rust:1.88-bookworm
ARG RUNTIME=gcr.io/distroless/cc-debian12:nonroot
ARG FERRY_FROM=build

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferry-cli \
 && install -D -m 0755 target/release/ferry /out/ferry

FROM ${FERRY_FROM} AS binary

FROM ${RUNTIME}
COPY --from=binary /out/ferry /usr/local/bin/ferry
USER 65532:65532
# ferry serve's default port, and the metrics/health port of the Kubernetes manifests.
EXPOSE 5000 9090
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["--help"]
