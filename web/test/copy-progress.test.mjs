// Progress events (the core's `Event` JSON) fold into per-tag bars and job totals.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { CopyProgress } from '../copy-progress.js';
import { formatBytes, formatRate, shortDigest, tagOf } from '../format.js';

const SRC = '127.0.0.1:5000/library/app';
const DST = '127.0.0.1:5001/library/app';
const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const C = `sha256:${'c'.repeat(64)}`;

test('a copy, event by event', () => {
  const p = new CopyProgress([{ tag: 'latest', size: 3000 }, { tag: '2.0', size: 5000 }, { tag: 'bad', size: 10 }], 0);
  // [event, changed tag, then state / done / total of that tag]
  const steps = [
    [{ event: 'plan_ready', images: 3, repositories: 1 }, null],
    [{ event: 'image_started', image: 0, source: `${SRC}:latest`, destination: `${DST}:latest` }, 'latest', 'copying', 0, 3000],
    [{ event: 'blob_done', image: 0, digest: A, size: 1000, outcome: 'present' }, 'latest', 'copying', 1000, 3000],
    [{ event: 'blob_progress', image: 0, digest: B, bytes: 500, total: 1800 }, 'latest', 'copying', 1500, 3000],
    [{ event: 'blob_progress', image: 0, digest: B, bytes: 1800, total: 1800 }, 'latest', 'copying', 2800, 3000],
    [{ event: 'blob_done', image: 0, digest: B, size: 1800, outcome: 'transferred' }, 'latest', 'copying', 2800, 3000],
    [{ event: 'image_started', image: 1, source: `${SRC}:2.0`, destination: `${DST}:2.0` }, '2.0', 'copying', 0, 5000],
    [{ event: 'blob_done', image: 1, digest: A, size: 1000, outcome: 'mounted' }, '2.0', 'copying', 1000, 5000],
    [{ event: 'image_done', image: 0, source: `${SRC}:latest`, destination: `${DST}:latest`, digest: C, bytes: 1800 }, 'latest', 'copied', 3000, 3000],
    [{ event: 'retry_scheduled', target: 'x', retry: 1, delay_ms: 100, reason: 'HTTP 503' }, null],
    [{ event: 'image_failed', image: 2, source: `${SRC}:bad`, destination: `${DST}:bad`, reason: 'blob sha256:… does not match its digest', retryable: false }, 'bad', 'failed', 0, 10],
  ];
  for (const [event, tag, state, done, total] of steps) {
    assert.equal(p.handle(event, 1000), tag, event.event);
    if (tag) assert.deepEqual(p.row(tag), { state, done, total, reason: p.row(tag).reason }, `${event.event} ${tag}`);
  }
  assert.equal(p.row('bad').reason, 'blob sha256:… does not match its digest');
  p.finishRemaining('cancelled');
  assert.equal(p.row('2.0').state, 'cancelled');
  assert.equal(p.row('latest').state, 'copied');
  const o = p.overall();
  assert.equal(o.streamed, 1800);
  assert.deepEqual(o.counts, { queued: 0, copying: 0, copied: 1, skipped: 0, failed: 1, cancelled: 1 });
  assert.equal(o.elapsedMs, 1000);
  assert.equal(o.total, 8010);
});

test('the final report decides how each image ended', () => {
  const p = new CopyProgress([{ tag: '1.0' }, { tag: '1.1' }], 0);
  p.applyReport({
    status: 'failed',
    images: [
      { source: `${SRC}:1.0`, destination: `${DST}:1.0`, outcome: 'skipped', bytes: 0 },
      { source: `${SRC}:1.1`, destination: `${DST}:1.1`, outcome: 'failed', bytes: 0, reason: 'HTTP 403 from the destination' },
    ],
  });
  assert.deepEqual(p.row('1.0'), { state: 'skipped', done: 0, total: 0, reason: '' });
  assert.equal(p.row('1.1').reason, 'HTTP 403 from the destination');
});

test("a failure's message is chosen from its kind, the registry's words kept", () => {
  const cases = [
    ['not_found', 'app:9 does not exist at the source', /^Not found: .*\(app:9 does not exist at the source\)$/],
    ['unauthorized', 'credentials rejected', /^Access refused: check the user name/],
    ['integrity', 'blob sha256:… does not match its digest', /^The bytes do not match their digest/],
    ['rate_limited', 'HTTP 429', /^The registry is rate-limiting/],
    [undefined, 'an older core gave no kind', /^an older core gave no kind$/],
  ];
  for (const [kind, reason, want] of cases) {
    const p = new CopyProgress([{ tag: 'x' }], 0);
    p.handle({ event: 'image_failed', image: 0, source: `${SRC}:x`, destination: `${DST}:x`, reason, kind, retryable: false }, 1);
    assert.match(p.row('x').reason, want, String(kind));
    const q = new CopyProgress([{ tag: 'x' }], 0);
    q.applyReport({ images: [{ source: `${SRC}:x`, destination: `${DST}:x`, outcome: 'failed', bytes: 0, reason, kind }] });
    assert.match(q.row('x').reason, want, `report ${kind}`);
  }
});

test('a tag cancelled with its manifest already up counts as copied', () => {
  const p = new CopyProgress([{ tag: 'a', size: 10 }, { tag: 'b', size: 10 }, { tag: 'c', size: 10 }], 0);
  p.handle({ event: 'image_done', image: 0, source: `${SRC}:c`, destination: `${DST}:c`, digest: C, bytes: 10 }, 5);
  p.finishRemaining('cancelled');
  p.settleCancelled({
    rows: [
      { tag: 'a', status: 'missing' },
      { tag: 'b', status: 'in_sync' },
      { tag: 'c', status: 'in_sync' },
    ],
  });
  assert.deepEqual(['a', 'b', 'c'].map((t) => p.row(t).state), ['cancelled', 'copied', 'copied']);
  assert.deepEqual(p.overall().counts, { queued: 0, copying: 0, copied: 2, skipped: 0, failed: 0, cancelled: 1 });
});

test('formatting', () => {
  const cases = [
    [formatBytes(0), '0 B'],
    [formatBytes(1536), '1.5 KiB'],
    [formatBytes(2 * 1024 * 1024), '2.0 MiB'],
    [formatBytes(150 * 1024 * 1024), '150 MiB'],
    [formatBytes(undefined), ''],
    [formatRate(1024 * 1024, 500), '2.0 MiB/s'],
    [formatRate(10, 0), ''],
    [shortDigest(A), 'sha256:aaaaaaaaaaaa'],
    [shortDigest(null), ''],
    [tagOf(`${SRC}:1.0`), '1.0'],
    [tagOf(`${SRC}:1.0@${A}`), '1.0'],
    [tagOf(`${SRC}@${A}`), null],
    [tagOf('127.0.0.1:5000/app'), null],
  ];
  for (const [got, want] of cases) assert.equal(got, want);
});

test('an image that failed transiently runs again in the next round and lands', () => {
  const p = new CopyProgress([{ tag: '1.0', size: 10 }], 0);
  const started = { event: 'image_started', image: 0, source: `${SRC}:1.0`, destination: `${DST}:1.0` };
  const steps = [
    [started, 'copying'],
    [{ ...started, event: 'image_failed', reason: 'HTTP 503', kind: 'unavailable', retryable: true }, 'failed'],
    [{ event: 'round_started', round: 2, images: 1, listings: 0 }, 'failed'],
    [started, 'copying'],
    [{ ...started, event: 'image_done', digest: C, bytes: 10 }, 'copied'],
  ];
  for (const [event, state] of steps) {
    p.handle(event, 1000);
    assert.equal(p.row('1.0').state, state, event.event);
  }
  assert.equal(p.row('1.0').reason, '');
});
