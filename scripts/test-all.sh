#!/usr/bin/env bash
# Every test on a fresh Debian machine with only rustup and cargo: installs what the tests
# need, then runs `just test` with peers required, so a missing skopeo, distribution or
# Chromium fails its test instead of skipping it. `.ci/run` runs exactly this.
#
# Installs, each only when missing: the Debian packages of the peers and tools
# (docker-registry, skopeo, chromium, chromium-driver, wabt, binaryen, apache2-utils,
# openssl, nodejs, npm, time, python3-pip, haproxy, prometheus, podman, docker.io,
# python3-kubernetes), the `oras` Python package (oras-py, which pushes the referrer
# artifacts of tests/cli_referrers.rs; about 4 s), the wasm32 target, `just`,
# `wasm-bindgen-cli` at the version in Cargo.lock, and the npm packages (playwright-core,
# with no browser download; workerd, whose binary ships in the package: about 10 s and
# 155 MB; azurite, Microsoft's Azure Storage emulator for the azure driver's tests: about
# 360 MB more, the whole `npm ci` about 1 min 45 s), and garage (crates.io), the S3 server
# of the s3 driver's tests.
# Installing Debian packages needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_apt=()
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v wasm-objdump >/dev/null || need_apt+=(wabt)
command -v wasm-opt >/dev/null || need_apt+=(binaryen)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
# The TLS tests make their CA and certificates with openssl.
command -v openssl >/dev/null || need_apt+=(openssl)
# Node and npm may come from elsewhere than Debian (nvm, nodesource); Debian's npm
# conflicts with those, so each is installed only when missing.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
[ -x /usr/bin/time ] || need_apt+=(time)
# oras-py comes from PyPI through pip.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# haproxy: the relay's test redirects through it to a host the relay must refuse, and the
# replica tests balance two `ferry serve` over it (~25 s).
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || need_apt+=(haproxy)
# The service tests: a real Prometheus scrapes ferry and promtool lints its metrics; the
# Dockerfile is built and run by podman and by a dockerd the test starts; the Kubernetes
# manifests are checked against the API's models in python3-kubernetes. Measured here:
# prometheus, podman and docker.io about 20 s together (apt-get update included),
# python3-kubernetes about 15 s.
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v podman >/dev/null || need_apt+=(podman)
command -v dockerd >/dev/null || need_apt+=(docker.io)
/usr/bin/python3 -c 'import kubernetes.client' 2>/dev/null || need_apt+=(python3-kubernetes)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "test-all: installing Debian packages: ${need_apt[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The referrers tests push artifacts with oras-py. Debian's Python is externally managed
# (PEP 668); this machine is a test box, so pip may install beside the system packages.
if ! python3 -c 'import oras' 2>/dev/null; then
  echo "test-all: installing the oras Python package"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet oras
fi

rustup target add wasm32-unknown-unknown
command -v just >/dev/null || cargo install --locked just

# The s3 driver's tests and bench/s3.py run against a real S3 server: Garage from crates.io,
# a single node with sqlite metadata (about 12 minutes to build on 2 idle cores, 20 on a
# loaded one; its own lock file builds with Rust 1.95).
if [ "$(garage --version 2>/dev/null | awk '{print $2}')" != "cargo:2.5.0" ]; then
  echo "test-all: installing garage 2.5.0"
  cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite
fi

# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly. Its own lock
# file pins crates the registry here lacks, so it is installed without --locked.
bindgen=$(awk '/^name = "wasm-bindgen"$/ {getline; sub(/^version = "/, ""); sub(/"$/, ""); print; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen" ]; then
  echo "test-all: installing wasm-bindgen-cli $bindgen"
  cargo install wasm-bindgen-cli --version "$bindgen"
fi

# The browser tests drive Debian's Chromium through playwright-core (no browser is downloaded)
# and scan the page with axe-core (npm, ~1 s, 3 MB); the azure driver's tests start Azurite
# (npm `azurite`) from node_modules/.bin.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

# Peers are required: a test whose tool is missing fails instead of skipping.
export FERRY_REQUIRE_PEERS=1
just test
