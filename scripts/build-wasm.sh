#!/usr/bin/env bash
# Builds ferry-wasm for the browser and the edge into web/pkg/:
#   ferry_wasm.js (ES module, `--target web`), ferry_wasm.d.ts, ferry_wasm_bg.wasm.
# Profile `wasm-release` (opt-level z, LTO, one codegen unit, panic=abort), then
# `wasm-opt -Oz` when binaryen is installed. Prints the raw and gzipped sizes.
set -euo pipefail
cd "$(dirname "$0")/.."

out=web/pkg
target_dir=${CARGO_TARGET_DIR:-target}

# wasm-bindgen's CLI must be the exact version of the wasm-bindgen crate in Cargo.lock:
# the two share a private format.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ -z "$want" ]]; then
  echo "build-wasm: no wasm-bindgen in Cargo.lock; run: cargo generate-lockfile" >&2
  exit 1
fi
install="cargo install wasm-bindgen-cli --version $want"
if ! command -v wasm-bindgen >/dev/null; then
  echo "build-wasm: wasm-bindgen is not installed; install it with: $install" >&2
  exit 1
fi
have=$(wasm-bindgen --version | awk '{ print $2 }')
if [[ "$have" != "$want" ]]; then
  echo "build-wasm: wasm-bindgen $have is installed, but Cargo.lock has $want; install it with: $install" >&2
  exit 1
fi

cargo build -p ferry-wasm --lib --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$out" \
  "$target_dir/wasm32-unknown-unknown/wasm-release/ferry_wasm.wasm"

wasm="$out/ferry_wasm_bg.wasm"
if command -v wasm-opt >/dev/null; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$wasm" -o "$wasm.opt"
  # binaryen 108 (Debian 12) rewrites the export of wasm-bindgen's externref table to point
  # at the funcref table, and init() then fails; keep wasm-bindgen's module when it did.
  externrefs_ok='
    const m = new WebAssembly.Module(require("fs").readFileSync(process.argv[1]));
    const imports = {};
    for (const i of WebAssembly.Module.imports(m)) (imports[i.module] ??= {})[i.name] = () => {};
    new WebAssembly.Instance(m, imports).exports.__wbindgen_externrefs?.set(0, undefined);'
  if node -e "$externrefs_ok" "$wasm.opt" 2>/dev/null; then
    mv "$wasm.opt" "$wasm"
  else
    rm -f "$wasm.opt"
    echo "build-wasm: wasm-opt $(wasm-opt --version | awk '{ print $3 }') broke the externref table; keeping the module unoptimised" >&2
  fi
else
  echo "build-wasm: wasm-opt not found (apt-get install binaryen); the module is not size-optimised" >&2
fi

raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
js=$(stat -c %s "$out/ferry_wasm.js")
echo "build-wasm: $wasm $raw bytes ($((raw / 1024)) KiB), gzipped $gz bytes ($((gz / 1024)) KiB); glue $out/ferry_wasm.js $js bytes"
