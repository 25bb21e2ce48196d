# ferry's tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the main job on the embedded default: two in-process registries, sample images, a sync, a diff.
demo:
    cargo run --release --quiet -- demo

# Every test: the sans-IO guard, unit and simulation tests, registry conformance and interop, then the
# browser and edge tests (ferry-wasm in headless Chromium and under Node, the web page end to end).
test: core-guard
    cargo test --workspace --no-fail-fast
    just test-wasm
    just test-web

# The core stays sans-IO: it builds for wasm32 with no `env` imports and depends on no runtime.
core-guard:
    scripts/core-guard.sh

# fmt and clippy, warnings are errors: the workspace on the host, then ferry-wasm for wasm32 (on the
# host it compiles to nothing). The lints are `[workspace.lints]` in Cargo.toml; modules marked
# `expect(..., reason = "lint sweep pending")` wait for one docs and `pub(crate)` sweep.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo clippy -p ferry-wasm --all-targets --target wasm32-unknown-unknown -- -D warnings

# Run each fuzz target briefly (SECONDS each).
fuzz SECONDS="20":
    scripts/fuzz.sh {{SECONDS}}

# Benchmarks against peers in the same run (SCALE: full or small; RUNS per peer). Reports ratios, never fails on them.
# Part 1: `ferry serve` vs distribution, pushed and pulled with skopeo (bench/registry.py).
# Part 2: `ferry sync` vs `skopeo sync` between two distribution registries (bench/sync.py).
# Part 2b: requests on 500 small images (20 repositories x 25 tags; small: 50), ferry vs skopeo beside the
# minimum: cold, no-op, warm with every tag immutable, and a cold sync through a throttling proxy (bench/requests.py).
# Part 3: `ferry serve` vs distribution under 200 clients pushing, then pulling, at once: throughput,
# peak RSS, threads, RSS once idle (bench/registry_load.py; 32 MiB each, small: 50 clients x 4 MiB).
# Part 4: `ferry serve` pushes with a dead or refusing notification endpoint against none (bench/notify.py).
# Part 5: `ferry serve` on the s3 driver (Garage) against the filesystem driver, corpus push and pull, and the
# peak RSS of a 1 GiB blob pushed and pulled through the s3 driver (bench/s3.py; small: 64 MiB).
# Part 6: the edge handler in workerd against a Worker's limits: a 512 MiB layer copied through its job relay
# (workerd's peak RSS and CPU), subrequests of 1- and 20-image copies and of a diff, CPU of a relay-user check
# (bench/edge_limits.py; small: 64 MiB, 5 images).
bench SCALE="full" RUNS="3":
    python3 bench/registry.py --scale {{SCALE}} --runs {{RUNS}}
    python3 bench/notify.py --no-build --runs {{RUNS}}
    python3 bench/s3.py --no-build --scale {{SCALE}} --runs {{RUNS}} $([ "{{SCALE}}" = small ] && echo --blob-mib 64)
    python3 bench/sync.py --scale {{SCALE}} --runs {{RUNS}}
    python3 bench/requests.py --no-build --runs {{RUNS}} $([ "{{SCALE}}" = small ] && echo --repos 5 --tags 10)
    if [ "{{SCALE}}" = small ]; then python3 bench/registry_load.py --no-build --clients 50 --blob-mib 4; \
    else python3 bench/registry_load.py --no-build --clients 200 --blob-mib 32; fi
    scripts/build-wasm.sh
    [ -d node_modules/workerd ] || PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci
    python3 bench/edge_limits.py --no-build $([ "{{SCALE}}" = small ] && echo --blob-mib 64 --images 5)

# The container image from the Dockerfile (ENGINE: docker or podman; the bases are build arguments, see README).
image ENGINE="docker" TAG="ferry:dev":
    {{ENGINE}} build -t {{TAG}} .

# ferry-wasm for the browser and the edge into web/pkg/ (wasm-bindgen, wasm-opt); prints its size.
wasm:
    scripts/build-wasm.sh

# ferry-wasm's tests against real `ferry serve` registries: wasm-bindgen-test in headless Chromium, then the edge handler under Node.
test-wasm:
    scripts/test-wasm.sh

# The web page on this machine: two registries with CORS and sample images, one serving the page; prints its URL.
demo-web:
    scripts/build-wasm.sh
    cargo run --release --quiet -- demo --serve --ui web

# The web page's tests: Node unit tests, then end to end in the system Chromium (screenshots in target/web-e2e/).
test-web:
    scripts/build-wasm.sh
    cargo build --quiet -p ferry-cli
    [ -d node_modules/axe-core ] || PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci
    FERRY_BIN="${CARGO_TARGET_DIR:-target}/debug/ferry" node --test web/test/*.test.mjs
