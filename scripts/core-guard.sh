#!/usr/bin/env bash
# Guards the core's sans-IO promise:
# 1. `cargo tree -p ferry-core -e normal` has no tokio, reqwest, hyper or mio;
# 2. ferry-core builds for wasm32-unknown-unknown;
# 3. a wasm module that drives a whole simulated sync through the core imports nothing
#    from `env` (no clock, no I/O shims), and runs under Node.
set -euo pipefail
cd "$(dirname "$0")/.."

tree=$(cargo tree -p ferry-core -e normal --prefix none)
if bad=$(grep -E '^(tokio|reqwest|hyper|mio) ' <<<"$tree"); then
  echo "core-guard: ferry-core depends on a runtime or an HTTP stack:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "core-guard: cargo tree -p ferry-core has no tokio, reqwest, hyper or mio"

cargo build -p ferry-core --target wasm32-unknown-unknown --release
cargo build -p ferry-core-probe --target wasm32-unknown-unknown --release
wasm=target/wasm32-unknown-unknown/release/ferry_core_probe.wasm
# `wasm-objdump -j Import` fails when the module has no Import section at all: that passes.
imports=$(wasm-objdump -j Import -x "$wasm" 2>/dev/null | grep -E '^ - ' || true)
if grep -q '<- env\.' <<<"$imports"; then
  echo "core-guard: $wasm imports from env:" >&2
  grep '<- env\.' <<<"$imports" >&2
  exit 1
fi
count=$(grep -c . <<<"$imports" || true)
echo "core-guard: $wasm imports nothing from env ($count imports in all; $(stat -c %s "$wasm") bytes)"
node scripts/core-probe.mjs "$wasm"
