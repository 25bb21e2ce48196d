// The page's calls through a job relay (`ferry serve --relay`), for registries that send
// no CORS headers: `POST /jobs` answers at once with `application/x-ndjson`, one event a
// line, the last line the job's final status. `relayApi` offers ferry-wasm's `diff` and
// `copy` with the same arguments and results, so the page works the same either way.
// The relay's own credentials go in its `Authorization`; the registries' travel in the
// job's body, held in the relay's memory for that job only.

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
  if (buffered.trim()) onLine(JSON.parse(buffered));
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
 * and `password`. `fetch` is injectable for tests.
 */
export function relayApi({ url, username, password }, { fetch: send = fetch } = {}) {
  const base = url.replace(/\/+$/, '');
  const authorization = `Basic ${btoa(`${username}:${password}`)}`;

  /** Runs one job; resolves with its last line, calling `onEvent` with every other. */
  async function run(body, { onEvent = () => {}, signal } = {}) {
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
    let id = null;
    let last = null;
    const cancel = () => {
      if (id) send(`${base}/jobs/${id}`, { method: 'DELETE', headers: { Authorization: authorization } }).catch(() => {});
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      await readLines(response.body, (line) => {
        if (line.event === 'job_started') id = line.job;
        if (last) onEvent(last);
        last = line;
      });
    } catch (error) {
      if (signal?.aborted) throw new RelayError('cancelled', 'cancelled');
      throw new RelayError('network', `the relay's stream broke off: ${error?.message ?? error}`);
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
    if (!last) throw new RelayError('network', `the relay ${base} ended the job without a line`);
    if (last.event === 'error') throw new RelayError(last.kind ?? 'failed', last.reason ?? last.message ?? 'the relay ended the job with an error');
    return last;
  }

  return {
    async diff(src, dst, { details = false, referrers = false } = {}) {
      const last = await run({ kind: 'diff', source: location(src), destination: location(dst), details, referrers, auth: auth(src, dst) });
      if (last.event !== 'diff_finished') throw new RelayError('failed', `the relay's diff ended with ${JSON.stringify(last.event)}`);
      return last.report;
    },

    async copy(src, dst, { tags, onProgress = () => {}, signal }) {
      const images = tags.map((tag) => ({ source: location(src, `:${tag}`), destination: location(dst, `:${tag}`) }));
      const last = await run({ kind: 'copy', images, auth: auth(src, dst) }, { onEvent: onProgress, signal });
      if (last.event !== 'job_finished') throw new RelayError('failed', `the relay's copy ended with ${JSON.stringify(last.event)}`);
      onProgress(last);
      return { status: last.status, summary: last.summary, images: last.images ?? [] };
    },
  };
}
