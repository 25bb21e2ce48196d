// The edge handler as a workerd (Cloudflare Workers) module: ferry-wasm comes in as a compiled
// WebAssembly.Module (workerd.capnp embeds it), so nothing is fetched at run time.

import wasm from '../web/pkg/ferry_wasm_bg.wasm';
import handler, { useWasm } from './handler.mjs';

useWasm(wasm);

export default handler;
