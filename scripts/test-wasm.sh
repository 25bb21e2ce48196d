#!/usr/bin/env bash
# The browser and edge tests of ferry-wasm, against real registries:
# 1. builds `ferry` and starts three `ferry serve --storage memory` on free loopback ports:
#    two that allow any origin by CORS (source and destination), one that allows none;
# 2. runs the wasm-bindgen-test suites (crates/wasm/tests) in headless Chromium, with the
#    registries' URLs compiled in (FERRY_WASM_SRC, FERRY_WASM_DST, FERRY_WASM_NO_CORS);
# 3. builds web/pkg (scripts/build-wasm.sh) and runs the edge handler's tests under Node
#    (wasm-demo/test), which start registries of their own;
# and stops the registries, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
if [[ ! -x "$CHROMEDRIVER" ]]; then
  echo "test-wasm: no chromedriver at $CHROMEDRIVER (apt-get install chromium chromium-driver)" >&2
  exit 1
fi
if ! command -v wasm-bindgen-test-runner >/dev/null; then
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
  echo "test-wasm: wasm-bindgen-test-runner is missing; install it with: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

cargo build -p ferry-cli
ferry="$target_dir/debug/ferry"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `ferry serve` with extra flags and exports its URL as the variable named $1.
serve() {
  local name=$1 log="$work/$1.out"
  shift
  "$ferry" serve --storage memory --addr 127.0.0.1:0 --log-level warn "$@" >"$log" &
  pids+=($!)
  for _ in $(seq 100); do
    local url
    url=$(grep -o 'http://[0-9.:]*' "$log" | head -n1 || true)
    if [[ -n "$url" ]]; then
      export "$name=$url"
      return
    fi
    sleep 0.1
  done
  echo "test-wasm: ferry serve $* did not start" >&2
  exit 1
}

serve FERRY_WASM_SRC --cors-origin '*'
serve FERRY_WASM_DST --cors-origin '*'
serve FERRY_WASM_NO_CORS
echo "test-wasm: source $FERRY_WASM_SRC, destination $FERRY_WASM_DST, no CORS $FERRY_WASM_NO_CORS"

# The runner's limit covers a whole suite in the browser.
WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-180} \
  cargo test -p ferry-wasm --target wasm32-unknown-unknown

scripts/build-wasm.sh
FERRY_BIN="$ferry" node --test wasm-demo/test/
