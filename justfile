# ferry's tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the main job on the embedded default: two in-process registries, sample images, a sync, a diff.
demo:
    cargo run --release --quiet -- demo

# Every test: the sans-IO guard, unit and simulation tests, registry conformance and interop.
test: core-guard
    cargo test --workspace --no-fail-fast

# The core stays sans-IO: it builds for wasm32 with no `env` imports and depends on no runtime.
core-guard:
    scripts/core-guard.sh

# fmt and clippy, warnings are errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Run each fuzz target briefly (SECONDS each).
fuzz SECONDS="20":
    scripts/fuzz.sh {{SECONDS}}

# Benchmarks against peers in the same run (SCALE: full or small; RUNS per server). Reports ratios, never fails on them.
# Part 1: `ferry serve` vs distribution, pushed and pulled with skopeo (bench/registry.py).
bench SCALE="full" RUNS="3":
    python3 bench/registry.py --scale {{SCALE}} --runs {{RUNS}}
