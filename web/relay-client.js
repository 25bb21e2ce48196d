// The page's calls through a job relay (`ferry serve --relay`), for registries that send
// no CORS headers: `POST /jobs` answers at once with `application/x-ndjson`, one event a
// line, the last line the job's final status. `relayApi` offers ferry-wasm's `diff` and
// `copy` with the same arguments and results, so the page works the same either way.
// The relay's own credentials go in its `Authorization`; the registries' travel in the
// job's body, held in the relay's memory for that job only.
//
// A stream that breaks mid-job (a network error, a proxy that cuts it) is re-attached
// with `GET /jobs/<id>/events?offset=N`, N the lines already read, a few times with
// growing pauses: the caller sees one stream of events, each line once.

/** Splits a byte stream into lines of JSON; calls `onLine` with each parsed value. */
export async function readLines(body, onLine) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    buffered += decoder.decode(value ?? new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (done) break;
  }
  if (buffered.trim()) {
    let value;
    try {
      value = JSON.parse(buffered);
    } catch {
      throw new Error('the stream ended inside a line');
    }
    onLine(value);
  }
}

/** The events a job's last line is one of: a copy's, a diff's, or the job's failure. */
export const LAST_EVENTS = new Set(['job_finished', 'diff_finished', 'error']);

/** How often a broken stream is re-attached in a row, and the pauses between. */
export const REATTACH = { attempts: 5, firstDelayMs: 250, maxDelayMs: 4000 };

/** The pause before re-attach `attempt` (1, 2, …): doubling from `firstDelayMs`, capped. */
export function reattachDelay(attempt, { firstDelayMs, maxDelayMs } = REATTACH) {
  return Math.min(firstDelayMs * 2 ** (attempt - 1), maxDelayMs);
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** A relay error: `kind` as the core's failures, so describeFailure words it. */
export class RelayError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = kind === 'cancelled' ? 'AbortError' : 'RelayError';
    this.kind = kind;
  }
}

function location({ registry, repository }, reference = '') {
  return `${registry}/${repository}${reference}`;
}

function auth(src, dst) {
  const sides = {};
  if (src.auth) sides.source = src.auth;
  if (dst.auth) sides.destination = dst.auth;
  return sides;
}

/**
 * ferry-wasm's `diff` and `copy`, through the relay at `url` with its user `username`
 * and `password`, and the registry-wide `diffRegistries` and `copyImages`, each one job.
 * `fetch`, `reattach` (as `REATTACH`) and `sleep(ms, signal)` are injectable for tests.
 */
export function relayApi({ url, username, password }, { fetch: send = fetch, reattach = REATTACH, sleep = pause } = {}) {
  const base = url.replace(/\/+$/, '');
  const authorization = `Basic ${btoa(`${username}:${password}`)}`;
  const cancelled = () => new RelayError('cancelled', 'cancelled');

  /**
   * Runs one job; resolves with its last line, calling `onEvent` with every other line
   * once, as soon as it is read, and `onReattach({job, offset, attempt, reason})` before each re-attach.
   */
  async function run(body, { onEvent = () => {}, onReattach = () => {}, signal } = {}) {
    let response;
    try {
      response = await send(`${base}/jobs`, {
        method: 'POST',
        headers: { Authorization: authorization, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (error?.name === 'AbortError') throw error;
      throw new RelayError('network', `could not reach the relay ${base} (${error?.message ?? error}): is it running, and does it allow this page's origin (ferry serve --cors-origin)?`);
    }
    if (!response.ok) {
      const text = (await response.text()).slice(0, 500);
      const why = response.status === 401 ? 'check the relay username and password' : text;
      throw new RelayError('refused', `the relay ${base} refused the job (HTTP ${response.status}): ${why}`);
    }
    // The job's id, from `Location: /jobs/<id>` until its `job_started` line is read.
    let id = /\/jobs\/([^/?#]+)$/.exec(response.headers?.get('location') ?? '')?.[1] ?? null;
    let last = null;
    /** Lines read so far: where a re-attach starts. */
    let offset = 0;
    /** Re-attaches since the last line read. */
    let failures = 0;
    const take = (line) => {
      offset += 1;
      failures = 0;
      if (line.event === 'job_started') id = line.job;
      if (LAST_EVENTS.has(line.event)) last = line;
      else onEvent(line);
    };

    /** `GET /jobs/<id>/events?offset=N` until one answers, within the attempts. */
    async function reattachAfter(reason) {
      for (;;) {
        if (!id) throw new RelayError('network', `the relay's stream broke off before the job started: ${reason}`);
        failures += 1;
        if (failures > reattach.attempts) {
          throw new RelayError('network', `the relay's stream of job ${id} broke off and ${reattach.attempts} re-attaches in a row failed (${reason})`);
        }
        await sleep(reattachDelay(failures, reattach), signal);
        if (signal?.aborted) throw cancelled();
        onReattach({ job: id, offset, attempt: failures, reason });
        let answer;
        try {
          answer = await send(`${base}/jobs/${id}/events?offset=${offset}`, { headers: { Authorization: authorization }, signal });
        } catch (error) {
          if (signal?.aborted) throw cancelled();
          reason = error?.message ?? String(error);
          continue;
        }
        if (answer.status === 404) {
          throw new RelayError('gone', `the relay no longer has job ${id} (HTTP 404): it ended long enough ago to be forgotten, or the relay restarted; run it again`);
        }
        if (answer.ok) return answer;
        reason = `GET /jobs/${id}/events answered HTTP ${answer.status}`;
      }
    }

    const cancel = () => {
      if (id) send(`${base}/jobs/${id}`, { method: 'DELETE', headers: { Authorization: authorization } }).catch(() => {});
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for (;;) {
        let reason;
        try {
          await readLines(response.body, take);
          if (last) break;
          reason = "the stream ended before the job's last line";
        } catch (error) {
          if (signal?.aborted) throw cancelled();
          reason = error?.message ?? String(error);
        }
        response = await reattachAfter(reason);
      }
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
    if (last.event === 'error') throw new RelayError(last.kind ?? 'failed', last.reason ?? last.message ?? 'the relay ended the job with an error');
    return last;
  }

  async function copyImages(images, { auth: sides = {}, onProgress = () => {}, onReattach, signal } = {}) {
    const last = await run({ kind: 'copy', images, auth: sides }, { onEvent: onProgress, onReattach, signal });
    if (last.event !== 'job_finished') throw new RelayError('failed', `the relay's copy ended with ${JSON.stringify(last.event)}`);
    onProgress(last);
    return { status: last.status, summary: last.summary, images: last.images ?? [] };
  }

  return {
    async diff(src, dst, { details = false, referrers = false } = {}) {
      const last = await run({ kind: 'diff', source: location(src), destination: location(dst), details, referrers, auth: auth(src, dst) });
      if (last.event !== 'diff_finished') throw new RelayError('failed', `the relay's diff ended with ${JSON.stringify(last.event)}`);
      return last.report;
    },

    copy(src, dst, { tags, onProgress, onReattach, signal }) {
      const images = tags.map((tag) => ({ source: location(src, `:${tag}`), destination: location(dst, `:${tag}`) }));
      return copyImages(images, { auth: auth(src, dst), onProgress, onReattach, signal });
    },

    /**
     * Two whole registries (`src` and `dst` are `{registry, auth}`), or the `repositories`
     * listed, as one diff job. `onRepository` gets each `repository_diffed` line as the
     * relay compares that pair; resolves with the final report (every pair's rows).
     */
    async diffRegistries(src, dst, { repositories = [], onRepository = () => {}, onReattach, signal } = {}) {
      const body = { kind: 'diff', source: src.registry, destination: dst.registry, details: false, auth: auth(src, dst) };
      if (repositories.length) body.repositories = repositories;
      const onEvent = (line) => {
        if (line.event === 'repository_diffed') onRepository(line);
      };
      const last = await run(body, { onEvent, onReattach, signal });
      if (last.event !== 'diff_finished') throw new RelayError('failed', `the relay's diff ended with ${JSON.stringify(last.event)}`);
      return last.report;
    },

    /** One copy job of `images` (`[{source, destination}]` references), across repositories. */
    copyImages,
  };
}
