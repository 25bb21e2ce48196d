// Hosts handler.mjs under Node's `http` the way an edge runtime would: each request becomes
// a web `Request` (its body a stream, its signal aborted when the client goes away), and
// the `Response` body is streamed back as it is produced.
//
//   node wasm-demo/serve.mjs            # http://127.0.0.1:8787 (PORT, HOST to change)

import { createServer } from 'node:http';
import { access, readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

const WASM = new URL('../web/pkg/ferry_wasm_bg.wasm', import.meta.url);
// Hop-by-hop headers describe one connection, not the request.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host']);

function toRequest(req, signal) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (HOP_BY_HOP.has(name)) continue;
    for (const one of [value].flat()) headers.append(name, one);
  }
  const url = `http://${req.headers.host ?? 'localhost'}${req.url}`;
  const hasBody = !['GET', 'HEAD'].includes(req.method);
  return new Request(url, {
    method: req.method,
    headers,
    body: hasBody ? Readable.toWeb(req) : undefined,
    duplex: hasBody ? 'half' : undefined,
    signal,
  });
}

/** handler.mjs, with ferry-wasm instantiated from web/pkg. */
async function load() {
  try {
    await access(WASM);
  } catch {
    throw new Error(`${fileURLToPath(WASM)} is missing: build it with \`just wasm\` (scripts/build-wasm.sh)`);
  }
  const module = await import('./handler.mjs');
  await module.useWasm(await readFile(WASM));
  return module.default;
}

function fromEnvironment() {
  const env = {};
  if (process.env.FERRY_RELAY_USERS) env.RELAY_USERS = process.env.FERRY_RELAY_USERS;
  if (process.env.FERRY_RELAY_ALLOW) env.RELAY_ALLOW = process.env.FERRY_RELAY_ALLOW;
  return env;
}

async function respond(handler, req, res, env) {
  const client = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) client.abort();
  });
  let response;
  try {
    response = await handler.fetch(toRequest(req, client.signal), env, { waitUntil() {} });
  } catch (error) {
    response = new Response(JSON.stringify({ error: String(error?.message ?? error) }) + '\n', {
      status: 500,
      headers: { 'content-type': 'application/json' },
    });
  }
  res.writeHead(response.status, Object.fromEntries(response.headers));
  if (response.body) {
    for await (const chunk of response.body) {
      if (client.signal.aborted) break;
      res.write(chunk);
    }
  }
  res.end();
}

/** Starts the server; resolves with it and its URL once it listens. `env` is what a Worker gets as
 * bindings (RELAY_USERS, RELAY_ALLOW turn the job relay on); by default FERRY_RELAY_USERS and
 * FERRY_RELAY_ALLOW from the environment. */
export async function start({ port = 8787, host = '127.0.0.1', env = fromEnvironment() } = {}) {
  const handler = await load();
  const server = createServer((req, res) => {
    respond(handler, req, res, env).catch((error) => {
      console.error(`wasm-demo: ${req.method} ${req.url}: ${error?.message ?? error}`);
      res.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const { port: bound } = server.address();
  return { server, url: `http://${host}:${bound}` };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 8787);
  const { url } = await start({ port, host: process.env.HOST ?? '127.0.0.1' });
  console.log(`wasm-demo: ferry's edge handler on ${url} (GET /diff, POST /sync)`);
}
