// Runs the core-probe wasm module: a whole simulated sync inside wasm32-unknown-unknown.
import { readFileSync } from 'node:fs';

const path = process.argv[2];
const { instance } = await WebAssembly.instantiate(readFileSync(path), {});
const copied = instance.exports.probe_sync();
if (copied !== 3) {
  console.error(`core-probe: expected 3 images copied inside wasm, got ${copied}`);
  process.exit(1);
}
console.log(`core-probe: a simulated sync ran inside wasm and copied ${copied} images`);
