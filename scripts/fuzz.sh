#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds (default 20). cargo-fuzz needs nightly
# compiler flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in reference manifest challenge config; do
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -max_len=4096
done
