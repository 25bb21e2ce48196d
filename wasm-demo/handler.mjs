// ferry at the edge: a Worker-style handler (`export default { fetch(request) }`) built on
// ferry-wasm. It uses the Request/Response web APIs only, so any runtime that speaks them
// can host it; serve.mjs hosts it under Node.
//
//   GET  /diff?src=<base>/<repo>&dst=<base>/<repo>[&details=1]
//        -> 200 application/json: the core's DiffReport
//   POST /sync   {"src": "<base>/<repo>", "dst": "<base>/<repo>", "tags"?: [...],
//                 "platforms"?: [...], "auth"?: {"src"?: Auth, "dst"?: Auth}}
//        -> 200 application/x-ndjson, answered at once: the core's progress events, one per
//           line, ending with {"event":"job_finished",...}. A reader knows the job is over
//           only at EOF. A job that could not finish ends with {"event":"error",...} instead.
//
//   POST /jobs, GET /jobs/<id>/events?offset=N, DELETE /jobs/<id>
//        -> the job relay of `ferry serve --relay` (jobs.mjs), when the host configures it: the
//           bindings (workerd) or environment (serve.mjs) RELAY_USERS (a secret: the relay's own
//           users, entries of hash-password.mjs; see users.mjs) and RELAY_ALLOW. Every job route
//           needs one of those users by HTTP Basic, as `ferry serve --relay` needs its htpasswd's.
//
// <base> is a registry's base URL (http://127.0.0.1:5000); Auth is {username, password}
// or {token}. Bad input gets 400 and {"error": "..."}; a registry that cannot be reached
// gets 502 with {"error", "registry"}; a failure the core typed gets {"error", "kind"} with
// a status chosen from the kind (404 not_found, 403 unauthorized, 400 invalid_name, else
// 502) and a message chosen from it. Failed images in a sync's stream carry their `kind`.

import { describeFailure } from '../web/failure.js';
import init, * as ferry from '../web/pkg/ferry_wasm.js';
import { BadJob, Jobs, parseAllow, parseJob } from './jobs.mjs';
import { authenticate, parseUsers } from './users.mjs';

let ready;

/**
 * Instantiates ferry-wasm from `source` (the .wasm bytes, a compiled WebAssembly.Module,
 * or a URL). A host calls it once before serving; without it the module is fetched from
 * beside ferry_wasm.js, which works where `fetch` reads such URLs.
 */
export function useWasm(source) {
  ready = init({ module_or_path: source });
  return ready;
}

const JSON_TYPE = { 'content-type': 'application/json' };

function json(status, value, headers = {}) {
  return new Response(JSON.stringify(value) + '\n', { status, headers: { ...JSON_TYPE, ...headers } });
}

function badRequest(message) {
  return json(400, { error: message });
}

class BadInput extends Error {}

/** `<base>/<repo>` -> ferry's Repo: the URL's origin and its path. */
function repoOf(what, text, auth) {
  if (typeof text !== 'string' || text === '') {
    throw new BadInput(`${what} is missing: give a repository URL such as http://127.0.0.1:5000/library/alpine`);
  }
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new BadInput(`${what} ${JSON.stringify(text)} is not a URL: write it as http(s)://host[:port]/repository`);
  }
  const repository = url.pathname.replace(/^\/+|\/+$/g, '');
  if (!['http:', 'https:'].includes(url.protocol) || repository === '' || url.search || url.hash) {
    throw new BadInput(`${what} ${JSON.stringify(text)} must be http(s)://host[:port]/repository`);
  }
  const repo = { registry: url.origin, repository };
  if (auth !== undefined) repo.auth = auth;
  return repo;
}

/** The answer's status for a failure of the core's `kind`. */
const KIND_STATUS = { not_found: 404, unauthorized: 403, invalid_name: 400 };

/**
 * A rejected ferry call as an answer. A failure the core typed carries its `kind`, and its
 * message is chosen from the kind (the registry's words kept in parentheses).
 */
function failure(error) {
  if (error?.name === 'InputError' || error instanceof BadInput) return badRequest(error.message);
  if (error?.name === 'NetworkError') return json(502, { error: error.message, registry: error.registry });
  const detail = String(error?.message ?? error);
  if (!error?.kind) return json(502, { error: detail });
  const status = KIND_STATUS[error.kind] ?? 502;
  return json(status, { error: describeFailure(error.kind, detail), kind: error.kind });
}

async function diff(url) {
  const src = repoOf('src', url.searchParams.get('src'));
  const dst = repoOf('dst', url.searchParams.get('dst'));
  const details = ['1', 'true'].includes(url.searchParams.get('details') ?? '');
  return json(200, await ferry.diff(src, dst, { details }));
}

async function sync(request) {
  let body;
  try {
    body = await request.json();
  } catch {
    return badRequest('the body must be JSON: {"src": "<base>/<repo>", "dst": "<base>/<repo>", "tags"?: [...]}');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return badRequest('the body must be a JSON object with src and dst');
  }
  const known = ['src', 'dst', 'tags', 'platforms', 'auth'];
  const unknown = Object.keys(body).filter((key) => !known.includes(key));
  if (unknown.length > 0) return badRequest(`unknown field ${JSON.stringify(unknown[0])}; the fields are ${known.join(', ')}`);
  const auth = body.auth ?? {};
  const src = repoOf('src', body.src, auth.src);
  const dst = repoOf('dst', body.dst, auth.dst);

  const encoder = new TextEncoder();
  const abort = new AbortController();
  request.signal?.addEventListener('abort', () => abort.abort());
  // Lines wait here until the stream exists; the first one tells that the job started.
  const pending = [];
  let stream = null;
  let finished = false;
  let onStart;
  const started = new Promise((resolve) => (onStart = resolve));
  const emit = (event) => {
    finished ||= event.event === 'job_finished';
    const line = encoder.encode(JSON.stringify(event) + '\n');
    if (stream) stream.enqueue(line);
    else pending.push(line);
    onStart();
  };
  const job = ferry.copy(src, dst, {
    tags: body.tags,
    platforms: body.platforms,
    onProgress: emit,
    signal: abort.signal,
  });
  // Bad input rejects before any request; a job that started has emitted its first event.
  try {
    await Promise.race([job, started]);
  } catch (error) {
    return failure(error);
  }

  const lines = new ReadableStream({
    start(controller) {
      stream = controller;
      for (const line of pending.splice(0)) controller.enqueue(line);
      job
        .catch((error) => {
          if (!finished) emit({ event: 'error', name: error?.name ?? 'Error', reason: String(error?.message ?? error) });
        })
        .finally(() => controller.close());
    },
    cancel() {
      abort.abort();
    },
  });
  return new Response(lines, { status: 200, headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' } });
}

let jobs;

/** RELAY_USERS parsed once per value. */
let users = { text: null, parsed: null };

function relayUsers(text) {
  if (users.text !== text) users = { text, parsed: parseUsers(text) };
  return users.parsed;
}

/** POST /jobs, GET /jobs/<id>/events, DELETE /jobs/<id>; 404 unless the host configured the relay. */
async function relay(request, url, env, ctx) {
  if (!env?.RELAY_USERS || !env?.RELAY_ALLOW) {
    return json(404, { error: 'the relay is off: the host sets RELAY_USERS and RELAY_ALLOW' });
  }
  let known;
  try {
    known = relayUsers(env.RELAY_USERS);
  } catch (error) {
    return json(500, { error: `the relay is misconfigured: ${error.message}` });
  }
  if (!(await authenticate(known, request.headers.get('authorization')))) {
    return json(401, { error: 'the relay runs jobs only for its own users: send Authorization: Basic with a user of its RELAY_USERS' }, {
      'www-authenticate': 'Basic realm="ferry relay", charset="UTF-8"',
    });
  }
  jobs ??= new Jobs({ ferry, maxJobs: Number(env.RELAY_MAX_JOBS ?? 4) });
  if (url.pathname === '/jobs') {
    if (request.method !== 'POST') return json(405, { error: 'use POST /jobs with a JSON body' }, { allow: 'POST' });
    let body;
    try {
      body = await request.json();
    } catch {
      return badRequest('the body must be JSON: {"kind": "diff" | "copy", ...}');
    }
    const job = jobs.start(parseJob(body, parseAllow(env.RELAY_ALLOW)));
    ctx?.waitUntil?.(job.done);
    return jobs.answer(job, 0);
  }
  const [, id, rest] = url.pathname.match(/^\/jobs\/([0-9a-f]+)(\/events)?$/) ?? [];
  const job = id && jobs.get(id);
  if (!job) return json(404, { error: `no job at ${url.pathname}` });
  if (rest && request.method === 'GET') {
    const offset = Number(url.searchParams.get('offset') ?? 0);
    if (!Number.isInteger(offset) || offset < 0) return badRequest('offset must be a line number, 0 or more');
    return jobs.answer(job, offset);
  }
  if (!rest && request.method === 'DELETE') {
    if (job.finished) return json(409, { error: `job ${id} has already ended` });
    job.abort.abort();
    return json(202, { cancelled: true });
  }
  return json(405, { error: 'use GET /jobs/<id>/events or DELETE /jobs/<id>' });
}

export default {
  async fetch(request, env, ctx) {
    if (!ready) ready = init();
    await ready;
    const url = new URL(request.url);
    try {
      if (url.pathname === '/jobs' || url.pathname.startsWith('/jobs/')) return await relay(request, url, env, ctx);
      switch (url.pathname) {
        case '/diff':
          if (request.method !== 'GET') return json(405, { error: 'use GET /diff?src=...&dst=...' }, { allow: 'GET' });
          return await diff(url);
        case '/sync':
          if (request.method !== 'POST') return json(405, { error: 'use POST /sync with a JSON body' }, { allow: 'POST' });
          return await sync(request);
        default:
          return json(404, { error: `no route ${url.pathname}: the routes are GET /diff, POST /sync and /jobs` });
      }
    } catch (error) {
      if (error instanceof BadJob) return json(error.status ?? 400, { error: error.message });
      return failure(error);
    }
  },
};
