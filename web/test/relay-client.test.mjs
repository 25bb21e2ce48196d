// The relay client: NDJSON split at any chunk boundary, the last line as the result, and
// refusals worded for the user.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { reattachDelay, readLines, relayApi } from '../relay-client.js';

function streamOf(chunks) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

test('lines are whole whatever the chunks', async () => {
  const text = '{"a":1}\n{"b":"é"}\n\n{"c":3}';
  for (let cut = 0; cut <= text.length; cut += 1) {
    const lines = [];
    await readLines(streamOf([text.slice(0, cut), text.slice(cut)]), (line) => lines.push(line));
    assert.deepEqual(lines, [{ a: 1 }, { b: 'é' }, { c: 3 }], `cut at ${cut}`);
  }
});

test('a copy streams its events and returns the final line; refusals and errors are worded', async () => {
  const sent = [];
  const answer = (status, lines) => async (url, init) => {
    sent.push({ url, init });
    return { ok: status === 200, status, text: async () => 'nope', body: streamOf(lines.map((l) => `${JSON.stringify(l)}\n`)) };
  };
  const events = [];
  const ok = relayApi({ url: 'http://relay:8080/', username: 'page', password: 'pw' }, {
    fetch: answer(200, [{ event: 'job_started', job: 'j1' }, { event: 'image_done', image: 0 }, { event: 'job_finished', status: 'succeeded', summary: { copied: 1 } }]),
  });
  const src = { registry: 'http://a', repository: 'r', auth: { username: 'u', password: 'secret' } };
  const dst = { registry: 'http://b', repository: 'r' };
  const report = await ok.copy(src, dst, { tags: ['1.0'], onProgress: (e) => events.push(e.event) });
  assert.deepEqual(report, { status: 'succeeded', summary: { copied: 1 }, images: [] });
  assert.deepEqual(events, ['job_started', 'image_done', 'job_finished']);
  assert.equal(sent[0].url, 'http://relay:8080/jobs');
  assert.equal(sent[0].init.headers.Authorization, `Basic ${btoa('page:pw')}`);
  assert.deepEqual(JSON.parse(sent[0].init.body), {
    kind: 'copy',
    images: [{ source: 'http://a/r:1.0', destination: 'http://b/r:1.0' }],
    auth: { source: { username: 'u', password: 'secret' } },
  });

  const refused = relayApi({ url: 'http://relay', username: 'page', password: 'bad' }, { fetch: answer(401, []) });
  await assert.rejects(refused.diff(src, dst), /the relay http:\/\/relay refused the job \(HTTP 401\): check the relay username and password/);
  const failing = relayApi({ url: 'http://relay', username: 'p', password: 'p' }, { fetch: answer(200, [{ event: 'job_started', job: 'j' }, { event: 'error', kind: 'refused', reason: 'not on the relay\'s allowlist' }]) });
  await assert.rejects(failing.diff(src, dst), (e) => e.kind === 'refused' && /allowlist/.test(e.message));
});

/** A stream of `chunks` that then fails, like a connection a proxy cuts. */
function brokenStreamOf(chunks) {
  const encoder = new TextEncoder();
  const left = [...chunks];
  // Erroring drops what is queued, so each chunk waits for a read, then the error.
  return new ReadableStream({
    pull(controller) {
      if (left.length) controller.enqueue(encoder.encode(left.shift()));
      else controller.error(new TypeError('network error'));
    },
  });
}

const ndjson = (lines) => lines.map((l) => `${JSON.stringify(l)}\n`).join('');

/** A relay whose answers are `answers[i]` for the i-th call: `{status, text}` or `{status, broken}`. */
function scripted(answers) {
  const sent = [];
  const fetch = async (url, init = {}) => {
    sent.push({ url, method: init.method ?? 'GET' });
    const a = answers[sent.length - 1];
    if (!a) throw new TypeError('no more answers');
    if (a.refuse) throw new TypeError(a.refuse);
    const body = a.broken != null ? brokenStreamOf([a.broken]) : streamOf([a.text ?? '']);
    const headers = { get: (name) => (name === 'location' ? a.location ?? null : null) };
    return { ok: a.status === 200, status: a.status, headers, text: async () => 'gone', body };
  };
  return { sent, fetch };
}

const api = (fetch, attempts = 3) => relayApi({ url: 'http://relay', username: 'p', password: 'p' }, { fetch, reattach: { attempts, firstDelayMs: 1, maxDelayMs: 4 }, sleep: async () => {} });

test('a broken stream is re-attached from the lines read, and the events are seen once', async () => {
  const started = { event: 'job_started', job: 'j7', kind: 'copy' };
  const a = { event: 'image_started', image: 0, source: 'a/r:1' };
  const b = { event: 'image_done', image: 0, source: 'a/r:1' };
  const c = { event: 'image_started', image: 1, source: 'a/r:2' };
  const end = { event: 'job_finished', status: 'succeeded', summary: { copied: 2 }, images: [] };
  const relay = scripted([
    // Cut inside the third line: two lines read.
    { status: 200, broken: `${ndjson([started, a])}{"event":"image_d` },
    // The first re-attach fails to connect, the second ends early without the last line.
    { refuse: 'connection refused' },
    { status: 200, text: ndjson([b]) },
    { status: 200, text: ndjson([c, end]) },
  ]);
  const events = [];
  const reattached = [];
  const report = await api(relay.fetch).copy({ registry: 'http://a', repository: 'r' }, { registry: 'http://b', repository: 'r' }, {
    tags: ['1', '2'],
    onProgress: (e) => events.push(e.event),
    onReattach: (r) => reattached.push([r.offset, r.attempt]),
  });
  assert.equal(report.status, 'succeeded');
  assert.deepEqual(events, ['job_started', 'image_started', 'image_done', 'image_started', 'job_finished']);
  assert.deepEqual(relay.sent.map((s) => `${s.method} ${s.url}`), [
    'POST http://relay/jobs',
    'GET http://relay/jobs/j7/events?offset=2',
    'GET http://relay/jobs/j7/events?offset=2',
    'GET http://relay/jobs/j7/events?offset=3',
  ]);
  // Attempts count up while nothing arrives and start again once a line is read.
  assert.deepEqual(reattached, [[2, 1], [2, 2], [3, 1]]);
});

test('re-attaching is bounded, a forgotten job is said so, and a stream cut before the job started is not re-attached', async () => {
  const started = ndjson([{ event: 'job_started', job: 'j8' }]);
  const src = { registry: 'http://a', repository: 'r' };
  const dst = { registry: 'http://b', repository: 'r' };
  const gone = scripted([{ status: 200, broken: started }, { status: 404 }]);
  await assert.rejects(api(gone.fetch).diff(src, dst), (e) => e.kind === 'gone' && /no longer has job j8 \(HTTP 404\).*run it again/.test(e.message));

  const down = scripted([{ status: 200, broken: started }, { refuse: 'refused' }, { status: 503 }, { refuse: 'refused' }]);
  await assert.rejects(api(down.fetch, 3).diff(src, dst), (e) => e.kind === 'network' && /job j8 broke off and 3 re-attaches in a row failed/.test(e.message));
  assert.equal(down.sent.length, 4);

  const early = scripted([{ status: 200, broken: '{"event":"job_st' }]);
  await assert.rejects(api(early.fetch).diff(src, dst), /broke off before the job started/);
  assert.equal(early.sent.length, 1);
  // The answer's Location names the job before its first line is read.
  const located = scripted([{ status: 200, location: '/jobs/j9', broken: '{"event":"job_st' }, { status: 200, text: ndjson([{ event: 'job_started', job: 'j9' }, { event: 'diff_finished', report: { rows: [], errors: [] } }]) }]);
  assert.deepEqual(await api(located.fetch).diff(src, dst), { rows: [], errors: [] });
  assert.equal(located.sent[1].url, 'http://relay/jobs/j9/events?offset=0');

  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => reattachDelay(n)), [250, 500, 1000, 2000, 4000, 4000]);
});

test('whole registries are one diff job: each repository as the relay compares it, then the report', async () => {
  const row = (repository, tag, status) => ({ repository, tag, status, source_digest: 'sha256:a', destination_digest: null });
  const lines = [
    { event: 'job_started', job: 'd1', kind: 'diff' },
    { event: 'repository_diffed', source_repository: 'team/a', destination_repository: 'team/a', rows: [row('team/a', '1', 'missing')], errors: [] },
    { event: 'tags_listed', repository: 'team/b' },
    { event: 'repository_diffed', source_repository: 'team/b', destination_repository: 'team/b', rows: [], errors: [{ kind: 'unauthorized', message: 'no' }] },
    { event: 'diff_finished', status: 'failed', report: { rows: [row('team/a', '1', 'missing')], errors: [{ kind: 'unauthorized', message: 'no' }] } },
  ];
  const sent = [];
  const fetch = async (url, init) => {
    sent.push(JSON.parse(init.body));
    return { ok: true, status: 200, body: streamOf([ndjson(lines)]) };
  };
  const seen = [];
  const src = { registry: 'http://a', auth: { token: 't' } };
  const dst = { registry: 'http://b' };
  const report = await relayApi({ url: 'http://relay', username: 'p', password: 'p' }, { fetch }).diffRegistries(src, dst, {
    repositories: ['team/a', 'team/b'],
    onRepository: (line) => seen.push([line.source_repository, line.rows.length, line.errors.length]),
  });
  assert.deepEqual(seen, [['team/a', 1, 0], ['team/b', 0, 1]]);
  assert.equal(report.rows.length, 1);
  assert.deepEqual(sent[0], { kind: 'diff', source: 'http://a', destination: 'http://b', details: false, auth: { source: { token: 't' } }, repositories: ['team/a', 'team/b'] });
  await relayApi({ url: 'http://relay', username: 'p', password: 'p' }, { fetch }).diffRegistries(src, dst);
  assert.equal('repositories' in sent[1], false, 'the whole catalog when no list is given');
});

test('Cancel is DELETE /jobs/<id>; the stream then ends with the cancelled line, and no re-attach is tried', async () => {
  const encoder = new TextEncoder();
  const sent = [];
  let deleted;
  const ended = new Promise((resolve) => {
    deleted = resolve;
  });
  const fetch = async (url, init = {}) => {
    sent.push(`${init.method ?? 'GET'} ${url}`);
    if (init.method === 'DELETE') {
      deleted();
      return { ok: true, status: 202 };
    }
    // The relay's stream: job_started, an image under way, then (once deleted) the cancelled line.
    const body = new ReadableStream({
      async start(controller) {
        controller.enqueue(encoder.encode(ndjson([{ event: 'job_started', job: 'c1' }, { event: 'image_started', image: 0, source: 'a/r:1' }])));
        await ended;
        controller.enqueue(encoder.encode(ndjson([{ event: 'error', kind: 'cancelled', job: 'c1', reason: 'cancelled by DELETE /jobs/c1' }])));
        controller.close();
      },
    });
    return { ok: true, status: 200, headers: { get: () => '/jobs/c1' }, body };
  };
  const controller = new AbortController();
  const images = [{ source: 'http://a/r:1', destination: 'http://b/r:1' }];
  const copying = api(fetch).copyImages(images, {
    signal: controller.signal,
    onProgress: (e) => {
      if (e.event === 'job_started') controller.abort();
    },
  });
  await assert.rejects(copying, (e) => e.name === 'AbortError' && e.kind === 'cancelled');
  assert.deepEqual(sent, ['POST http://relay/jobs', 'DELETE http://relay/jobs/c1']);
});

test('each line reaches the page as soon as it is read, before the next arrives', async () => {
  const encoder = new TextEncoder();
  let seen;
  const first = new Promise((resolve) => {
    seen = resolve;
  });
  const fetch = async () => ({
    ok: true,
    status: 200,
    headers: { get: () => null },
    body: new ReadableStream({
      async start(controller) {
        controller.enqueue(encoder.encode(ndjson([{ event: 'job_started', job: 's1' }, { event: 'repository_diffed', source_repository: 'a', destination_repository: 'a', rows: [], errors: [] }])));
        // The final line only once the page has taken the repository's.
        await first;
        controller.enqueue(encoder.encode(ndjson([{ event: 'diff_finished', report: { rows: [], errors: [] } }])));
        controller.close();
      },
    }),
  });
  const report = await api(fetch).diffRegistries({ registry: 'http://a' }, { registry: 'http://b' }, { onRepository: (line) => seen(line.source_repository) });
  assert.deepEqual(report, { rows: [], errors: [] });
  assert.equal(await first, 'a');
});
