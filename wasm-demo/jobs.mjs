// The job relay's routes at the edge, as `ferry serve --relay` offers them (crates/registry/src/relay):
//
//   POST   /jobs                      {"kind": "diff", "source": "<base>[/<repo>]", "destination": "<base>[/<repo-or-prefix>]",
//                                      "repositories"?: ["a", "b/c"], "details"?}
//                                     {"kind": "copy", "images": [{"source": "<base>/<repo>:<tag>", "destination": "<base>/<repo>[:<tag>]"}]}
//                                     (+ "auth"?: {"source"?: Auth, "destination"?: Auth})
//          -> 200 application/x-ndjson at once: {"event":"job_started","job","kind"}, the core's events (a diff's
//             {"event":"repository_diffed","source_repository","destination_repository","rows","errors"}, one per
//             repository pair as soon as it is compared), and last the final status: a copy's
//             {"event":"job_finished",...}, a diff's {"event":"diff_finished","status","report"},
//             or {"event":"error","kind","reason"} (cancelled, or the job could not run).
//   GET    /jobs/<id>/events?offset=N -> the same lines from line N, then the job's next ones until its last.
//   DELETE /jobs/<id>                 -> 202; the job's stream ends with {"event":"error","kind":"cancelled"}.
//
// A diff side without a repository is the whole registry (the destination's path is then a prefix); its repositories
// are every repository of the catalogs, or the typed list `repositories` (at most MAX_REPOSITORIES names in the
// distribution spec's grammar; a bad entry gets 400 naming it).
//
// Like the relay, this is not an open proxy: the host's `allow` list (host, host:port, *.domain) names the registries
// a job may reach, and every route needs one of the host's users (RELAY_USERS, users.mjs) by HTTP Basic. The runtime's own
// network rules (workerd's `allow = [...]` on the outbound service) still apply below that; an edge handler cannot
// resolve names itself, so the address checks of the native relay are the runtime's.
//
// Jobs live in this isolate's memory: a re-attach must reach the same isolate (one workerd process does; a fleet
// would need a Durable Object per job). Readers poll the job's lines, so a reader never waits on a promise that
// another request's context resolves (workerd cancels such waits).

import { describeFailure } from '../web/failure.js';

const NDJSON = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' };
const POLL_MS = 50;
/** Finished jobs are forgotten after this long. */
const KEEP_MS = 10 * 60 * 1000;

export class BadJob extends Error {}

/** `host`, `host:port` or `*.domain`, as in relay.allow. */
export function parseAllow(text) {
  return String(text ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry) => {
      const lower = entry.toLowerCase();
      if (lower.includes('/')) throw new Error(`allow entry ${JSON.stringify(entry)}: write the host alone (host or host:port)`);
      const match = lower.match(/^(\*\.)?([^:]+|\[[^\]]+\])(?::(\d+))?$/);
      if (!match) throw new Error(`allow entry ${JSON.stringify(entry)} is not host, host:port or *.domain`);
      return { below: Boolean(match[1]), host: match[2], port: match[3] };
    });
}

/** Whether `url`'s host and port are on the list (a pattern never matches an IP address). */
export function allowed(list, url) {
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const address = /^[\d.]+$/.test(host) || host.startsWith('[');
  return list.some(
    (entry) =>
      (entry.port === undefined || entry.port === port) &&
      (entry.below ? !address && host.endsWith(`.${entry.host}`) : entry.host === host),
  );
}

/** The most repositories a diff's typed list may name (ferry-core's MAX_LISTED_REPOSITORIES). */
export const MAX_REPOSITORIES = 10_000;

/** The distribution spec's repository name: path components of `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`. */
const NAME = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$/;

/** A diff's typed list, each entry checked and the bad one named; ferry-wasm checks it again. */
function repositoriesOf(list, src) {
  if (list === undefined) return undefined;
  if (src.repository) throw new BadJob('`repositories` lists repositories of a whole registry: give `source` as http(s)://host[:port] alone');
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_REPOSITORIES) {
    throw new BadJob(`\`repositories\` names between 1 and ${MAX_REPOSITORIES} repositories; leave it out to compare the whole catalog`);
  }
  return list.map((name, i) => {
    const trimmed = typeof name === 'string' ? name.trim().replace(/^\/+|\/+$/g, '') : name;
    if (typeof trimmed !== 'string' || trimmed.length > 255 || !NAME.test(trimmed)) {
      throw new BadJob(`repositories[${i}] ${JSON.stringify(name)} is not a repository name: lowercase letters and digits, separated by . _ __ - or /`);
    }
    return trimmed;
  });
}

/** `<base>/<repo>[:tag]` -> ferry's Repo (and the tag, for a copy); `whole` lets the repository be left out. */
function sideOf(what, text, auth, list, { tag = false, whole = false } = {}) {
  if (typeof text !== 'string' || text === '') throw new BadJob(`${what} is missing: give a URL such as http://127.0.0.1:5000/library/alpine`);
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new BadJob(`${what} ${JSON.stringify(text)} is not a URL: write it as http(s)://host[:port]/repository`);
  }
  if (url.username || url.password) throw new BadJob(`${what} must not carry credentials in the URL; send them in auth`);
  if (!['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    throw new BadJob(`${what} ${JSON.stringify(text)} must be http(s)://host[:port]/repository`);
  }
  if (!allowed(list, url)) {
    const error = new BadJob(`${url.host} is not on the relay's allowlist; an operator can add it to the handler's allow list`);
    error.status = 403;
    throw error;
  }
  let path = url.pathname.replace(/^\/+|\/+$/g, '');
  let reference;
  if (tag) {
    const at = path.lastIndexOf(':');
    if (at > path.lastIndexOf('/')) [path, reference] = [path.slice(0, at), path.slice(at + 1)];
  }
  if (path === '' && !whole) throw new BadJob(`${what} names no repository: write http(s)://host[:port]/repository`);
  const repo = { registry: url.origin, repository: path };
  if (auth !== undefined) repo.auth = auth;
  return { repo, reference };
}

/** The body of POST /jobs -> what to run. */
export function parseJob(body, list) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadJob('the body must be a JSON object with kind');
  const known = ['kind', 'source', 'destination', 'details', 'repositories', 'images', 'auth'];
  const unknown = Object.keys(body).filter((key) => !known.includes(key));
  if (unknown.length > 0) throw new BadJob(`unknown field ${JSON.stringify(unknown[0])}; the fields are ${known.join(', ')}`);
  const auth = body.auth ?? {};
  if (body.kind === 'diff') {
    const src = sideOf('source', body.source, auth.source, list, { whole: true }).repo;
    const dst = sideOf('destination', body.destination, auth.destination, list, { whole: true }).repo;
    if (src.repository && !dst.repository) throw new BadJob('the source is a repository, so the destination must name one too');
    const repositories = repositoriesOf(body.repositories, src);
    return { kind: 'diff', src, dst, repositories, details: Boolean(body.details) };
  }
  if (body.kind === 'copy') {
    if (body.repositories !== undefined) throw new BadJob('`repositories` belongs to a diff of whole registries; a copy lists `images`');
    if (!Array.isArray(body.images) || body.images.length === 0) throw new BadJob('a copy needs `images`: [{"source", "destination"}]');
    const pairs = body.images.map((image, i) => {
      const from = sideOf(`images[${i}].source`, image?.source, auth.source, list, { tag: true });
      const to = sideOf(`images[${i}].destination`, image?.destination, auth.destination, list, { tag: true });
      if (!from.reference) throw new BadJob(`images[${i}].source names no tag: add :tag`);
      if (to.reference && to.reference !== from.reference) throw new BadJob(`images[${i}]: the edge keeps the source's tag`);
      return { from, to };
    });
    const key = (side) => `${side.repo.registry}/${side.repo.repository}`;
    if (pairs.some((p) => key(p.from) !== key(pairs[0].from) || key(p.to) !== key(pairs[0].to))) {
      throw new BadJob('at the edge a copy job moves tags between one pair of repositories; send one job per pair');
    }
    return { kind: 'copy', src: pairs[0].from.repo, dst: pairs[0].to.repo, tags: pairs.map((p) => p.from.reference) };
  }
  throw new BadJob(`kind ${JSON.stringify(body.kind)} is not a job; use "diff" or "copy"`);
}

/** The relay's jobs in this isolate. */
export class Jobs {
  constructor({ ferry, maxJobs = 4 }) {
    this.ferry = ferry;
    this.maxJobs = maxJobs;
    this.jobs = new Map();
    this.encoder = new TextEncoder();
  }

  running() {
    return [...this.jobs.values()].filter((job) => !job.finished).length;
  }

  /** Starts `work`; the job's promise is returned for the runtime's waitUntil. */
  start(work) {
    if (this.running() >= this.maxJobs) {
      const error = new BadJob(`the relay runs ${this.maxJobs} jobs, its limit; try again when one ends`);
      error.status = 429;
      throw error;
    }
    const id = crypto.randomUUID().replaceAll('-', '');
    const job = { id, lines: [], finished: false, abort: new AbortController() };
    this.jobs.set(id, job);
    this.push(job, { event: 'job_started', job: id, kind: work.kind });
    job.done = this.run(job, work).finally(() => {
      // Under Node the timer must not keep the process alive; workerd's timers have no unref.
      setTimeout(() => this.jobs.delete(id), KEEP_MS).unref?.();
    });
    return job;
  }

  push(job, value, last = false) {
    if (job.finished) return;
    job.lines.push(this.encoder.encode(JSON.stringify(value) + '\n'));
    job.finished = last;
  }

  async run(job, work) {
    try {
      if (work.kind === 'diff') {
        const options = { details: work.details, signal: job.abort.signal, onEvent: (event) => this.push(job, event) };
        if (work.repositories) options.repositories = work.repositories;
        const report = await this.ferry.diff(work.src, work.dst, options);
        const status = report.errors.length > 0 ? 'failed' : report.rows.every((r) => r.status === 'in_sync') ? 'in_sync' : 'different';
        this.push(job, { event: 'diff_finished', status, report }, true);
        return;
      }
      await this.ferry.copy(work.src, work.dst, {
        tags: work.tags,
        signal: job.abort.signal,
        onProgress: (event) => this.push(job, event, event.event === 'job_finished'),
      });
    } catch (error) {
      const cancelled = job.abort.signal.aborted;
      const kind = cancelled ? 'cancelled' : (error?.kind ?? 'unavailable');
      const reason = cancelled ? `cancelled by DELETE /jobs/${job.id}` : describeFailure(kind, String(error?.message ?? error));
      this.push(job, { event: 'error', kind, job: job.id, reason }, true);
    }
    if (!job.finished) this.push(job, { event: 'error', kind: 'unavailable', job: job.id, reason: 'the job ended without its final event' }, true);
  }

  /** The job's lines from `offset` on, polled until its last. */
  stream(job, offset = 0) {
    let next = offset;
    return new ReadableStream({
      pull: async (controller) => {
        for (;;) {
          if (next < job.lines.length) {
            const chunk = job.lines.slice(next);
            next = job.lines.length;
            for (const line of chunk) controller.enqueue(line);
            return;
          }
          if (job.finished) {
            controller.close();
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        }
      },
    });
  }

  answer(job, offset) {
    return new Response(this.stream(job, offset), { status: 200, headers: { ...NDJSON, location: `/jobs/${job.id}` } });
  }

  get(id) {
    return this.jobs.get(id);
  }
}
