// The relay client: NDJSON split at any chunk boundary, the last line as the result, and
// refusals worded for the user.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { readLines, relayApi } from '../relay-client.js';

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
